//! Training the LLaDA and Dream backbones (tiny random checkpoints of dlm-models'
//! fixtures): LLaDA's SFT objective (`objective.kind = "llada_sft"`) against a value
//! composed from the model one example at a time and against the reference PyTorch loss
//! of `llada_dream_golden.json`; end-to-end runs through the public training API with a
//! word-level tokenizer written next to a copy of the checkpoint (the fixtures have none):
//! SFT with checkpoint, exact resume and LLaDA's own config names kept; the default
//! diffusion objective (SPEC §3) on both backbones; and the example config.

use candle_core::{D, DType, Device, Tensor};
use dlm_data::Formatted;
use dlm_diffusion::{SftConfig, SftMasks};
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use dlm_train::data::Example;
use dlm_train::metrics_log::{METRICS_FILE, Record, read_records};
use dlm_train::objective::{LladaSft, TrainObjective, response_batch};
use dlm_train::{RunConfig, checkpoint};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    root().join("crates/dlm-models/tests/fixtures")
}

/// The ids of the tiny checkpoints (vocabulary 128): `</s>` = pad = 1, `<mask>` = 126.
const BOS: u32 = 0;
const EOS: u32 = 1;
const MASK: u32 = 126;

fn load(name: &str) -> Backbone {
    let opts = LoadOptions {
        trainable: true,
        ..LoadOptions::default()
    };
    Backbone::load(&fixtures().join(format!("{name}-tiny")), &opts).unwrap()
}

fn special() -> dlm_data::SpecialTokens {
    dlm_data::SpecialTokens {
        bos: BOS,
        eos: EOS,
        pad: EOS,
        mask: MASK,
        unk: 2,
    }
}

fn sft(name: &str, eos_padding: bool) -> LladaSft {
    LladaSft {
        model: load(name),
        cfg: SftConfig::llada(MASK, EOS),
        special: special(),
        eos_padding,
    }
}

/// An example whose first `prompt` positions are fixed.
fn example(ids: &[u32], prompt: usize) -> Example {
    let seq = Formatted {
        ids: ids.to_vec(),
        fixed: (0..ids.len()).map(|i| i < prompt).collect(),
    };
    Example {
        seq,
        response: String::new(),
    }
}

