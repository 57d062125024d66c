//! The sampler options (SPEC §4) that `dlm generate` and `dlm eval` share, as one clap
//! group flattened into both: the strategy and its knobs, the schedule, the temperature,
//! the KV cache and the seed. [`SamplerArgs::config`] turns them into a
//! `dlm_diffusion::SamplerConfig` and refuses, before any model loads, a knob the strategy
//! does not use, a prefix/dual cache for a strategy without blocks and any value
//! `SamplerConfig::validate` refuses. The number of steps is each command's own option
//! (its default differs: 10 for `generate`, the task's for `eval`).

use dlm_diffusion::{Cache, Decoding, DreamAlg, Remasking, SamplerConfig, Schedule, StrategyKnobs, StrategyName};

/// `--strategy` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    /// Reparameterized top-k; the k lowest-scoring positions are re-masked (the paper's)
    ReparamUncond,
    /// Reparameterized top-k; a decoded token is re-masked only if re-predicted with a lower score
    ReparamCond,
    /// reparam-uncond ranking with Gumbel noise (--noise-scale · rate)
    Stochastic,
    /// Unmask each masked position with probability 1/(K-s+1)
    Cmlm,
    /// Fill the leftmost mask each step
    Ar,
    /// LLaDA's generate(): low-confidence (or --remasking random) unmasking, block by block (--block-length)
    Llada,
    /// Fast-dLLM: in the current block, unmask every position with probability ≥ --threshold (or by --factor; at least one); adaptive steps
    FastDllm,
    /// Dream's diffusion_generate(): --alg chooses the positions unmasked at each step (--alg-temp, --top-p, --top-k)
    Dream,
}

impl From<StrategyArg> for StrategyName {
    fn from(s: StrategyArg) -> StrategyName {
        match s {
            StrategyArg::ReparamUncond => StrategyName::ReparamUncond,
            StrategyArg::ReparamCond => StrategyName::ReparamCond,
            StrategyArg::Stochastic => StrategyName::Stochastic,
            StrategyArg::Cmlm => StrategyName::Cmlm,
            StrategyArg::Ar => StrategyName::Ar,
            StrategyArg::Llada => StrategyName::Llada,
            StrategyArg::FastDllm => StrategyName::FastDllm,
            StrategyArg::Dream => StrategyName::Dream,
        }
    }
}

/// `--schedule` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScheduleArg {
    Cosine,
    Linear,
}

/// `--remasking` values (llada).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RemaskingArg {
    /// Rank masked positions by the probability of their predicted token
    LowConfidence,
    /// Rank masked positions by a uniform draw (seeded; not torch's random stream)
    Random,
}

/// `--alg` values (dream).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AlgArg {
    /// Each masked position is unmasked with probability 1 − s/t (seeded)
    Origin,
    /// Confidence: the probability of the predicted token
    MaskgitPlus,
    /// Confidence: top-1 minus top-2 probability
    TopkMargin,
    /// Confidence: negative entropy of the distribution
    Entropy,
}

/// `--cache` values: `none`, `prefix`, `dual` (llada, fast-dllm), `refresh:R` or `reuse:R`
/// (every strategy).
fn parse_cache(s: &str) -> Result<Cache, String> {
    Cache::parse(s).ok_or_else(|| format!("unknown cache {s:?}: expected {}", Cache::EXPECTED))
}

