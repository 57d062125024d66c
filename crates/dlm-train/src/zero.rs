//! ZeRO-1 (Rajbhandari et al., 2020, stage 1): AdamW whose state is sharded over the
//! ranks. Each rank keeps the moments and the f32 master weights of its shard only — 1/N
//! of the parameters, cut as in [`crate::shard`] — so per-rank optimizer memory falls by
//! N. One update:
//!
//! ```text
//! local gradients ──flatten per bucket (f32)──► reduce-scatter(sum) ──► this rank's chunk
//! global norm² = all-reduce(Σ chunk²) ──► clip ──► AdamW on the shard's pieces
//! updated f32 weights of the shard ──► all-gather per bucket ──► every variable
//! ```
//!
//! The arithmetic per element is [`AdamStep::apply`] (the fused CPU kernel), the same as
//! the unsharded [`crate::optimizer::AdamW`], so the two agree to rounding of the clip
//! factor.

use crate::collective::{Collective, sum_scalars};
use crate::error::{Result, TrainError};
use crate::optimizer::{AdamStep, AdamWConfig, clip_scale};
use crate::shard::{FlatLayout, Piece, Sharding, pieces};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;

/// Names of the flat tensors in a shard file: `[shard]` each.
pub const EXP_AVG: &str = "exp_avg";
pub const EXP_AVG_SQ: &str = "exp_avg_sq";
pub const MASTER: &str = "master";

pub struct ShardedAdamW {
    cfg: AdamWConfig,
    vars: Vec<Var>,
    layout: FlatLayout,
    sharding: Sharding,
    pieces: Vec<Piece>,
    /// Per piece: the moments `[2, len]` (m, v) and the f32 master weights `[len]`, each
    /// with its own storage (the CPU kernel updates them in place).
    state: Vec<Tensor>,
    master: Vec<Tensor>,
    steps: u64,
}

/// Which parameters have a gradient on some rank.
pub fn present_anywhere(grads: &[Option<Tensor>], comm: &dyn Collective) -> Result<Vec<bool>> {
    let flags: Vec<f64> = grads.iter().map(|g| g.is_some() as u8 as f64).collect();
    Ok(sum_scalars(comm, &flags)?
        .iter()
        .map(|&f| f > 0.0)
        .collect())
}

/// `t` followed by zeros up to `len` elements.
pub fn pad(t: Tensor, len: usize) -> Result<Tensor> {
    let n = t.elem_count();
    if n >= len {
        return Ok(t);
    }
    let zeros = Tensor::zeros(len - n, t.dtype(), t.device())?;
    Ok(Tensor::cat(&[t, zeros], 0)?)
}