/// `Σ_masked CE / (p · answer)` of one row, composed from the trait: the noisy row alone
/// (no padding, every position attended), `encode`, the masked rows, `project`,
/// `log_softmax`.
fn composed_row_loss(
    model: &Backbone,
    ids: &[u32],
    answer: usize,
    masked: &[usize],
    p: f64,
) -> f64 {
    let noisy: Vec<u32> = ids
        .iter()
        .enumerate()
        .map(|(j, &id)| if masked.contains(&j) { MASK } else { id })
        .collect();
    let input = Tensor::new(noisy.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = model
        .encode(&input, &input.ones_like().unwrap())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let at: Vec<u32> = masked.iter().map(|&j| j as u32).collect();
    let rows = hidden
        .index_select(&Tensor::new(at.as_slice(), &Device::Cpu).unwrap(), 0)
        .unwrap();
    let logp = candle_nn::ops::log_softmax(
        &model.project(&rows).unwrap().to_dtype(DType::F32).unwrap(),
        D::Minus1,
    )
    .unwrap();
    let logp = logp.to_vec2::<f32>().unwrap();
    let ce: f64 = masked
        .iter()
        .zip(&logp)
        .map(|(&j, row)| -row[ids[j] as usize] as f64)
        .sum();
    ce / (p * answer as f64)
}

#[test]
fn sft_loss_on_a_fixed_mask_pattern_equals_the_value_composed_row_by_row() {
    // Two examples of different lengths in one micro-batch: the shorter one is padded,
    // and its final </s> (= the padding id) is a real, attended response position.
    let long = example(&[BOS, 17, 23, 5, 40, 41, 42, 43, 44, EOS], 4); // answer length 6
    let short = example(&[BOS, 30, 31, 50, 51, EOS], 3); // answer length 3
    let batch = [&long, &short];
    for name in ["llada", "dream"] {
        let obj = sft(name, false);
        // long: positions 5, 7 and its </s> (9) masked; short: 3 masked, its </s> (5) not.
        let masks = SftMasks {
            p_mask: vec![0.4, 0.7],
            masked: [
                vec![
                    false, false, false, false, false, true, false, true, false, true,
                ],
                vec![
                    false, false, false, true, false, false, false, false, false, false,
                ],
            ]
            .concat(),
        };
        let out = obj.step_with(&batch, &masks).unwrap();
        let want = (composed_row_loss(&obj.model, &long.seq.ids, 6, &[5, 7, 9], 0.4)
            + composed_row_loss(&obj.model, &short.seq.ids, 3, &[3], 0.7))
            / 2.0;
        let got = out.metrics.loss;
        assert!(
            (got - want).abs() < 1e-5 * want.max(1.0),
            "{name}: {got} vs composed {want}"
        );
        assert_eq!((out.metrics.scored, out.metrics.tokens), (4, 16));

        // LLaDA's batching (`eos_padding`): the short row is padded with </s> to 10, the
        // padding is response (answer length 7) and may be masked and scored.
        let padded = sft(name, true);
        let tb = padded.token_batch(&batch);
        assert_eq!(
            &tb.ids[10..],
            &[BOS, 30, 31, 50, 51, EOS, EOS, EOS, EOS, EOS]
        );
        assert_eq!(tb.maskable_in_row(1), 7);
        let mut masks = masks.clone();
        masks.masked[10 + 8] = true;
        let out = padded.step_with(&batch, &masks).unwrap();
        let short_padded = [&short.seq.ids[..], &[EOS; 4]].concat();
        let want = (composed_row_loss(&obj.model, &long.seq.ids, 6, &[5, 7, 9], 0.4)
            + composed_row_loss(&obj.model, &short_padded, 7, &[3, 8], 0.7))
            / 2.0;
        assert!(
            (out.metrics.loss - want).abs() < 1e-5 * want.max(1.0),
            "{name} eos_padding: {} vs {want}",
            out.metrics.loss
        );
    }
}

#[test]
fn the_final_eos_is_maskable_when_it_is_the_padding_id() {
    let batch = [&example(&[BOS, 7, 8, EOS], 2), &example(&[BOS, 9, EOS], 1)];
    let tb = response_batch(&batch, EOS, None);
    assert_eq!(tb.ids, vec![BOS, 7, 8, EOS, BOS, 9, EOS, EOS]);
    assert_eq!(
        tb.maskable,
        vec![false, false, true, true, false, true, true, false]
    );
}

fn golden() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("llada_dream_golden.json")).unwrap(),
    )
    .unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn sft_loss_equals_the_reference_for_the_golden_mask_pattern() {
    let g = golden();
    for name in ["llada", "dream"] {
        let c = &g[name]["grad"];
        let ids = u32s(&c["input_ids"]);
        let prompt = c["prompt_length"].as_u64().unwrap() as usize;
        let e = example(&ids, prompt);
        assert_eq!(
            e.seq.n_maskable() as u64,
            c["answer_length"].as_u64().unwrap()
        );
        let pattern = u32s(&c["mask_pattern"]);
        let masks = SftMasks {
            p_mask: vec![c["p_mask"].as_f64().unwrap()],
            masked: pattern.iter().map(|&m| m == 1).collect(),
        };
        // The fixture's noisy ids are what the objective feeds the model.
        let noisy: Vec<u32> = ids
            .iter()
            .zip(&masks.masked)
            .map(|(&id, &m)| if m { MASK } else { id })
            .collect();
        assert_eq!(noisy, u32s(&c["noisy_ids"]));
        let out = sft(name, false).step_with(&[&e], &masks).unwrap();
        let want = c["loss"].as_f64().unwrap();
        let got = out.metrics.loss;
        eprintln!("{name}: SFT loss {got} (reference {want})");
        assert!(
            (got - want).abs() < 1e-4,
            "{name}: loss {got} vs reference {want}"
        );
        assert_eq!(
            out.metrics.scored,
            pattern.iter().filter(|&&m| m == 1).count()
        );
        // The objective's p_mask formula gives the fixture's p_mask from its t.
        let (t, eps) = (c["t"].as_f64().unwrap(), c["eps"].as_f64().unwrap());
        assert!(((1.0 - eps) * t + eps - masks.p_mask[0]).abs() < 1e-12);
        assert_eq!(eps, dlm_diffusion::LLADA_MASK_EPS);
    }
}

#[test]
fn sft_step_draws_its_masks_from_the_given_rng() {
    use rand::SeedableRng;
    let batch = [&example(&[BOS, 17, 23, 5, 40, 41, 42, 43, 44, EOS], 3)];
    let mut obj = sft("llada", false);
    let mut run = |seed: u64| {
        obj.step(&batch, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed))
            .unwrap()
            .metrics
    };
    let (a, b) = (run(5), run(5));
    assert_eq!(a, b);
    assert!(a.loss.is_finite());
    assert!(
        (0..20).map(run).any(|m| m.loss != a.loss),
        "the seed changes the draw"
    );
}

