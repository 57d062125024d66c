//! Instruction tuning over a fixed-ratio mixture (SPEC §7) on the committed tiny XLM-R
//! fixture: two real sources read in place from ../shared/data (Flan CoT GSM8K TSV and
//! the GSM8K JSONL; skipped with a message when absent, unless CI is set), drawn by
//! `[[data.sources]]` weights into the training set of a short diffusion run.

use dlm_train::RunConfig;
use dlm_train::data::Dataset;
use dlm_train::metrics_log::{METRICS_FILE, Record, read_records};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(flan cot tsv, gsm8k jsonl)`, or None (with a message) when ../shared is absent.
fn sources() -> Option<(PathBuf, PathBuf)> {
    let data = root().join("../shared/data");
    let cot = data.join("instruct/flan_v2_cot/gsm8k_train.tsv");
    let gsm = data.join("gsm8k/train.jsonl");
    for p in [&cot, &gsm] {
        if !p.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing in CI",
                p.display()
            );
            eprintln!("skipping: {} not found", p.display());
            return None;
        }
    }
    Some((cot, gsm))
}

fn config(cot: &Path, gsm: &Path, sets: &[&str]) -> RunConfig {
    let tiny = root().join("crates/dlm-models/tests/fixtures/tiny-xlmr");
    let mut all: Vec<String> = vec![
        format!("model.dir={:?}", tiny.display().to_string()),
        "data.train=\"\"".into(),
        format!(
            "data.sources=[{{path = {:?}, format = \"flan_cot_tsv\", weight = 3}}, \
             {{path = {:?}, format = \"gsm8k\", weight = 1}}]",
            cot.display().to_string(),
            gsm.display().to_string()
        ),
        "data.mixture_rows=64".into(),
        "data.max_train_rows=0".into(),
        "data.max_length=32".into(),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    let cfg = RunConfig::load(&root().join("configs/tiny-cpu.toml"), &all).unwrap();
    RunConfig {
        data: dlm_train::config::DataSection {
            valid: None,
            ..cfg.data
        },
        ..cfg
    }
}

#[test]
fn mixture_builds_the_training_set_and_trains() {
    let Some((cot, gsm)) = sources() else { return };
    let cfg = config(&cot, &gsm, &["train.max_steps=4", "train.save_interval=4"]);

    // The training set: 64 draws, both sources used, by weight, deterministic per seed.
    let tok = dlm_data::Tokenizer::from_dir(&cfg.model.dir).unwrap();
    let special = tok.special_tokens().unwrap();
    let d = Dataset::load_train(&cfg.data, &tok, &special, 32, cfg.train.seed).unwrap();
    assert_eq!(d.len(), 64);
    assert_eq!(d.sources.len(), 2);
    assert_eq!((d.sources[0].rows, d.sources[1].rows), (7473, 7473));
    assert_eq!((d.sources[0].weight, d.sources[1].weight), (0.75, 0.25));
    let drawn: Vec<usize> = d.sources.iter().map(|s| s.drawn).collect();
    assert_eq!(drawn.iter().sum::<usize>(), 64);
    assert!(
        drawn.iter().all(|&n| n > 0),
        "both sources drawn: {drawn:?}"
    );
    assert!(drawn[0] > drawn[1], "3:1 weights: {drawn:?}");
    // The responses show each source's template: Flan CoT ends "So the answer is n.",
    // GSM8K "… The answer is n." without "So".
    let flan = d
        .examples
        .iter()
        .filter(|e| e.response.contains(" So the answer is "))
        .count();
    assert_eq!(flan, drawn[0]);
    assert!(d.examples.iter().all(|e| e.seq.len() <= 32));
    let again = Dataset::load_train(&cfg.data, &tok, &special, 32, cfg.train.seed).unwrap();
    assert_eq!(again.examples, d.examples);
    let other = Dataset::load_train(&cfg.data, &tok, &special, 32, cfg.train.seed + 1).unwrap();
    assert_ne!(other.examples, d.examples);

    // A short diffusion run on it.
    let run = tempfile::tempdir().unwrap();
    let s = dlm_train::train(
        cfg.clone(),
        run.path(),
        Arc::new(AtomicBool::new(false)),
        false,
    )
    .unwrap();
    assert_eq!((s.steps, s.interrupted), (4, false));
    let losses: Vec<f64> = read_records(&run.path().join(METRICS_FILE))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Train(t) => Some(t.loss),
            _ => None,
        })
        .collect();
    assert_eq!(losses.len(), 4);
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    // The saved run.toml keeps the mixture.
    let saved = std::fs::read_to_string(run.path().join("ckpt-4/run.toml")).unwrap();
    assert!(
        saved.contains("[[data.sources]]") && saved.contains("flan_cot_tsv"),
        "{saved}"
    );
}

#[test]
fn a_bad_source_line_names_the_file_and_line() {
    let Some((_, gsm)) = sources() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "q\t1\tr\nno tabs here\n").unwrap();
    let cfg = config(&bad, &gsm, &["train.max_steps=1"]);
    let run = dir.path().join("run");
    let e = dlm_train::train(cfg, &run, Arc::new(AtomicBool::new(false)), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{}:2:", bad.display())) && e.contains("tab-separated"),
        "{e}"
    );
}

#[test]
fn the_example_config_parses_and_its_sources_read() {
    let path = root().join("configs/instruct-flan-cot.toml");
    let cfg = RunConfig::load(&path, &[]).unwrap();
    // Paths in the config are relative to the repository root; load made them absolute
    // against the test's working directory (changing it would race the other tests).
    let cwd = std::env::current_dir().unwrap();
    let rebase = |p: &PathBuf| root().join(p.strip_prefix(&cwd).unwrap_or(p));
    assert_eq!(cfg.data.sources.len(), 5);
    assert_eq!(cfg.optimizer.lr, 1e-5);
    if sources().is_none() {
        return;
    }
    for s in &cfg.data.sources {
        let rows = dlm_data::read_source(rebase(&s.path), s.format).unwrap();
        assert!(!rows.is_empty(), "{}", s.path.display());
        assert!(
            rows.iter().all(|r| !r.inputs.is_empty()),
            "{}",
            s.path.display()
        );
    }
}

/// Few-shot sources (Flan 2022 `*_fs_*` format) on a small hand-written Alpaca file and
/// the tiny word-level tokenizer (which knows "one" and "to"): each prompt carries
/// exemplars of the same source, pruned from the end to fit `data.max_length`;
/// deterministic per seed.
#[test]
fn few_shot_sources_prepend_exemplars_and_prune_to_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.jsonl");
    let rows: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "{{\"instruction\": \"Add one to {i}.\", \"input\": \"\", \"output\": \"{}\"}}",
                i + 1
            )
        })
        .collect();
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    let tiny = root().join("crates/dlm-models/tests/fixtures/tiny-xlmr");
    let tok = dlm_data::Tokenizer::from_dir(&tiny).unwrap();
    let special = tok.special_tokens().unwrap();
    let spec = |shots: usize| dlm_data::SourceSpec {
        path: path.clone(),
        format: dlm_data::SourceFormat::AlpacaJson,
        weight: 1.0,
        shots,
        few_shot: dlm_data::FewShotPattern::default(),
    };
    let decode = |d: &Dataset, i: usize| {
        let e = &d.examples[i];
        tok.decode(&e.seq.ids[..e.seq.n_fixed()], true).unwrap()
    };
    let zero = Dataset::mixture(&[spec(0)], 12, &tok, &special, 512, 3).unwrap();
    let three = Dataset::mixture(&[spec(3)], 12, &tok, &special, 512, 3).unwrap();
    for i in 0..12 {
        let (z, t) = (decode(&zero, i), decode(&three, i));
        // the query is last; three exemplars, each "instruction … response", before it
        assert!(t.ends_with(z.trim_end()), "{t:?} vs {z:?}");
        assert_eq!(t.matches("one to").count(), 4, "{t:?}");
        assert_eq!(three.examples[i].response, zero.examples[i].response);
    }
    let again = Dataset::mixture(&[spec(3)], 12, &tok, &special, 512, 3).unwrap();
    assert_eq!(again.examples, three.examples);
    // A tight max_length keeps fewer exemplars, never a cut-off sequence.
    let longest = |d: &Dataset| d.examples.iter().map(|e| e.seq.len()).max().unwrap();
    let shortest_three = three.examples.iter().map(|e| e.seq.len()).min().unwrap();
    let tight = (longest(&zero) + shortest_three) / 2;
    let pruned = Dataset::mixture(&[spec(3)], 12, &tok, &special, tight, 3).unwrap();
    let mut kept = Vec::new();
    for (i, e) in pruned.examples.iter().enumerate() {
        assert!(e.seq.len() <= tight);
        kept.push(decode(&pruned, i).matches("one to").count() - 1);
    }
    assert!(kept.iter().all(|&k| k < 3) && kept.iter().any(|&k| k > 0), "{kept:?} in {tight} tokens");
}
