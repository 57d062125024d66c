//! End-to-end training on the committed tiny XLM-R fixture with real IWSLT14 rows (read in
//! place from ../shared/data; skipped with a message when absent, unless CI is set):
//! diffusion finetuning writes loadable checkpoints, a stopped run resumes to the same
//! losses, vocabulary pruning round-trips text, the AR baseline learns and decodes, the
//! length stage trains on a finetuned checkpoint, and bad inputs fail clearly; the same
//! for the tiny ModernBERT fixture (diffusion training, pruning, `transformers` reload).

use dlm_data::Tokenizer;
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use dlm_train::metrics_log::{METRICS_FILE, Record, read_records};
use dlm_train::{RunConfig, TrainError, checkpoint};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> PathBuf {
    root().join("crates/dlm-models/tests/fixtures/tiny-xlmr")
}

/// The real IWSLT14 De→En prompts, or None (with a message) when ../shared is absent.
fn iwslt() -> Option<PathBuf> {
    let p = root().join("../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing in CI",
        p.display()
    );
    eprintln!("skipping: {} not found", p.display());
    None
}

fn config(data: &Path, sets: &[&str]) -> RunConfig {
    let mut all: Vec<String> = vec![
        format!("model.dir={:?}", tiny().display().to_string()),
        format!("data.train={:?}", data.display().to_string()),
        format!("data.valid={:?}", data.display().to_string()),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    RunConfig::load(&root().join("configs/tiny-cpu.toml"), &all).unwrap()
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

fn train_losses(run: &Path) -> Vec<(u64, f64)> {
    read_records(&run.join(METRICS_FILE))
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            if let Record::Train(t) = r {
                Some((t.step, t.loss))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn diffusion_run_writes_loadable_checkpoints_and_resumes_exactly() {
    let Some(data) = iwslt() else { return };
    let cfg = config(
        &data,
        &[
            "train.max_steps=12",
            "train.save_interval=4",
            "train.plot=true",
        ],
    );
    let full = tempfile::tempdir().unwrap();
    let s = dlm_train::train(cfg.clone(), full.path(), no_stop(), false).unwrap();
    assert_eq!((s.steps, s.interrupted), (12, false));
    let losses = train_losses(full.path());
    assert_eq!(losses.len(), 12);
    assert!(losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0));
    // keep_last = 2 plus best/; latest points at the last one; curves drawn.
    let left: Vec<u64> = checkpoint::list_checkpoints(full.path())
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    // 4, 8, 12 by interval and 10 as a new best.
    assert_eq!(left, vec![12, 10]);
    assert_eq!(
        std::fs::read_to_string(full.path().join("latest")).unwrap(),
        "ckpt-12\n"
    );
    assert!(full.path().join("best/model.safetensors").exists());
    assert!(full.path().join("curves.svg").exists() && full.path().join("curves.png").exists());
    let valid: Vec<_> = read_records(&full.path().join(METRICS_FILE))
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r, Record::Valid(_)))
        .collect();
    assert_eq!(valid.len(), 2, "validation at steps 10 and 12");
    // The checkpoint is an ordinary model directory with the tokenizer.
    let ckpt = full.path().join("ckpt-12");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "run.toml",
        "trainer_state.json",
        "trainer_state.safetensors",
    ] {
        assert!(ckpt.join(f).exists(), "{f}");
    }
    let m = Backbone::load(&ckpt, &LoadOptions::default()).unwrap();
    assert_eq!(m.vocab_size(), 90);
    assert_eq!(
        dlm_train::objective_of(&ckpt).unwrap().as_deref(),
        Some("diffusion")
    );

    // Stop after the first update (as Ctrl-C would), then resume: same losses, bit for bit.
    let split = tempfile::tempdir().unwrap();
    let s = dlm_train::train(cfg, split.path(), Arc::new(AtomicBool::new(true)), false).unwrap();
    assert_eq!((s.steps, s.interrupted), (1, true));
    let s = dlm_train::resume(split.path(), &[], no_stop(), false).unwrap();
    assert_eq!((s.steps, s.steps_this_run), (12, 11));
    assert_eq!(train_losses(split.path()), losses);
}

