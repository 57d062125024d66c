//! Rust side of the training-step benchmark (scripts/bench/train.sh), on the code path
//! `dlm train` runs: dlm-diffusion's SPEC §3 objective (coupled two-timestep masking of the
//! response, both copies in one [2B, P+R] batch, projection only at masked positions,
//! CE weighted by T-(t-1), per-row normalisation, /2B), backward and dlm-train's AdamW (betas 0.9/0.98, wd 0.01, f32 moments and masters), on the
//! BERT-base-shaped model the PyTorch forward benchmark saved, dropout on. Mirrors
//! scripts/bench/train_torch.py. Prints one JSON line: median seconds per step (the first
//! step is a warm-up), f32 and bf16 (or only the dtype named, for profiling), on the device
//! `DEVICE` names (env: cpu, the default, or cuda[:N]).
//! Usage: cargo run --release -p dlm-train --example train_bench -- DIR [B P R REPEATS [f32|bf16]]

use candle_core::DType;
use dlm_diffusion::{ObjectiveConfig, TokenBatch, objective};
use dlm_models::{Backbone, LoadOptions};
use dlm_train::optimizer::{AdamW, AdamWConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const MASK: u32 = 103; // BERT's [MASK]
const PAD: u32 = 0;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn bench(dir: &std::path::Path, dtype: DType, (b, p, r, repeats): (usize, usize, usize, usize)) -> anyhow::Result<f64> {
    let device = dlm_models::device_from_env("DEVICE")?;
    let model = Backbone::load(dir, &LoadOptions { dtype, device: device.clone(), trainable: true, ..LoadOptions::default() })?;
    let vars: Vec<_> = model.params().vars().to_vec();
    let mut opt = AdamW::new(vars.clone(), AdamWConfig { betas: [0.9, 0.98], eps: 1e-8, weight_decay: 0.01 })?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let rows: Vec<(Vec<u32>, Vec<bool>)> = (0..b)
        .map(|_| ((0..p + r).map(|_| rng.random_range(1000..30000)).collect(), (0..p + r).map(|i| i >= p).collect()))
        .collect();
    let batch = TokenBatch::from_rows(&rows, PAD)?;
    let cfg = ObjectiveConfig::paper(MASK, PAD);
    let mut times = Vec::new();
    for i in 0..=repeats {
        model.set_dropout(Some(i as u64));
        let t = Instant::now();
        let out = objective(&model, &batch, &cfg, &mut rng)?;
        let store = out.loss.backward()?;
        let grads: Vec<_> = vars.iter().map(|(_, v)| store.get(v).cloned()).collect();
        opt.step(&grads, 5e-5)?;
        device.synchronize()?; // a GPU runs the step asynchronously
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(median(times))
}

#[global_allocator]
static ALLOC: dlm_models::allocator::KeepLarge = dlm_models::allocator::KeepLarge;

fn main() -> anyhow::Result<()> {
    // As `dlm` starts (SAFETY: first thing in main, no other thread yet).
    unsafe { dlm_models::kernels::start() }?;
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("/tmp/dlm-bench-bert-base"));
    let num = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let shape = (num(2, 8), num(3, 64), num(4, 64), num(5, 5));
    let tokens = (shape.0 * (shape.1 + shape.2)) as f64;
    let only = args.get(6).map(String::as_str);
    let mut fields = vec![format!("\"impl\": \"dlm\", \"batch\": [{}, {}, {}]", shape.0, shape.1, shape.2)];
    for (name, dtype) in [("f32", DType::F32), ("bf16", DType::BF16)] {
        if only.is_none_or(|o| o == name) {
            let s = bench(&dir, dtype, shape)?;
            fields.push(format!("\"{name}_s\": {s}, \"{name}_tokens_per_s\": {}", tokens / s));
        }
    }
    println!("{{{}}}", fields.join(", "));
    Ok(())
}
