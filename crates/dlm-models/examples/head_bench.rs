//! The greedy sampling head alone, fused against composed (see `kernels::vocab_reduce`): a
//! random XLM-R-base-shaped head (hidden 768, vocabulary 250,002, one encoder layer that is
//! never run) on 64 generation positions; checks that both give the same tokens and prints
//! one JSON line with the median seconds of each, f32 and bf16.
//! Usage: cargo run --release -p dlm-models --example head_bench -- [ROWS] [REPEATS]
//! (a functional check in seconds; measure on a quiet machine).

use candle_core::{DType, Device, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm, composed_project_argmax};
use std::time::Instant;

const CONFIG: &str = r#"{"model_type": "xlm-roberta", "vocab_size": 250002, "hidden_size": 768,
  "num_hidden_layers": 1, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
  "max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1,
  "bos_token_id": 0, "eos_token_id": 2}"#;
const MASK: u32 = 250_001;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `f` over `repeats` runs (after one warm-up run).
fn time<T>(repeats: usize, mut f: impl FnMut() -> dlm_models::Result<T>) -> dlm_models::Result<f64> {
    f()?;
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `dlm` starts (SAFETY: first thing in main, no other thread yet).
    unsafe { dlm_models::kernels::start() }?;
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(64);
    let repeats: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(2);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::write(dir.join("config.json"), CONFIG)?;
    let mut report = Vec::new();
    for dtype in [DType::F32, DType::BF16] {
        let model = Backbone::init_random(dir, &LoadOptions { dtype, ..LoadOptions::default() }, 1)?;
        let hidden = Tensor::randn(0f32, 1.0, (rows, 768), &Device::Cpu)?.to_dtype(dtype)?; // [rows, 768]
        let fused = model.project_argmax(&hidden, MASK)?;
        let plain = composed_project_argmax(&model, &hidden, MASK)?;
        let same = fused.iter().zip(&plain).all(|(f, p)| f.token == p.token && (f.logp - p.logp).abs() <= 1e-5);
        let fused_s = time(repeats, || model.project_argmax(&hidden, MASK))?;
        let plain_s = time(repeats, || composed_project_argmax(&model, &hidden, MASK))?;
        report.push(format!("\"{dtype:?}\": {{\"fused_s\": {fused_s:.4}, \"composed_s\": {plain_s:.4}, \"same\": {same}}}"));
    }
    println!("{{\"rows\": {rows}, {}}}", report.join(", "));
    Ok(())
}