/// Trains 2 steps with vocabulary pruning (and `sets`); checks that the checkpoint's model
/// has exactly the kept ids, fewer than the original `vocab`. Returns the run directory
/// (checkpoint `ckpt-2`), the vocabulary map and the model.
fn train_pruned(
    data: &Path,
    sets: &[&str],
    vocab: usize,
) -> (tempfile::TempDir, dlm_data::VocabMap, Backbone) {
    let mut all = vec!["train.max_steps=2", "data.prune_vocab=true"];
    all.extend_from_slice(sets);
    let run = tempfile::tempdir().unwrap();
    dlm_train::train(config(data, &all), run.path(), no_stop(), false).unwrap();
    let ckpt = run.path().join("ckpt-2");
    let map = dlm_data::VocabMap::load(&ckpt).unwrap().unwrap();
    let m = Backbone::load(&ckpt, &LoadOptions::default()).unwrap();
    assert_eq!(m.vocab_size(), map.len());
    assert!(map.len() < vocab, "pruned to {}", map.len());
    (run, map, m)
}

#[test]
fn pruned_vocabulary_round_trips_text_and_shrinks_the_model() {
    let Some(data) = iwslt() else { return };
    let (run, map, m) = train_pruned(&data, &["validate.generate=true"], 90);
    let ckpt = run.path().join("ckpt-2");
    let original = Tokenizer::from_dir(tiny()).unwrap();
    let pruned = Tokenizer::from_dir(&ckpt).unwrap();
    assert_eq!(pruned.special_tokens().unwrap().pad, 1);
    assert_eq!(pruned.vocab_size(), map.len());
    pruned.check_fits(m.vocab_size()).unwrap();
    // Text made of the task's tokens decodes exactly as with the original model.
    let rows = dlm_data::read_prompt_jsonl(&data).unwrap();
    for row in &rows[..8] {
        for text in [&row.inputs, &row.targets] {
            let ids = pruned.encode(text, true).unwrap();
            assert!(ids.iter().all(|&i| (i as usize) < map.len()));
            let back = pruned.decode(&ids, false).unwrap();
            assert_eq!(
                back,
                original
                    .decode(&original.encode(text, true).unwrap(), false)
                    .unwrap()
            );
        }
    }
    // A token the task never uses becomes <unk>.
    let words = [
        "because", "world", "people", "really", "think", "going", "know", "where", "who",
    ];
    let unused = words
        .iter()
        .find(|w| {
            map.to_model(original.encode(w, false).unwrap()[0])
                .is_none()
        })
        .expect("an unused word");
    assert_eq!(
        pruned.encode(unused, false).unwrap(),
        vec![pruned.special_tokens().unwrap().unk]
    );
}

/// Trains `steps` updates on 8 rows without dropout (a run that can memorise them), with
/// `sets` on top, and checks that the mean loss of the last 5 steps is below 0.9 × that of
/// the first 5. Returns the run directory (one checkpoint, at the last step).
fn train_until_it_learns(
    data: &Path,
    steps: usize,
    sets: &[&str],
    what: &str,
) -> tempfile::TempDir {
    let (max, save) = (
        format!("train.max_steps={steps}"),
        format!("train.save_interval={steps}"),
    );
    let mut all = vec![
        max.as_str(),
        save.as_str(),
        "train.accumulation=1",
        "data.max_train_rows=8",
        "train.dropout=false",
    ];
    all.extend_from_slice(sets);
    let run = tempfile::tempdir().unwrap();
    dlm_train::train(config(data, &all), run.path(), no_stop(), false).unwrap();
    let losses = train_losses(run.path());
    let mean = |l: &[(u64, f64)]| l.iter().map(|l| l.1).sum::<f64>() / l.len() as f64;
    let (first, last) = (mean(&losses[..5]), mean(&losses[losses.len() - 5..]));
    assert!(last < 0.9 * first, "{what} loss {first} → {last}");
    run
}

#[test]
fn ar_baseline_learns_and_decodes() {
    let Some(data) = iwslt() else { return };
    let run = train_until_it_learns(&data, 50, &["objective.kind=ar"], "AR");
    let ckpt = run.path().join("ckpt-50");
    assert_eq!(
        dlm_train::objective_of(&ckpt).unwrap().as_deref(),
        Some("ar")
    );
    let opts = dlm_train::load_options_for(&ckpt, &LoadOptions::default()).unwrap();
    assert!(opts.causal);
    let model = Backbone::load(&ckpt, &opts).unwrap();
    let tokenizer = Tokenizer::from_dir(&ckpt).unwrap();
    let special = tokenizer.special_tokens().unwrap();
    let prefix = &tokenizer
        .encode(
            "Translate the sentences into English.  German: es ist diese pyramide. English: ",
            true,
        )
        .unwrap();
    let out = dlm_train::ar_generate(&model, &prefix[..prefix.len() - 1], 10, &special).unwrap();
    assert!(!out.is_empty() && out.len() <= 10);
    assert!(!out.contains(&special.mask));
}

