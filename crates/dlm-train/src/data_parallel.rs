//! The optimizer of a data-parallel run and its checkpoint files. With one rank it is the
//! plain [`AdamW`] (the single-process path, unchanged). With N ranks the local gradients
//! are summed over the ranks in f32 buckets and then either
//! - **replicated**: all-reduced, clipped and stepped by a full [`AdamW`] on every rank
//!   (`distributed.zero = false`; rank 0 saves `trainer_state.safetensors` as one process
//!   does), or
//! - **ZeRO-1** (the default): reduce-scattered into [`ShardedAdamW`]; rank r saves its
//!   shard as `trainer_state.rankR.safetensors` and the trainer state records the world
//!   size and bucket size that cut the shards.
//!
//! Resuming reads whatever the checkpoint holds and re-cuts it for the current world size
//! (re-sharding through the whole flat vector when the layout differs).

use crate::checkpoint::{STATE_TENSORS, TrainerState};
use crate::collective::{Collective, note_update};
use crate::error::{Result, TrainError};
use crate::optimizer::{AdamW, AdamWConfig, clip_grad_norm};
use crate::shard::{FlatLayout, Sharding};
use crate::zero::{EXP_AVG, EXP_AVG_SQ, MASTER, ShardedAdamW, present_anywhere};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;
use std::path::Path;

/// The optimizer-state file of rank `r` in a ZeRO-1 checkpoint.
pub fn shard_file(rank: usize) -> String {
    format!("trainer_state.rank{rank}.safetensors")
}

enum Engine {
    Replicated(AdamW),
    Sharded(ShardedAdamW),
}

pub struct Optimizer {
    engine: Engine,
    layout: FlatLayout,
    /// Elements per gradient bucket.
    bucket: usize,
    /// Updates done so far (for the collective watchdog's message).
    updates: u64,
}

impl Optimizer {
    /// ZeRO-1 when `zero` and there is more than one rank; `bucket` elements per bucket.
    pub fn new(
        vars: Vec<(String, Var)>,
        cfg: AdamWConfig,
        zero: bool,
        bucket: usize,
        comm: &dyn Collective,
    ) -> Result<Optimizer> {
        let layout = FlatLayout::new(vars.iter().map(|(n, v)| (n.clone(), v.shape().clone())));
        let world = comm.world_size();
        let engine = if zero && world > 1 {
            Engine::Sharded(ShardedAdamW::new(vars, cfg, bucket, comm.rank(), world)?)
        } else {
            Engine::Replicated(AdamW::new(vars, cfg)?)
        };
        Ok(Optimizer {
            engine,
            layout,
            bucket,
            updates: 0,
        })
    }

    pub fn vars(&self) -> Vec<Var> {
        match &self.engine {
            Engine::Replicated(o) => o.vars().cloned().collect(),
            Engine::Sharded(o) => o.vars().cloned().collect(),
        }
    }

    /// Parameters in total.
    pub fn parameters(&self) -> usize {
        self.layout.total
    }

    /// Bytes of optimizer state (moments, f32 masters) this rank holds.
    pub fn state_bytes(&self) -> usize {
        match &self.engine {
            Engine::Replicated(o) => o.state_bytes(),
            Engine::Sharded(o) => o.state_bytes(),
        }
    }

    /// The bucket size of the shard files this optimizer writes (`None`: unsharded).
    pub fn zero_bucket(&self) -> Option<usize> {
        matches!(self.engine, Engine::Sharded(_)).then_some(self.bucket)
    }

    /// One update from this rank's local gradients, scaled so that their sum over the
    /// ranks is the mean gradient: reduce, clip to `max_norm`, step. Returns the global
    /// gradient norm before clipping.
    pub fn step(
        &mut self,
        mut grads: Vec<Option<Tensor>>,
        lr: f64,
        max_norm: f64,
        comm: &dyn Collective,
    ) -> Result<f64> {
        self.updates += 1;
        note_update(self.updates);
        match &mut self.engine {
            Engine::Sharded(o) => o.step(&grads, lr, max_norm, comm),
            Engine::Replicated(o) => {
                if comm.world_size() > 1 {
                    grads = all_reduce(&self.layout, self.bucket, &grads, comm)?;
                }
                let norm = clip_grad_norm(&mut grads, max_norm)?;
                o.step(&grads, lr)?;
                Ok(norm)
            }
        }
    }