// ---- end-to-end runs ----

const WORDS: [&str; 20] = [
    "copy", "reverse", ":", "red", "green", "blue", "cat", "dog", "sun", "moon", "tree", "rock",
    "one", "two", "three", "four", "big", "small", "fast", "slow",
];

/// How the word-level tokenizer of the tiny checkpoints is laid out.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// `<s>` 0, `</s>` 1 (also the padding id, from config.json, as LLaDA's), `<unk>` 2,
    /// `<mask>` 126; the post-processor wraps every text in `<s> … </s>`;
    /// tokenizer_config.json names the tokens.
    Wrapping,
    /// LLaDA's released layout with the special-token map of `configs/llada-sft.toml`:
    /// `<|startoftext|>` 0, `<|endoftext|>` 1 (end, padding and unknown), `<|mdm_mask|>`
    /// 126, no post-processor (encoding adds nothing); special_tokens_map.json names them.
    Llada,
}

/// Writes the tokenizer into `dir`: the words from id 3.
fn write_tokenizer(dir: &Path, layout: Layout) {
    let specials: [(u32, &str); 4] = match layout {
        Layout::Wrapping => [(0, "<s>"), (1, "</s>"), (2, "<unk>"), (126, "<mask>")],
        Layout::Llada => [
            (0, "<|startoftext|>"),
            (1, "<|endoftext|>"),
            (2, "<|reserved|>"),
            (126, "<|mdm_mask|>"),
        ],
    };
    let added: Vec<Value> = specials
        .iter()
        .map(|(id, content)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let mut vocab = serde_json::Map::new();
    for (id, t) in specials {
        vocab.insert(t.into(), json!(id));
    }
    for (i, w) in WORDS.iter().enumerate() {
        vocab.insert((*w).into(), json!(3 + i));
    }
    let token = |t: &str| json!({"SpecialToken": {"id": t, "type_id": 0}});
    let post_processor = match layout {
        Layout::Wrapping => json!({
            "type": "TemplateProcessing",
            "single": [token("<s>"), {"Sequence": {"id": "A", "type_id": 0}}, token("</s>")],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {
                "<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                "</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}
            }
        }),
        Layout::Llada => Value::Null,
    };
    let unk = if layout == Layout::Wrapping {
        "<unk>"
    } else {
        "<|endoftext|>"
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": post_processor,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": unk}
    });
    std::fs::write(
        dir.join("tokenizer.json"),
        serde_json::to_string_pretty(&tokenizer).unwrap(),
    )
    .unwrap();
    let (file, names) = match layout {
        Layout::Wrapping => (
            "tokenizer_config.json",
            json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask>"}),
        ),
        Layout::Llada => (
            "special_tokens_map.json",
            json!({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "mask_token": "<|mdm_mask|>", "unk_token": "<|endoftext|>"}),
        ),
    };
    std::fs::write(dir.join(file), names.to_string()).unwrap();
}