#[derive(Debug, clap::Args)]
pub struct SamplerArgs {
    #[arg(long, value_enum, default_value = "reparam-uncond")]
    strategy: StrategyArg,
    /// Unmasking schedule of the reparameterized strategies
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: ScheduleArg,
    /// Sample tokens at this temperature instead of taking the argmax (0 = argmax)
    #[arg(long)]
    temperature: Option<f64>,
    /// Generation positions per semi-autoregressive block, filled left to right (llada,
    /// fast-dllm). Default for llada: one block, the whole generation (as LLaDA's
    /// generate(), whose block length defaults to the generation length; its example uses
    /// 32, and --steps must be a multiple of the number of blocks); for fast-dllm: 32 (the
    /// block size of Fast-dLLM's evaluations)
    #[arg(long, value_name = "N")]
    block_length: Option<usize>,
    /// fast-dllm: unmask every position of the block whose probability is at least P
    /// (default 0.9, Fast-dLLM's threshold)
    #[arg(long, value_name = "P")]
    threshold: Option<f64>,
    /// stochastic: scale S of the Gumbel noise added to the scores before ranking, times the
    /// schedule's rate (default 1.0, the released RDM code's `stochastic1.0`)
    #[arg(long, value_name = "S")]
    noise_scale: Option<f64>,
    /// llada: how masked positions are ranked (default low-confidence; LLaDA's `remasking`)
    #[arg(long, value_enum)]
    remasking: Option<RemaskingArg>,
    /// fast-dllm: factor-based parallel decoding instead of --threshold: unmask the n most
    /// confident positions of the block while (n + 1)(1 − p_n) ≤ F (Fast-dLLM's
    /// get_transfer_index_dynamic)
    #[arg(long, value_name = "F", conflicts_with = "threshold")]
    factor: Option<f64>,
    /// dream: how the positions unmasked at each step are chosen (default entropy, as in
    /// Dream's README)
    #[arg(long, value_enum)]
    alg: Option<AlgArg>,
    /// dream: draw the unmasked positions from softmax(confidence / T) instead of taking
    /// the most confident (0: the most confident)
    #[arg(long, value_name = "T")]
    alg_temp: Option<f64>,
    /// dream: nucleus filtering of each position's distribution before tokens and
    /// confidences are read off
    #[arg(long, value_name = "P")]
    top_p: Option<f64>,
    /// dream: keep only the K most likely tokens of each position's distribution
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Reuse keys and values between steps: none (every step a full forward); prefix or
    /// dual (llada, fast-dllm: Fast-dLLM's generate_with_prefix_cache /
    /// generate_with_dual_cache); refresh:R (every strategy: dKV-Cache-Decode, the keys and
    /// values of decoded positions reused, masked and just-changed positions recomputed, a
    /// full forward every R steps; refresh:1 is none); reuse:R (every strategy: refresh:R
    /// that also reuses unchanged masked positions' keys, values and predictions, so only
    /// changed positions are recomputed between refreshes; reuse:1 is none). LLaDA, Dream,
    /// ModernBERT and BERT-family models have the cached forward these need
    #[arg(long, value_name = "none|prefix|dual|refresh:R|reuse:R", default_value = "none", value_parser = parse_cache)]
    cache: Cache,
    /// Seed of the sampler's random generator
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SamplerArgs {
    /// The sampler of `steps` denoising iterations these options choose, checked.
    pub fn config(&self, steps: usize, record_trajectory: bool) -> anyhow::Result<SamplerConfig> {
        let name = StrategyName::from(self.strategy);
        let knobs = StrategyKnobs {
            block_length: self.block_length,
            threshold: self.threshold,
            noise_scale: self.noise_scale,
            remasking: self.remasking.map(|r| match r {
                RemaskingArg::LowConfidence => Remasking::LowConfidence,
                RemaskingArg::Random => Remasking::Random,
            }),
            factor: self.factor,
            alg: self.alg.map(|a| match a {
                AlgArg::Origin => DreamAlg::Origin,
                AlgArg::MaskgitPlus => DreamAlg::MaskgitPlus,
                AlgArg::TopkMargin => DreamAlg::TopkMargin,
                AlgArg::Entropy => DreamAlg::Entropy,
            }),
            alg_temp: self.alg_temp,
            top_p: self.top_p,
            top_k: self.top_k,
        };
        if let Some(flag) = name.unused_knobs(&knobs).first() {
            let users = StrategyName::ALL.into_iter().filter(|s| !s.unused_knobs(&knobs).contains(flag));
            let users: Vec<&str> = users.map(StrategyName::as_str).collect();
            anyhow::bail!("--{flag} applies only to --strategy {}, not {}", users.join(" and "), name.as_str());
        }
        let cache = self.cache;
        if matches!(cache, Cache::Prefix | Cache::Dual) && !matches!(name, StrategyName::Llada | StrategyName::FastDllm) {
            anyhow::bail!(
                "--cache {cache} applies only to --strategy llada and fast-dllm, not {} (refresh:R and reuse:R apply to every strategy)",
                name.as_str()
            );
        }
        let schedule = match self.schedule {
            ScheduleArg::Cosine => Schedule::Cosine,
            ScheduleArg::Linear => Schedule::Linear,
        };
        let decoding = match self.temperature {
            Some(temperature) if temperature != 0.0 => Decoding::Sample { temperature },
            _ => Decoding::Argmax,
        };
        let cfg =
            SamplerConfig { steps, strategy: name.build(schedule, knobs), decoding, seed: self.seed, record_trajectory, cache };
        cfg.validate()?;
        Ok(cfg)
    }
}