    /// Writes this rank's optimizer files into the checkpoint directory `dir`.
    pub fn save(&self, dir: &Path, comm: &dyn Collective) -> Result<()> {
        let (tensors, path): (HashMap<String, Tensor>, _) = match &self.engine {
            Engine::Replicated(_) if comm.rank() != 0 => return Ok(()),
            Engine::Replicated(o) => (
                o.state_tensors()?.into_iter().collect(),
                dir.join(STATE_TENSORS),
            ),
            Engine::Sharded(o) => (o.shard_tensors()?, dir.join(shard_file(comm.rank()))),
        };
        candle_core::safetensors::save(&tensors, &path).map_err(|e| TrainError::BadCheckpoint {
            path: path.clone(),
            message: format!("cannot write: {e}"),
        })?;
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainError::io(&path, e))
    }

    /// Restores the state saved in `checkpoint` (whose `trainer_state.json` is `state`),
    /// re-sharding it when it was cut for another world size or bucket size.
    pub fn load(
        &mut self,
        checkpoint: &Path,
        state: &TrainerState,
        comm: &dyn Collective,
    ) -> Result<()> {
        let device = self
            .vars()
            .first()
            .map_or(Device::Cpu, |v| v.device().clone());
        self.updates = state.step;
        match &mut self.engine {
            Engine::Sharded(o)
                if state.zero_bucket == Some(o.sharding().bucket)
                    && state.world_size == o.sharding().world =>
            {
                let own = load_file(&checkpoint.join(shard_file(comm.rank())), &device)?;
                o.load(&own, false, state.step)
            }
            Engine::Sharded(o) => {
                let flat = read_flat(checkpoint, state, &self.layout, &device)?;
                o.load(&flat, true, state.step)
            }
            Engine::Replicated(o) => {
                let named = match state.zero_bucket {
                    None => load_file(&checkpoint.join(STATE_TENSORS), &device)?,
                    Some(_) => {
                        let flat = read_flat(checkpoint, state, &self.layout, &device)?;
                        named_from_flat(&flat, &self.layout)?
                    }
                };
                o.load_state(&named, state.step)
            }
        }
    }
}

/// The gradient sums over the ranks, bucket by bucket in f32 (`None` where no rank has a
/// gradient).
fn all_reduce(
    layout: &FlatLayout,
    bucket: usize,
    grads: &[Option<Tensor>],
    comm: &dyn Collective,
) -> Result<Vec<Option<Tensor>>> {
    let present = present_anywhere(grads, comm)?;
    let device = grads
        .iter()
        .flatten()
        .next()
        .map_or(Device::Cpu, |g| g.device().clone());
    let whole = Sharding {
        total: layout.total,
        bucket,
        world: 1,
    };
    let mut sums = Vec::new();
    for b in whole.buckets() {
        sums.push(comm.all_reduce_sum(&layout.gather(grads, b.start, b.len, &device)?)?);
    }
    if sums.is_empty() {
        return Ok(grads.to_vec());
    }
    let parts = layout.split(&Tensor::cat(&sums, 0)?)?;
    Ok(parts
        .into_iter()
        .zip(present)
        .map(|(g, p)| p.then_some(g))
        .collect())
}

fn load_file(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| TrainError::BadCheckpoint {
        path: path.into(),
        message: e.to_string(),
    })
}

/// The whole optimizer state of a checkpoint as flat `[total]` f32 vectors
/// ([`EXP_AVG`], [`EXP_AVG_SQ`], [`MASTER`] when saved), from the unsharded file or from
/// every rank's shard.
fn read_flat(
    checkpoint: &Path,
    state: &TrainerState,
    layout: &FlatLayout,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let Some(bucket) = state.zero_bucket else {
        let path = checkpoint.join(STATE_TENSORS);
        let named = load_file(&path, device)?;
        let mut out = HashMap::new();
        for kind in [EXP_AVG, EXP_AVG_SQ, MASTER] {
            let parts: Vec<Option<Tensor>> = layout
                .names
                .iter()
                .map(|n| named.get(&format!("{kind}.{n}")).cloned())
                .collect();
            if parts.iter().all(Option::is_none) && kind == MASTER {
                continue;
            }
            if let Some(i) = parts.iter().position(Option::is_none) {
                return Err(TrainError::BadCheckpoint {
                    path,
                    message: format!("no tensor {kind}.{}", layout.names[i]),
                });
            }
            out.insert(
                kind.to_string(),
                layout.gather(&parts, 0, layout.total, device)?,
            );
        }
        return Ok(out);
    };
    let old = Sharding {
        total: layout.total,
        bucket,
        world: state.world_size,
    };
    let mut flat: HashMap<String, Vec<f32>> = HashMap::new();
    for r in 0..old.world {
        let path = checkpoint.join(shard_file(r));
        let shard = load_file(&path, &Device::Cpu)?;
        for (kind, t) in shard {
            let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            if values.len() != old.shard_len(r) {
                return Err(TrainError::BadCheckpoint {
                    path,
                    message: format!(
                        "{kind} has {} elements, but rank {r} of {} owns {} of the model's {} \
                         parameters",
                        values.len(),
                        old.world,
                        old.shard_len(r),
                        layout.total
                    ),
                });
            }
            let whole = flat.entry(kind).or_insert_with(|| vec![0.0; layout.total]);
            let mut at = 0;
            for (start, len) in old.owned(r) {
                whole[start..start + len].copy_from_slice(&values[at..at + len]);
                at += len;
            }
        }
    }
    flat.into_iter()
        .map(|(k, v)| Ok((k, Tensor::from_vec(v, layout.total, device)?)))
        .collect()
}

/// `exp_avg.NAME`, ... per parameter (the unsharded file's names) from flat vectors.
fn named_from_flat(
    flat: &HashMap<String, Tensor>,
    layout: &FlatLayout,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (kind, t) in flat {
        for (name, part) in layout.names.iter().zip(layout.split(t)?) {
            out.insert(format!("{kind}.{name}"), part);
        }
    }
    Ok(out)
}