/// A copy of the `name-tiny` checkpoint with a word-level tokenizer.
fn model_dir_with(tmp: &Path, name: &str, layout: Layout) -> PathBuf {
    let tag = if layout == Layout::Llada {
        "-lladatok"
    } else {
        ""
    };
    let dir = tmp.join(format!("{name}-tiny{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(format!("{name}-tiny")).join(f), dir.join(f)).unwrap();
    }
    write_tokenizer(&dir, layout);
    dir
}

fn model_dir(tmp: &Path, name: &str) -> PathBuf {
    model_dir_with(tmp, name, Layout::Wrapping)
}

/// 16 prompt-response rows over [`WORDS`]: copy or reverse 2-5 words.
fn write_data(tmp: &Path) -> PathBuf {
    let mut lines = String::new();
    for i in 0..16usize {
        let n = 2 + i % 4;
        let words: Vec<&str> = (0..n).map(|k| WORDS[3 + (i * 7 + k * 5) % 17]).collect();
        let (task, mut out) = if i % 2 == 0 {
            ("copy", words.clone())
        } else {
            ("reverse", words.clone())
        };
        if task == "reverse" {
            out.reverse();
        }
        let row =
            json!({"inputs": format!("{task} : {}", words.join(" ")), "targets": out.join(" ")});
        lines.push_str(&format!("{row}\n"));
    }
    let path = tmp.join("words.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

fn config(model: &Path, data: &Path, sets: &[&str]) -> RunConfig {
    let mut all: Vec<String> = vec![
        format!("model.dir={:?}", model.display().to_string()),
        format!("data.train={:?}", data.display().to_string()),
        format!("data.valid={:?}", data.display().to_string()),
        "data.max_tokens=64".into(),
        "data.max_train_rows=0".into(),
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

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn llada_sft_run_checkpoints_resumes_exactly_and_keeps_llada_config_names() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path(), "llada");
    let data = write_data(tmp.path());
    let cfg = config(
        &model,
        &data,
        &[
            "objective.kind=llada_sft",
            "train.max_steps=6",
            "train.save_interval=3",
            "train.validate_interval=3",
        ],
    );
    // The tokenizer speaks the checkpoint's ids: </s> is its padding id, <mask> its mask.
    let tok = dlm_data::Tokenizer::from_dir(&model).unwrap();
    let s = tok.special_tokens().unwrap();
    assert_eq!((s.bos, s.eos, s.pad, s.mask), (BOS, EOS, EOS, MASK));

    let full = tempfile::tempdir().unwrap();
    let summary = dlm_train::train(cfg.clone(), full.path(), no_stop(), false).unwrap();
    assert_eq!((summary.steps, summary.interrupted), (6, false));
    let losses = train_losses(full.path());
    assert_eq!(losses.len(), 6);
    assert!(
        losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    // Validation ran (loss and oracle-length generation) at steps 3 and 6.
    let valid: Vec<_> = read_records(&full.path().join(METRICS_FILE))
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            if let Record::Valid(v) = r {
                Some(v)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(valid.len(), 2);
    assert!(
        valid.iter().all(|v| v.loss.is_finite() && v.bleu.is_some()),
        "{valid:?}"
    );

    // The checkpoint is a LLaDA model directory: LLaDA's own config names, the objective
    // marked, loadable by dlm.
    let ckpt = full.path().join("ckpt-6");
    let saved = read_json(&ckpt.join("config.json"));
    let original = read_json(&model.join("config.json"));
    for (k, v) in original.as_object().unwrap() {
        assert_eq!(&saved[k], v, "config field {k} changed on save");
    }
    for k in [
        "d_model",
        "n_layers",
        "n_heads",
        "mlp_hidden_size",
        "max_sequence_length",
    ] {
        assert!(saved.get(k).is_some(), "{k} missing");
    }
    for k in [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
    ] {
        assert!(saved.get(k).is_none(), "{k} written into LLaDA's config");
    }
    assert_eq!(saved["dlm_objective"], "llada_sft");
    assert_eq!(
        dlm_train::objective_of(&ckpt).unwrap().as_deref(),
        Some("llada_sft")
    );
    let m = Backbone::load(&ckpt, &LoadOptions::default()).unwrap();
    assert_eq!(
        (m.config().model_type.as_str(), m.vocab_size()),
        ("llada", 128)
    );
    assert!(!m.closes_canvas_with_eos());
    assert!(ckpt.join("tokenizer.json").exists());
    assert_eq!(checkpoint::verify(&ckpt).unwrap().step, 6);

    // Stop after the first update, then resume: the same losses, bit for bit.
    let split = tempfile::tempdir().unwrap();
    let s = dlm_train::train(cfg, split.path(), Arc::new(AtomicBool::new(true)), false).unwrap();
    assert_eq!((s.steps, s.interrupted), (1, true));
    let s = dlm_train::resume(split.path(), &[], no_stop(), false).unwrap();
    assert_eq!((s.steps, s.steps_this_run), (6, 5));
    assert_eq!(train_losses(split.path()), losses);
}

#[test]
fn llada_sft_learns_the_tiny_task() {
    // The validation loss (the same masks every time) before and after 40 updates.
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path(), "llada");
    let data = write_data(tmp.path());
    let sets = [
        "objective.kind=llada_sft",
        "train.max_steps=40",
        "train.save_interval=40",
        "train.validate_interval=40",
        "train.accumulation=1",
        "train.dropout=false",
        "optimizer.lr=3e-3",
        "validate.generate=false",
        "validate.rows=16",
    ];
    let cfg = config(&model, &data, &sets);
    let mut session = dlm_train::session::build(&cfg, None).unwrap();
    let valid = session.valid.take().unwrap();
    let before = dlm_train::validate::validate(
        session.objective.as_mut(),
        &valid,
        &session.tokenizer,
        &cfg,
        0,
    )
    .unwrap()
    .loss;
    let run = tempfile::tempdir().unwrap();
    dlm_train::train(cfg, run.path(), no_stop(), false).unwrap();
    let after = read_records(&run.path().join(METRICS_FILE))
        .unwrap()
        .into_iter()
        .find_map(|r| {
            if let Record::Valid(v) = r {
                Some(v.loss)
            } else {
                None
            }
        })
        .unwrap();
    eprintln!("llada_sft validation loss {before} → {after}");
    assert!(
        after < 0.7 * before,
        "llada_sft validation loss {before} → {after}"
    );
}

#[test]
fn the_diffusion_objective_trains_llada_and_dream() {
    // SPEC §3 (the default objective, both loss forms) is written against `MaskedLm`: it
    // runs unchanged on the LLaDA and Dream backbones and writes their checkpoints.
    let tmp = tempfile::tempdir().unwrap();
    let data = write_data(tmp.path());
    for name in ["llada", "dream"] {
        let model = model_dir(tmp.path(), name);
        for form in ["dlm", "rdm"] {
            let form_set = format!("objective.form={form}");
            let sets = [
                "train.max_steps=3",
                "train.save_interval=3",
                "validate.generate=true",
                form_set.as_str(),
            ];
            let run = tempfile::tempdir().unwrap();
            let s = dlm_train::train(config(&model, &data, &sets), run.path(), no_stop(), false)
                .unwrap();
            assert_eq!(s.steps, 3);
            let losses = train_losses(run.path());
            assert!(
                losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0),
                "{name} {form}: {losses:?}"
            );
            let ckpt = run.path().join("ckpt-3");
            assert_eq!(
                dlm_train::objective_of(&ckpt).unwrap().as_deref(),
                Some("diffusion")
            );
            let saved = read_json(&ckpt.join("config.json"));
            assert_eq!(
                saved["model_type"],
                read_json(&model.join("config.json"))["model_type"]
            );
            Backbone::load(&ckpt, &LoadOptions::default()).unwrap();
        }
    }
}

#[test]
fn examples_are_bos_prompt_response_eos_with_a_tokenizer_that_adds_nothing() {
    // LLaDA's layout (no post-processor, the special-token map of configs/llada-sft.toml)
    // formats the same examples as a wrapping tokenizer: `<s> prompt response </s>`, the
    // response and its `</s>` maskable.
    let tmp = tempfile::tempdir().unwrap();
    let data = write_data(tmp.path());
    let load = |layout| {
        let tok =
            dlm_data::Tokenizer::from_dir(model_dir_with(tmp.path(), "llada", layout)).unwrap();
        let special = tok.special_tokens().unwrap();
        (
            dlm_train::data::Dataset::load(&data, &tok, &special, 32, 0).unwrap(),
            special,
        )
    };
    let (llada, special) = load(Layout::Llada);
    assert_eq!(
        (special.bos, special.eos, special.pad, special.mask),
        (BOS, EOS, EOS, MASK)
    );
    let (wrapping, _) = load(Layout::Wrapping);
    assert_eq!(llada.examples, wrapping.examples);
    let e = &llada.examples[0]; // "copy : w1 w2" → "w1 w2"
    assert_eq!((e.seq.ids[0], *e.seq.ids.last().unwrap()), (BOS, EOS));
    assert_eq!((e.seq.n_fixed(), e.seq.n_maskable()), (5, 3));
    // And it trains with llada_sft.
    let model = tmp.path().join("llada-tiny-lladatok");
    let run = tempfile::tempdir().unwrap();
    let cfg = config(
        &model,
        &data,
        &[
            "objective.kind=llada_sft",
            "train.max_steps=2",
            "validate.generate=false",
        ],
    );
    assert!(
        dlm_train::train(cfg, run.path(), no_stop(), false)
            .unwrap()
            .last_loss
            .unwrap()
            .is_finite()
    );
}

#[test]
fn example_config_parses() {
    let cfg = RunConfig::load(&root().join("configs/llada-sft.toml"), &[]).unwrap();
    assert_eq!(
        cfg.objective.kind,
        dlm_train::config::ObjectiveKind::LladaSft
    );
    assert_eq!(cfg.model.dtype, dlm_train::config::Precision::Bf16);
    assert_eq!(cfg.objective.mask_eps, 1e-3);
}