impl ShardedAdamW {
    /// The shard of `rank` among `world`, buckets of `bucket` elements, moments at zero.
    pub fn new(
        vars: Vec<(String, Var)>,
        cfg: AdamWConfig,
        bucket: usize,
        rank: usize,
        world: usize,
    ) -> Result<ShardedAdamW> {
        let layout = FlatLayout::new(vars.iter().map(|(n, v)| (n.clone(), v.shape().clone())));
        let sharding = Sharding {
            total: layout.total,
            bucket,
            world,
        };
        let pieces = pieces(&layout, &sharding, rank);
        let vars: Vec<Var> = vars.into_iter().map(|(_, v)| v).collect();
        let mut opt = ShardedAdamW {
            cfg,
            vars,
            layout,
            sharding,
            pieces,
            state: vec![],
            master: vec![],
            steps: 0,
        };
        for p in &opt.pieces {
            let var = &opt.vars[p.param];
            opt.state
                .push(Tensor::zeros((2, p.len), DType::F32, var.device())?);
            opt.master.push(var_slice(var, p)?);
        }
        Ok(opt)
    }

    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.vars.iter()
    }

    pub fn layout(&self) -> &FlatLayout {
        &self.layout
    }

    pub fn sharding(&self) -> Sharding {
        self.sharding
    }

    /// Elements of this rank's shard.
    pub fn shard_len(&self) -> usize {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// Bytes of optimizer state this rank holds.
    pub fn state_bytes(&self) -> usize {
        4 * 3 * self.shard_len()
    }

    fn device(&self) -> Device {
        self.vars
            .first()
            .map_or(Device::Cpu, |v| v.device().clone())
    }

    /// One update from this rank's local gradients (`grads[i]` for the i-th variable,
    /// already scaled so that their sum over the ranks is the mean gradient). Returns the
    /// global gradient norm before clipping.
    pub fn step(
        &mut self,
        grads: &[Option<Tensor>],
        lr: f64,
        max_norm: f64,
        comm: &dyn Collective,
    ) -> Result<f64> {
        if grads.len() != self.vars.len() {
            return Err(TrainError::Invalid(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.vars.len()
            )));
        }
        let device = self.device();
        let world = self.sharding.world;
        let present = present_anywhere(grads, comm)?;
        let buckets = self.sharding.buckets();
        // This rank's chunk of each bucket's gradient sum: [chunk].
        let mut chunks = Vec::with_capacity(buckets.len());
        for b in &buckets {
            let flat = pad(
                self.layout.gather(grads, b.start, b.len, &device)?,
                b.chunk * world,
            )?;
            chunks.push(comm.reduce_scatter_sum(&flat)?);
        }
        // The global norm as one process computes it: an f32 sum of squares per parameter
        // (exact where a parameter lies in one piece), added in parameter order in f64.
        let mut sq = vec![0f64; self.vars.len()];
        for p in &self.pieces {
            let g = chunks[p.bucket].narrow(0, p.bucket_offset, p.len)?;
            sq[p.param] += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let norm = sum_scalars(comm, &sq)?
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .fold(0f64, |acc, (s, _)| acc + s)
            .sqrt();
        let scale = clip_scale(norm, max_norm);
        self.steps += 1;
        let coef: AdamStep = self.cfg.coefficients(self.steps, lr);
        // The shard's updated f32 weights, per bucket.
        let mut updated: Vec<Vec<Tensor>> = vec![vec![]; buckets.len()];
        for (i, p) in self.pieces.iter().enumerate() {
            if present[p.param] {
                let mut g = chunks[p.bucket].narrow(0, p.bucket_offset, p.len)?;
                if let Some(s) = scale {
                    g = (g * s)?;
                }
                if let Some((state, w)) = coef.apply(&self.master[i], &self.state[i], &g)? {
                    (self.state[i], self.master[i]) = (state, w);
                }
            }
            updated[p.bucket].push(self.master[i].clone());
        }
        let mut full = Vec::with_capacity(buckets.len());
        for (b, parts) in buckets.iter().zip(updated) {
            let mine = if parts.is_empty() {
                Tensor::zeros(0, DType::F32, &device)?
            } else {
                Tensor::cat(&parts, 0)?
            };
            let gathered = comm.all_gather(&pad(mine, b.chunk)?)?;
            full.push(gathered.narrow(0, 0, b.len)?);
        }
        if full.is_empty() {
            return Ok(norm);
        }
        let full = Tensor::cat(&full, 0)?;
        for (var, w) in self.vars.iter().zip(self.layout.split(&full)?) {
            var.set(&w.to_dtype(var.dtype())?)?;
        }
        Ok(norm)
    }

    /// This rank's state as flat `[shard]` tensors: [`EXP_AVG`], [`EXP_AVG_SQ`] and
    /// [`MASTER`] (the shard's f32 weights).
    pub fn shard_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let cat = |ts: Vec<Tensor>| -> Result<Tensor> {
            if ts.is_empty() {
                return Ok(Tensor::zeros(0, DType::F32, &self.device())?);
            }
            // A copy: the pieces keep changing in place.
            Ok(Tensor::cat(&ts, 0)?.copy()?)
        };
        let row = |k: usize| -> Result<Vec<Tensor>> {
            self.state.iter().map(|s| Ok(s.get(k)?)).collect()
        };
        let mut out = HashMap::new();
        out.insert(EXP_AVG.to_string(), cat(row(0)?)?);
        out.insert(EXP_AVG_SQ.to_string(), cat(row(1)?)?);
        out.insert(MASTER.to_string(), cat(self.master.clone())?);
        Ok(out)
    }

    /// Restores the state after `steps` updates from flat tensors named as in
    /// [`ShardedAdamW::shard_tensors`]: this rank's `[shard]` (`whole` false) or the whole
    /// `[total]` vector (`whole` true, e.g. re-sharded from another world size).
    pub fn load(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        whole: bool,
        steps: u64,
    ) -> Result<()> {
        let expect = if whole {
            self.layout.total
        } else {
            self.shard_len()
        };
        let get = |kind: &str| -> Result<Option<Tensor>> {
            let Some(t) = tensors.get(kind) else {
                return Ok(None);
            };
            if t.elem_count() != expect {
                return Err(TrainError::Invalid(format!(
                    "optimizer state {kind} has {} elements, expected {expect}",
                    t.elem_count()
                )));
            }
            Ok(Some(
                t.flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_device(&self.device())?,
            ))
        };
        let missing = |kind: &str| TrainError::Invalid(format!("optimizer state has no {kind}"));
        let m = get(EXP_AVG)?.ok_or_else(|| missing(EXP_AVG))?;
        let v = get(EXP_AVG_SQ)?.ok_or_else(|| missing(EXP_AVG_SQ))?;
        let master = get(MASTER)?;
        for (i, p) in self.pieces.iter().enumerate() {
            let at = if whole {
                self.layout.offsets[p.param] + p.param_offset
            } else {
                p.shard_offset
            };
            self.state[i] = Tensor::stack(&[m.narrow(0, at, p.len)?, v.narrow(0, at, p.len)?], 0)?;
            // Without saved masters (an f32 run saved unsharded) the weights are the masters.
            self.master[i] = match &master {
                Some(t) => t.narrow(0, at, p.len)?.copy()?,
                None => var_slice(&self.vars[p.param], p)?,
            };
        }
        self.steps = steps;
        Ok(())
    }
}

/// An owned f32 copy of the elements of `var` that piece `p` covers: `[len]`.
fn var_slice(var: &Var, p: &Piece) -> Result<Tensor> {
    Ok(var
        .as_tensor()
        .flatten_all()?
        .narrow(0, p.param_offset, p.len)?
        .to_dtype(DType::F32)?
        .copy()?)
}
