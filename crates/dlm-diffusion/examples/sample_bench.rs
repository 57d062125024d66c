//! Rust side of the sampling benchmark (see scripts/bench/sample.sh): the first PROMPTS
//! rows of a prompted JSONL file, each turned into its oracle-length canvas exactly as
//! `dlm eval` does (SPEC §2 `format_pair`, then `Canvas::oracle`), denoised with the
//! default sampler (reparam-uncond, cosine, argmax) and STEPS steps, BATCH canvases at a
//! time in file order. After one warm-up batch, the whole set is run REPEATS times per
//! dtype; prints one JSON line with the median seconds per run in f32 and bf16, the number
//! of generated tokens, and the canvases and f32/bf16 outputs (generated ids per prompt).
//! The model runs on the device `DEVICE` names (env: cpu, the default, or cuda[:N]).
//! Usage: cargo run --release -p dlm-diffusion --example sample_bench -- \
//!        MODEL_DIR DATA.jsonl [PROMPTS] [BATCH] [STEPS] [REPEATS]

use candle_core::DType;
use dlm_data::{Tokenizer, format_pair, read_prompt_jsonl};
use dlm_diffusion::{Canvas, SamplerConfig, SpecialIds, denoise};
use dlm_models::{Backbone, Config, LoadOptions, MaskedLm};
use std::path::Path;
use std::time::Instant;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Setting {
    batch: usize,
    steps: usize,
    repeats: usize,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The oracle-length canvases of the first `n` rows of `data`.
fn canvases(
    tokenizer: &Tokenizer,
    data: &Path,
    n: usize,
    max_length: usize,
) -> AnyResult<Vec<Canvas>> {
    let special = tokenizer.special_tokens()?;
    let rows = read_prompt_jsonl(data)?;
    if rows.len() < n {
        return Err(format!(
            "{}: {} rows, {n} prompts asked for",
            data.display(),
            rows.len()
        )
        .into());
    }
    let mut out = Vec::with_capacity(n);
    for row in &rows[..n] {
        let src = tokenizer.encode(&row.inputs, true)?;
        let tgt = tokenizer.encode(&row.targets, true)?;
        let f = format_pair(&src, &tgt, &special, max_length)?;
        out.push(Canvas::oracle(&f.ids, &f.fixed, SpecialIds::from(special))?);
    }
    Ok(out)
}

/// Median seconds to denoise every canvas, and the generated ids per canvas.
fn bench(
    model: &dyn MaskedLm,
    canvases: &[Canvas],
    special: SpecialIds,
    s: &Setting,
) -> AnyResult<(f64, Vec<Vec<u32>>)> {
    let cfg = SamplerConfig {
        steps: s.steps,
        ..SamplerConfig::default()
    };
    let run = || -> AnyResult<Vec<Vec<u32>>> {
        let mut out = Vec::with_capacity(canvases.len());
        for chunk in canvases.chunks(s.batch) {
            out.extend(
                denoise(model, chunk, &cfg, special)?
                    .into_iter()
                    .map(|d| d.generated),
            );
        }
        Ok(out)
    };
    denoise(
        model,
        &canvases[..s.batch.min(canvases.len())],
        &cfg,
        special,
    )?; // warm-up
    let mut times = Vec::with_capacity(s.repeats);
    let mut outputs = Vec::new();
    for _ in 0..s.repeats {
        let t = Instant::now();
        outputs = run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((median(times), outputs))
}

#[global_allocator]
static ALLOC: dlm_models::allocator::KeepLarge = dlm_models::allocator::KeepLarge;

fn main() -> AnyResult<()> {
    // As `dlm` starts (SAFETY: first thing in main, no other thread yet).
    unsafe { dlm_models::kernels::start() }?;
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err(
            "usage: sample_bench MODEL_DIR DATA.jsonl [PROMPTS] [BATCH] [STEPS] [REPEATS]".into(),
        );
    }
    let number = |i: usize, default: usize| -> AnyResult<usize> {
        match args.get(i) {
            None => Ok(default),
            Some(a) => match a.parse::<usize>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(format!("argument {i}: expected a positive integer, found {a:?}").into()),
            },
        }
    };
    let (dir, data) = (Path::new(&args[1]), Path::new(&args[2]));
    let n = number(3, 16)?;
    let setting = Setting {
        batch: number(4, 8)?,
        steps: number(5, 10)?,
        repeats: number(6, 3)?,
    };
    let tokenizer = Tokenizer::from_dir(dir)?;
    let special = SpecialIds::from(tokenizer.special_tokens()?);
    let config = Config::from_file(&dir.join("config.json"))?;
    tokenizer.check_fits(config.vocab_size)?;
    let canvases = canvases(&tokenizer, data, n, config.max_sequence_length())?;
    let mut timings = Vec::new();
    let mut outputs = Vec::new();
    let device = dlm_models::device_from_env("DEVICE")?;
    for dtype in [DType::F32, DType::BF16] {
        let model = Backbone::load(
            dir,
            &LoadOptions {
                dtype,
                device: device.clone(),
                ..LoadOptions::default()
            },
        )?;
        let (seconds, generated) = bench(&model, &canvases, special, &setting)?;
        timings.push(seconds);
        outputs.push(generated);
    }
    let tokens: usize = canvases.iter().map(Canvas::generation_len).sum();
    let report = serde_json::json!({
        "impl": "dlm",
        "prompts": n,
        "batch": setting.batch,
        "steps": setting.steps,
        "tokens": tokens,
        "f32_s": timings[0],
        "bf16_s": timings[1],
        "canvases": canvases.iter().map(Canvas::ids).collect::<Vec<_>>(),
        "f32_outputs": outputs[0],
        "bf16_outputs": outputs[1],
    });
    println!("{report}");
    Ok(())
}
