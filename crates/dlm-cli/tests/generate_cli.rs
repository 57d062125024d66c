//! `dlm generate` end to end on the tiny random XLM-R checkpoint (word-level tokenizer,
//! `<mask>` = 89, at most 32 positions): the JSON output's structure and invariants, the
//! terminal trajectory, the SVG picture, every strategy and its options, length beams, and
//! bad inputs failing clearly.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const MASK: u64 = 89;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> String {
    root().join("crates/dlm-models/tests/fixtures/tiny-xlmr").display().to_string()
}

/// tiny-xlmr plus the length predictor fixture of dlm-diffusion, in a fresh directory.
fn tiny_with_length_predictor(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlm-generate-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = root().join("crates/dlm-models/tests/fixtures/tiny-xlmr");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(model.join(f), dir.join(f)).unwrap();
    }
    let lp = root().join("crates/dlm-diffusion/tests/fixtures/length-predictor");
    for f in ["length_predictor.json", "length_predictor.safetensors"] {
        std::fs::copy(lp.join(f), dir.join(f)).unwrap();
    }
    dir
}

fn dlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlm")).args(args).output().unwrap()
}

fn generate_json(extra: &[&str]) -> Value {
    let model = tiny();
    let mut args = vec!["generate", "--model", &model, "--prompt", "the and to of a", "--json"];
    args.extend_from_slice(extra);
    let out = dlm(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn failure(args: &[&str]) -> String {
    let out = dlm(args);
    assert!(!out.status.success(), "expected failure, got {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn json_has_the_canvas_the_generation_and_the_trajectory() {
    let v = generate_json(&["--length", "6", "--steps", "4", "--trajectory"]);
    for key in ["text", "ids", "generated_ids", "mean_logprob", "trajectory"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["text"].is_string());
    let canvas = ids(&v["ids"]);
    let generated = ids(&v["generated_ids"]);
    // <s> the and to of a | 6 generated | </s>  (words 6, 7, 8, 9, 10 of the vocabulary)
    assert_eq!(&canvas[..6], &[0, 6, 7, 8, 9, 10]);
    assert_eq!(canvas.len(), 6 + 6 + 1);
    assert_eq!(*canvas.last().unwrap(), 2);
    assert_eq!(&canvas[6..12], generated.as_slice());
    assert!(!canvas.contains(&MASK));
    assert!(v["mean_logprob"].as_f64().unwrap() <= 0.0);
    let steps: Vec<Vec<u64>> = v["trajectory"].as_array().unwrap().iter().map(ids).collect();
    assert!(!steps.is_empty() && steps.len() <= 4);
    for s in &steps {
        assert_eq!(s.len(), canvas.len());
        assert_eq!(&s[..6], &canvas[..6], "prompt changed");
        assert_eq!(s[12], 2, "</s> changed");
    }
    assert!(steps[0].contains(&MASK), "step 1 of 4 should leave masks");
    assert_eq!(steps.last().unwrap(), &canvas);
}

#[test]
fn trajectory_only_on_request_and_runs_are_reproducible() {
    let a = generate_json(&["--length", "5"]);
    assert!(a.get("trajectory").is_none());
    assert_eq!(a, generate_json(&["--length", "5"]));
    let s1 = generate_json(&["--length", "5", "--temperature", "1.0", "--seed", "3"]);
    assert_eq!(s1, generate_json(&["--length", "5", "--temperature", "1.0", "--seed", "3"]));
}

#[test]
fn every_strategy_fills_the_canvas() {
    for strategy in ["reparam-uncond", "reparam-cond", "stochastic", "cmlm", "ar", "llada", "fast-dllm"] {
        for schedule in ["cosine", "linear"] {
            let v = generate_json(&["--length", "7", "--steps", "7", "--strategy", strategy, "--schedule", schedule]);
            let generated = ids(&v["generated_ids"]);
            assert_eq!(generated.len(), 7, "{strategy}");
            assert!(!generated.contains(&MASK), "{strategy} {schedule}: {generated:?}");
        }
    }
}

#[test]
fn terminal_trajectory_shows_masks() {
    let model = tiny();
    let out = dlm(&["generate", "--model", &model, "--prompt", "the and", "--length", "4", "--steps", "3", "--trajectory"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("step 1/3"), "{text}");
    assert!(text.lines().next().unwrap().contains('▢'), "{text}");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlm-generate-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn trajectory(v: &Value) -> Vec<Vec<u64>> {
    v["trajectory"].as_array().unwrap().iter().map(ids).collect()
}

/// Masks left in a canvas (only generation positions can hold one).
fn masks(canvas: &[u64]) -> usize {
    canvas.iter().filter(|&&t| t == MASK).count()
}

#[test]
fn svg_picture_has_a_row_per_step_and_a_cell_per_token() {
    let dir = temp_dir("svg");
    let svg_path = dir.join("steps.svg");
    let model = tiny();
    let prompt = "the & and <to> of a";
    let out = dlm(&[
        "generate", "--model", &model, "--prompt", prompt, "--length", "6", "--steps", "4", "--json", "--trajectory",
        "--trajectory-svg", svg_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = trajectory(&v);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>\n"));
    assert_eq!(svg.matches("<g class=\"step\"").count(), steps.len());
    assert_eq!(svg.matches("<rect class=\"cell ").count(), steps.len() * 6);
    // Each row is labelled with the masks its canvas still has.
    for (s, canvas) in steps.iter().enumerate() {
        let label = format!("data-step=\"{}\" data-masks=\"{}\"", s + 1, masks(canvas));
        assert!(svg.contains(&label), "missing {label}");
    }
    assert!(svg.contains(">the &amp; and &lt;to&gt; of a</text>"), "prompt not shown escaped");
    let text = v["text"].as_str().unwrap();
    assert!(svg.contains(&text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")), "final text missing");
    assert!(!svg.contains("<to>"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn svg_alone_records_the_trajectory_without_printing_it() {
    let dir = temp_dir("svg-alone");
    let svg_path = dir.join("steps.svg");
    let v = generate_json(&["--length", "5", "--steps", "3", "--trajectory-svg", svg_path.to_str().unwrap()]);
    assert!(v.get("trajectory").is_none());
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(svg.matches("<rect class=\"cell ").count() % 5, 0);
    assert!(svg.matches("<g class=\"step\"").count() >= 1);
    let err = failure(&[
        "generate", "--model", &tiny(), "--prompt", "the", "--length", "3", "--trajectory-svg", "/nonexistent/dir/x.svg",
    ]);
    assert!(err.contains("writing /nonexistent/dir/x.svg"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn llada_block_length_fills_blocks_left_to_right() {
    // 6 tokens in blocks of 2 with 6 steps: 2 steps per block, one token per step, so after
    // step 2 the first block is complete and the other two untouched.
    let v = generate_json(&["--length", "6", "--steps", "6", "--strategy", "llada", "--block-length", "2", "--trajectory"]);
    let steps = trajectory(&v);
    assert_eq!(steps.len(), 6);
    let block_masks = |s: usize| (0..3).map(|b| steps[s][6 + 2 * b..8 + 2 * b].iter().filter(|&&t| t == MASK).count()).collect::<Vec<_>>();
    assert_eq!(block_masks(0), vec![1, 2, 2]);
    assert_eq!(block_masks(1), vec![0, 2, 2]);
    assert_eq!(block_masks(3), vec![0, 0, 2]);
    assert_eq!(block_masks(5), vec![0, 0, 0]);
}

#[test]
fn fast_dllm_threshold_sets_how_many_tokens_a_step_unmasks() {
    // Threshold 1: no probability reaches it, so only the single most confident token per
    // step (6 steps); threshold 0: the whole block of 3 per step (2 steps).
    let one_by_one = generate_json(&["--length", "6", "--strategy", "fast-dllm", "--threshold", "1.0", "--block-length", "3", "--trajectory"]);
    let steps = trajectory(&one_by_one);
    assert_eq!(steps.iter().map(|c| masks(c)).collect::<Vec<_>>(), vec![5, 4, 3, 2, 1, 0]);
    let blockwise = generate_json(&["--length", "6", "--strategy", "fast-dllm", "--threshold", "0", "--block-length", "3", "--trajectory"]);
    let steps = trajectory(&blockwise);
    assert_eq!(steps.iter().map(|c| masks(c)).collect::<Vec<_>>(), vec![3, 0]);
    assert!(!steps[0][6..9].contains(&MASK), "the first block is filled first");
}

#[test]
fn zero_noise_scale_is_deterministic_reparam() {
    let mut plain = generate_json(&["--length", "7", "--strategy", "reparam-uncond", "--trajectory"]);
    let mut noiseless = generate_json(&["--length", "7", "--strategy", "stochastic", "--noise-scale", "0", "--trajectory"]);
    // The same canvases at every step. The log-probabilities are read off by two paths
    // (the fused greedy head and the composed log-softmax) whose log-sum-exps add in
    // different orders, so they agree to rounding, not bitwise.
    let (a, b) = (plain["mean_logprob"].take().as_f64().unwrap(), noiseless["mean_logprob"].take().as_f64().unwrap());
    assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "mean log p {a} vs {b}");
    assert_eq!(plain, noiseless);
}

#[test]
fn strategy_options_are_rejected_where_unused_or_invalid() {
    let model = tiny();
    let base = ["generate", "--model", model.as_str(), "--prompt", "the and", "--length", "4"];
    let with = |extra: &[&str]| failure(&[&base[..], extra].concat());
    let err = with(&["--block-length", "2"]);
    assert!(err.contains("--block-length applies only to --strategy llada and fast-dllm, not reparam-uncond"), "{err}");
    let err = with(&["--strategy", "llada", "--threshold", "0.5"]);
    assert!(err.contains("--threshold applies only to --strategy fast-dllm, not llada"), "{err}");
    let err = with(&["--strategy", "cmlm", "--noise-scale", "0.5"]);
    assert!(err.contains("--noise-scale applies only to --strategy stochastic, not cmlm"), "{err}");
    assert!(with(&["--strategy", "fast-dllm", "--threshold", "1.5"]).contains("confidence threshold must be in [0, 1]"));
    assert!(with(&["--strategy", "llada", "--block-length", "0"]).contains("block length must be at least 1"));
    assert!(with(&["--strategy", "stochastic", "--noise-scale=-1"]).contains("noise scale must be non-negative"));
    // 4 tokens in blocks of 3 → 2 blocks; 5 steps is not a multiple of 2.
    let err = with(&["--strategy", "llada", "--block-length", "3", "--steps", "5"]);
    assert!(err.contains("multiple of the number of blocks"), "{err}");
}

#[test]
fn length_beam_uses_the_predictor() {
    let dir = tiny_with_length_predictor("beam");
    let out = dlm(&[
        "generate", "--model", dir.to_str().unwrap(), "--prompt", "the and to", "--length-beam", "3", "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let canvas = ids(&v["ids"]);
    let generated = ids(&v["generated_ids"]);
    assert_eq!(canvas.len(), 4 + generated.len() + 1);
    assert!(!generated.is_empty() && !canvas.contains(&MASK));
    // The predictor has 34 length classes.
    let err = failure(&["generate", "--model", dir.to_str().unwrap(), "--prompt", "the", "--length-beam", "35"]);
    assert!(err.contains("length beam 35 is larger than the 34 length classes"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_fail_with_clear_messages() {
    let model = tiny();
    let base = ["generate", "--model", model.as_str(), "--prompt", "the and"];
    let with = |extra: &[&str]| failure(&[&base[..], extra].concat());
    assert!(with(&["--length", "0"]).contains("generation length must be at least 1"));
    assert!(with(&["--length", "3", "--steps", "0"]).contains("denoising steps must be at least 1"));
    let err = with(&["--length-beam", "2"]);
    assert!(err.contains("length_predictor.safetensors") && err.contains("--length"), "{err}");
    let long = vec!["the"; 40].join(" ");
    let err = failure(&["generate", "--model", &model, "--prompt", &long, "--length", "3"]);
    assert!(err.contains("allows at most 32"), "{err}");
    let err = failure(&["generate", "--model", "/nonexistent", "--prompt", "x", "--length", "3"]);
    assert!(err.contains("not a model directory"), "{err}");
}

#[test]
fn chat_renders_the_models_template_and_adds_no_special_tokens() {
    // tiny-xlmr plus a chat template: the user's text, then " a" as the assistant cue; no
    // <s> in the template, so none in the canvas (the tokenizer adds none with --chat).
    let dir = temp_dir("chat");
    let model = root().join("crates/dlm-models/tests/fixtures/tiny-xlmr");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(model.join(f), dir.join(f)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("tokenizer_config.json")).unwrap()).unwrap();
    config["chat_template"] = serde_json::json!(
        "{% for m in messages %}{% if m.role != 'user' %}{{ raise_exception('users only') }}{% endif %}{{ m.content | trim }}{% endfor %}{% if add_generation_prompt %} a{% endif %}"
    );
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    let d = dir.display().to_string();
    let out = dlm(&["generate", "--model", &d, "--prompt", " and to ", "--chat", "--length", "4", "--steps", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let canvas = ids(&v["ids"]);
    // "and to a" (7 8 10), 4 generated positions, </s>.
    assert_eq!(&canvas[..3], &[7, 8, 10]);
    assert_eq!(canvas.len(), 3 + 4 + 1);
    assert_eq!(*canvas.last().unwrap(), 2);
    // Without --chat the same folder tokenizes the prompt as always: <s> and to.
    let out = dlm(&["generate", "--model", &d, "--prompt", "and to", "--length", "4", "--steps", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(&ids(&v["ids"])[..3], &[0, 7, 8]);

    let err = failure(&["generate", "--model", &d, "--prompt-ids", "0,7,8", "--chat", "--length", "4"]);
    assert!(err.contains("--chat") && err.contains("--prompt TEXT"), "{err}");
    let plain = tiny();
    let err = failure(&["generate", "--model", &plain, "--prompt", "and to", "--chat", "--length", "4"]);
    assert!(err.contains("no chat template") && err.contains("tokenizer_config.json"), "{err}");
}

#[test]
fn cache_refresh_runs_every_strategy() {
    // refresh:1 and reuse:1 are the uncached run; refresh:R and reuse:R with R > 1 run the
    // full-canvas strategies (and the others) and keep the prompt; prefix and dual stay
    // llada/fast-dllm only; R ≥ 1.
    for strategy in ["reparam-uncond", "reparam-cond", "cmlm", "llada"] {
        let base = ["--length", "8", "--steps", "8", "--strategy", strategy, "--trajectory"];
        let none = generate_json(&base);
        for kind in ["refresh", "reuse"] {
            assert_eq!(generate_json(&[&base[..], &["--cache", &format!("{kind}:1")]].concat()), none, "{strategy} {kind}");
            let cached = generate_json(&[&base[..], &["--cache", &format!("{kind}:3")]].concat());
            assert_eq!(ids(&cached["ids"]).len(), ids(&none["ids"]).len(), "{strategy} {kind}");
            assert_eq!(ids(&cached["ids"])[..6], ids(&none["ids"])[..6], "{strategy} {kind}: the prompt changed");
        }
    }
    let model = tiny();
    let base = ["generate", "--model", model.as_str(), "--prompt", "the and", "--length", "4"];
    let err = failure(&[&base[..], &["--cache", "dual"]].concat());
    assert!(err.contains("--cache dual applies only to --strategy llada and fast-dllm, not reparam-uncond"), "{err}");
    for bad in ["refresh:0", "reuse:0"] {
        let err = failure(&[&base[..], &["--cache", bad]].concat());
        assert!(err.contains("expected none, prefix, dual, refresh:R or reuse:R"), "{err}");
    }
}
