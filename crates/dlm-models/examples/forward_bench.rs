//! Rust side of the forward benchmark (see scripts/bench/forward.sh): loads the model the
//! PyTorch side saved, runs batch 8 x 128 (or the `SHAPE` env names, e.g. `1x320`) through
//! encoder + MLM head (any backbone: BERT family, ModernBERT, LLaDA, Dream), prints one JSON line
//! with median seconds per forward in f32 and bf16 (or only the dtype named, for profiling),
//! on the device `DEVICE` names (env: cpu, the default, or cuda[:N]).
//! Usage: cargo run --release -p dlm-models --example forward_bench -- DIR [REPEATS] [f32|bf16]

use candle_core::{DType, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm};
use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn bench(dir: &std::path::Path, dtype: DType, repeats: usize) -> dlm_models::Result<f64> {
    let device = dlm_models::device_from_env("DEVICE")?;
    let model = Backbone::load(dir, &LoadOptions { dtype, device: device.clone(), ..LoadOptions::default() })?;
    let shape = std::env::var("SHAPE").unwrap_or_else(|_| "8x128".into());
    let (b, s) = shape
        .split_once('x')
        .and_then(|(b, s)| Some((b.parse::<usize>().ok()?, s.parse::<usize>().ok()?)))
        .ok_or_else(|| dlm_models::ModelError::Invalid { path: dir.into(), message: format!("SHAPE={shape:?}: expected BATCHxSEQ, e.g. 1x320") })?;
    let ids: Vec<u32> = (0..b * s).map(|i| 1000 + (i * 7919 % 29000) as u32).collect();
    let ids = Tensor::from_vec(ids, (b, s), &device)?;
    let mask = ids.ones_like()?;
    model.logits(&ids, &mask)?; // warm-up
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        model.logits(&ids, &mask)?.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

#[global_allocator]
static ALLOC: dlm_models::allocator::KeepLarge = dlm_models::allocator::KeepLarge;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `dlm` starts (SAFETY: first thing in main, no other thread yet).
    unsafe { dlm_models::kernels::start() }?;
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("/tmp/dlm-bench-bert-base"));
    let repeats = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let only = args.get(3).map(String::as_str);
    let mut fields = Vec::new();
    for (name, dtype) in [("f32", DType::F32), ("bf16", DType::BF16)] {
        if only.is_none_or(|o| o == name) {
            fields.push(format!("\"{name}_s\": {}", bench(&dir, dtype, repeats)?));
        }
    }
    println!("{{\"impl\": \"dlm\", {}}}", fields.join(", "));
    Ok(())
}
