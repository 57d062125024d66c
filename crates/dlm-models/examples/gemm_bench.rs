//! The Linear products of a BERT-base forward (8 x 128 tokens), `x [m, k] · wᵀ` with `w
//! [n, k]` as stored, through dlm's kernels (`kernels::matmul`) and candle's matmul; in
//! f32 also with `w` column-major (`wᵀ` contiguous, the layout `ParamBuilder::load_linear`
//! keeps for inference; the same gemm call with the operand strides `kernels::Linear`
//! passes). One JSON line per shape and dtype with GFLOP/s. See scripts/bench/gemm.sh.
//! Usage: cargo run --release -p dlm-models --example gemm_bench -- [REPEATS]

use candle_core::{DType, Device, Tensor};
use std::time::Instant;

const SHAPES: [(usize, usize, usize); 4] = [(1024, 768, 768), (1024, 768, 3072), (1024, 3072, 768), (1024, 768, 30522)];

fn gflops(repeats: usize, (m, k, n): (usize, usize, usize), f: impl Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    f()?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (m * k * n) as f64 / best / 1e9)
}

#[global_allocator]
static ALLOC: dlm_models::allocator::KeepLarge = dlm_models::allocator::KeepLarge;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `dlm` starts (SAFETY: first thing in main, no other thread yet).
    unsafe { dlm_models::kernels::start() }?;
    let repeats = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    for (m, k, n) in SHAPES {
        let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 0.05, (n, k), &Device::Cpu)?;
        for dtype in [DType::F32, DType::BF16] {
            let (x, w) = (x.to_dtype(dtype)?, w.to_dtype(dtype)?);
            let dlm = gflops(repeats, (m, k, n), || dlm_models::kernels::matmul(&x, &w.t()?))?;
            let candle = gflops(repeats, (m, k, n), || x.matmul(&w.t()?))?;
            let column_major = match dtype {
                DType::F32 => {
                    let wt = w.t()?.contiguous()?; // [k, n]
                    format!("{:.1}", gflops(repeats, (m, k, n), || x.matmul(&wt))?)
                }
                _ => "null".into(),
            };
            println!("{{\"m\": {m}, \"k\": {k}, \"n\": {n}, \"dtype\": \"{dtype:?}\", \"dlm_gflops\": {dlm:.1}, \"candle_gflops\": {candle:.1}, \"column_major_gflops\": {column_major}}}");
        }
    }
    Ok(())
}
