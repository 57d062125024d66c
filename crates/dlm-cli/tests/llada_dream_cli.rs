//! `dlm generate` and `dlm fill-mask` on tiny random LLaDA and Dream checkpoints, as users
//! download them, against the reference generation code at temperature 0 (LLaDA's
//! `generate()`, Fast-dLLM's threshold `generate()`, Dream's `diffusion_generate`;
//! fixtures and pinned commits: scripts/reference/llada_dream_fixtures.py): the generated
//! tokens and every intermediate canvas.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures")
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("llada_dream_golden.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn csv(v: &Value) -> String {
    ids(v).iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn dlm(args: &[String]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dlm")).args(args).output().unwrap();
    assert!(out.status.success(), "dlm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The distinct canvases in order (a step that changes nothing is not a new state: the
/// reference records a canvas per forward, dlm per step that unmasks something).
fn states(canvases: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let mut out: Vec<Vec<u64>> = Vec::new();
    for c in canvases {
        if out.last() != Some(c) {
            out.push(c.clone());
        }
    }
    out
}

/// The `dlm generate` options that reproduce a reference case (Fast-dLLM's cached loops
/// with `--cache prefix|dual`: `llada` without a threshold, `fast-dllm` with one), or
/// `None` for a function this test does not know.
fn options(case: &Value) -> Option<Vec<String>> {
    let s = |k: &str| case[k].to_string();
    let mut args = vec!["--length".into(), s("gen_length"), "--steps".into(), s("steps")];
    let function = case["function"].as_str().unwrap();
    let (function, cache) = match function.strip_suffix("_with_prefix_cache").or(function.strip_suffix("_with_dual_cache")) {
        Some(base) => (base, Some(if function.ends_with("prefix_cache") { "prefix" } else { "dual" })),
        None => (function, None),
    };
    if let Some(cache) = cache {
        args.extend(["--cache".into(), cache.into()]);
    }
    match function {
        "llada.generate" => args.extend(["--strategy".into(), "llada".into(), "--block-length".into(), s("block_length")]),
        "fast_dllm.generate" if case["threshold"].is_null() => {
            args.extend(["--strategy".into(), "llada".into(), "--block-length".into(), s("block_length")])
        }
        "fast_dllm.generate" => args.extend([
            "--strategy".into(),
            "fast-dllm".into(),
            "--block-length".into(),
            s("block_length"),
            "--threshold".into(),
            s("threshold"),
        ]),
        "diffusion_generate" => {
            let alg = case["alg"].as_str().unwrap().replace('_', "-");
            args.extend(["--strategy".into(), "dream".into(), "--alg".into(), alg]);
        }
        _ => return None,
    }
    Some(args)
}

#[test]
fn generate_gives_the_reference_tokens_at_every_step() {
    let g = golden();
    let (mut checked, mut cached) = (0, 0);
    for name in ["llada", "dream"] {
        let model = fixtures().join(format!("{name}-tiny")).display().to_string();
        for case in g[name]["generate"]["cases"].as_array().unwrap() {
            let Some(extra) = options(case) else { continue };
            let mut args: Vec<String> = vec!["generate".into(), "--model".into(), model.clone()];
            args.extend(["--prompt-ids".into(), csv(&case["prompt_ids"]), "--mask-id".into(), case["mask_id"].to_string()]);
            args.extend(extra);
            args.extend(["--json".into(), "--trajectory".into()]);
            let out = dlm(&args);
            let label = format!("{name} {} {:?}", case["function"], args);
            assert_eq!(ids(&out["generated_ids"]), ids(&case["generated_ids"]), "{label}");
            let got: Vec<Vec<u64>> = out["trajectory"].as_array().unwrap().iter().map(ids).collect();
            let want: Vec<Vec<u64>> = case["trajectory"].as_array().unwrap().iter().map(ids).collect();
            assert_eq!(states(&got), states(&want), "{label}");
            checked += 1;
            cached += usize::from(args.iter().any(|a| a == "--cache"));
        }
    }
    assert!(checked >= 20, "only {checked} reference cases were checked");
    assert!(cached >= 8, "only {cached} cached (prefix/dual) reference cases were checked");
}

#[test]
fn fill_mask_json_gives_the_reference_probabilities() {
    let g = golden();
    for name in ["llada", "dream"] {
        let f = &g[name]["fill_mask"];
        let model = fixtures().join(format!("{name}-tiny")).display().to_string();
        let args: Vec<String> = ["fill-mask", "--model", &model, "--ids", &csv(&f["ids"]), "--mask-id", "126", "--top-k", "5", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = dlm(&args);
        let text = out.to_string();
        for pos in f["positions"].as_array().unwrap() {
            for pair in pos["top5"].as_array().unwrap() {
                let id = pair[0].as_u64().unwrap();
                assert!(text.contains(&format!("\"token_id\":{id}")), "{name}: top-5 id {id} missing from {text}");
            }
        }
        // The scores, position by position, in the order the reference ranks them.
        let scores: Vec<f64> = find_scores(&out);
        let want: Vec<f64> =
            f["positions"].as_array().unwrap().iter().flat_map(|p| p["top5"].as_array().unwrap().iter().map(|x| x[1].as_f64().unwrap())).collect();
        assert_eq!(scores.len(), want.len(), "{name}: {text}");
        for (a, b) in scores.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
        }
    }
}

/// Every `"score"` in the fill-mask JSON, in document order.
fn find_scores(v: &Value) -> Vec<f64> {
    match v {
        Value::Object(m) => {
            let mut out: Vec<f64> = m.get("score").and_then(Value::as_f64).into_iter().collect();
            for (k, x) in m {
                if k != "score" {
                    out.extend(find_scores(x));
                }
            }
            out
        }
        Value::Array(a) => a.iter().flat_map(find_scores).collect(),
        _ => Vec::new(),
    }
}