#[test]
fn length_stage_trains_on_a_finetuned_checkpoint() {
    let Some(data) = iwslt() else { return };
    let run = tempfile::tempdir().unwrap();
    dlm_train::train(
        config(&data, &["train.max_steps=2"]),
        run.path(),
        no_stop(),
        false,
    )
    .unwrap();
    let finetuned = run.path().join("ckpt-2");
    let cfg = config(
        &data,
        &[
            &format!("model.dir={:?}", finetuned.display().to_string()),
            "stage.kind=length",
            "train.max_steps=30",
            "train.save_interval=30",
            "optimizer.lr=3e-3",
        ],
    );
    let stage = tempfile::tempdir().unwrap();
    dlm_train::train(cfg, stage.path(), no_stop(), false).unwrap();
    let losses = train_losses(stage.path());
    assert!(losses[29].1 < losses[0].1, "{:?}", (losses[0], losses[29]));
    let out = stage.path().join("ckpt-30");
    assert!(
        out.join("length_predictor.safetensors").exists() && out.join("model.safetensors").exists()
    );
    let model = Backbone::load(&out, &LoadOptions::default()).unwrap();
    let p = dlm_diffusion::LengthPredictor::load(&out, &candle_core::Device::Cpu).unwrap();
    let top = p.top_lengths(&model, &[vec![0, 6, 7]], 3, 1).unwrap();
    assert_eq!(top[0].len(), 3);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_inputs_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let good = write(
        tmp.path(),
        "good.jsonl",
        &"{\"inputs\": \"the world : \", \"targets\": \"people of the world .\"}\n".repeat(6),
    );
    let run = tmp.path().join("run");

    // Empty dataset.
    let empty = write(tmp.path(), "empty.jsonl", "\n\n");
    let e = dlm_train::train(config(&empty, &[]), &run, no_stop(), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("empty.jsonl") && e.contains("no training examples"),
        "{e}"
    );

    // A bad line names file and line.
    let bad = write(
        tmp.path(),
        "bad.jsonl",
        "{\"inputs\": \"a\", \"targets\": \"b\"}\n{\"inputs\": 3}\n",
    );
    let e = dlm_train::train(config(&bad, &[]), &run, no_stop(), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.jsonl:2:"), "{e}");

    // A directory that is not a masked LM.
    let not_model = tmp.path().join("not-a-model");
    std::fs::create_dir_all(&not_model).unwrap();
    let cfg = config(
        &good,
        &[&format!("model.dir={:?}", not_model.display().to_string())],
    );
    let e = dlm_train::train(cfg, &run, no_stop(), false).unwrap_err();
    assert!(
        matches!(e, TrainError::NotAModel { .. }) && e.to_string().contains("config.json"),
        "{e}"
    );
    std::fs::copy(tiny().join("config.json"), not_model.join("config.json")).unwrap();
    std::fs::copy(
        tiny().join("tokenizer.json"),
        not_model.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::copy(
        tiny().join("tokenizer_config.json"),
        not_model.join("tokenizer_config.json"),
    )
    .unwrap();
    let cfg = config(
        &good,
        &[&format!("model.dir={:?}", not_model.display().to_string())],
    );
    let e = dlm_train::train(cfg, &run, no_stop(), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a masked language model") && e.contains("weights"),
        "{e}"
    );

    // A write error while checkpointing (a file where the checkpoint's temporary directory
    // must go) stops the run with a clear error and leaves the previous checkpoint intact.
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("ckpt-4.tmp"), "in the way").unwrap();
    let cfg = config(
        &good,
        &[
            "train.max_steps=6",
            "train.save_interval=2",
            "train.keep_last=5",
        ],
    );
    let cfg = RunConfig {
        data: dlm_train::config::DataSection {
            valid: None,
            ..cfg.data
        },
        ..cfg
    };
    let e = dlm_train::train(cfg, &run, no_stop(), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ckpt-4") && e.contains("previous checkpoint is left intact"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("latest")).unwrap(),
        "ckpt-2\n"
    );
    assert_eq!(checkpoint::verify(&run.join("ckpt-2")).unwrap().step, 2);

    // A run directory with checkpoints is not overwritten by a fresh start.
    let e = dlm_train::train(config(&good, &[]), &run, no_stop(), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--resume"), "{e}");
}

/// The pinned reference Python (torch + transformers), when this machine has it.
fn reference_python() -> Option<PathBuf> {
    let p = PathBuf::from(
        std::env::var_os("DLM_PYREF").unwrap_or_else(|| "/work/pyref/bin/python".into()),
    );
    if p.exists() {
        return Some(p);
    }
    eprintln!(
        "skipping the transformers check: {} not found (set DLM_PYREF)",
        p.display()
    );
    None
}

#[test]
fn bf16_checkpoint_loads_in_transformers_with_the_same_logits() {
    let Some(data) = iwslt() else { return };
    // bf16 compute with fp32 master weights; the checkpoint is written in f32.
    let run = tempfile::tempdir().unwrap();
    let s = dlm_train::train(
        config(&data, &["train.max_steps=3", "model.dtype=bf16"]),
        run.path(),
        no_stop(),
        false,
    )
    .unwrap();
    assert!(s.last_loss.unwrap().is_finite());
    let ckpt = run.path().join("ckpt-3");
    let state = candle_core::safetensors::load(
        ckpt.join("trainer_state.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(state.keys().any(|k| k.starts_with("master.")));
    assert_transformers_logits(&ckpt, &[0, 6, 49, 9, 6, 75, 5, 2]);
}

/// `transformers` (when this machine has the reference Python) computes the same logits
/// (< 1e-4) as dlm for `ids` on the checkpoint `ckpt`.
fn assert_transformers_logits(ckpt: &Path, ids: &[u32]) {
    let Some(python) = reference_python() else {
        return;
    };
    let model = Backbone::load(ckpt, &LoadOptions::default()).unwrap();
    let t = candle_core::Tensor::new(ids, &candle_core::Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = candle_core::Tensor::ones(
        (1, ids.len()),
        candle_core::DType::U32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let ours = model
        .logits(&t, &mask)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let script = format!(
        "import sys, json, torch\nfrom transformers import AutoModelForMaskedLM\n\
         m = AutoModelForMaskedLM.from_pretrained(sys.argv[1]).eval()\n\
         with torch.no_grad(): out = m(torch.tensor([{ids:?}])).logits\n\
         print(json.dumps(out.flatten().tolist()))"
    );
    // TORCHDYNAMO_DISABLE: some torch builds (2.15.0+cu132 from PyPI) fail to import
    // `torch._inductor`, which transformers' ModernBERT pulls in; nothing here compiles.
    let out = std::process::Command::new(python)
        .env("TORCHDYNAMO_DISABLE", "1")
        .args(["-c", &script])
        .arg(ckpt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "max |Δlogit| = {diff}");
}

fn modernbert() -> String {
    let dir = root().join("crates/dlm-models/tests/fixtures/tiny-modernbert");
    format!("model.dir={:?}", dir.display().to_string())
}

#[test]
fn modernbert_learns_with_the_diffusion_objective_and_reloads_in_transformers() {
    let Some(data) = iwslt() else { return };
    let model = modernbert();
    let sets = [model.as_str(), "optimizer.lr=3e-3"];
    let run = train_until_it_learns(&data, 40, &sets, "ModernBERT diffusion");
    let ckpt = run.path().join("ckpt-40");
    let m = Backbone::load(&ckpt, &LoadOptions::default()).unwrap();
    assert_eq!(m.config().model_type, "modernbert");
    assert_transformers_logits(&ckpt, &[0, 6, 49, 9, 6, 70, 5, 2]);
}

#[test]
fn pruned_modernbert_reloads_here_and_in_transformers() {
    let Some(data) = iwslt() else { return };
    let (run, _, m) = train_pruned(&data, &[&modernbert()], 72);
    assert!(!m.config().tie_word_embeddings);
    assert_transformers_logits(&run.path().join("ckpt-2"), &[0, 4, 5, 6, 2]);
}
