//! ZeRO-1 and replicated data parallelism against one process, without MPI: N ranks are N
//! threads joined by an in-memory [`Collective`] (sums in rank order, as a reduction
//! does). Three parameters cut across small buckets so that shards split parameters;
//! after a few clipped AdamW steps every rank's weights equal the single process's, and
//! the state saved by 3 ZeRO-1 ranks resumes on 2 ranks and on one process unchanged.

use candle_core::{DType, Device, Tensor, Var};
use dlm_train::checkpoint::{RNG_SCHEME, TrainerState};
use dlm_train::collective::Collective;
use dlm_train::data::DataPosition;
use dlm_train::data_parallel::Optimizer;
use dlm_train::optimizer::{AdamW, AdamWConfig, clip_grad_norm};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

struct Group {
    barrier: Barrier,
    slots: Mutex<Vec<Option<Tensor>>>,
}

/// One rank of an in-memory group.
struct Member {
    rank: usize,
    world: usize,
    group: Arc<Group>,
}

fn group(world: usize) -> Vec<Member> {
    let g = Arc::new(Group {
        barrier: Barrier::new(world),
        slots: Mutex::new(vec![None; world]),
    });
    (0..world)
        .map(|rank| Member {
            rank,
            world,
            group: g.clone(),
        })
        .collect()
}

impl Member {
    /// Every rank's tensor, in rank order.
    fn exchange(&self, t: &Tensor) -> Vec<Tensor> {
        self.group.slots.lock().unwrap()[self.rank] = Some(t.clone());
        self.group.barrier.wait();
        let all = self
            .group
            .slots
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.clone().unwrap())
            .collect();
        self.group.barrier.wait();
        all
    }

    fn sum(&self, t: &Tensor) -> Tensor {
        let all = self.exchange(t);
        all[1..]
            .iter()
            .fold(all[0].clone(), |a, b| (a + b).unwrap())
    }
}

impl Collective for Member {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn local_rank(&self) -> usize {
        self.rank
    }
    fn host(&self) -> String {
        "test".into()
    }
    fn all_reduce_sum(&self, t: &Tensor) -> dlm_train::Result<Tensor> {
        Ok(self.sum(t))
    }
    fn reduce_scatter_sum(&self, t: &Tensor) -> dlm_train::Result<Tensor> {
        let chunk = t.elem_count() / self.world;
        Ok(self.sum(t).narrow(0, self.rank * chunk, chunk)?)
    }
    fn all_gather(&self, t: &Tensor) -> dlm_train::Result<Tensor> {
        Ok(Tensor::cat(&self.exchange(t), 0)?)
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> dlm_train::Result<Tensor> {
        Ok(self.exchange(t)[root].clone())
    }
    fn barrier(&self) -> dlm_train::Result<()> {
        self.group.barrier.wait();
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        panic!("abort({code})")
    }
}

const CFG: AdamWConfig = AdamWConfig {
    betas: [0.9, 0.98],
    eps: 1e-8,
    weight_decay: 0.01,
};
const SHAPES: [&[usize]; 3] = [&[5], &[2, 4], &[3]];
const STEPS: u64 = 3;
const CLIP: f64 = 0.5;

fn vars() -> Vec<(String, Var)> {
    SHAPES
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let n: usize = s.iter().product();
            let v: Vec<f32> = (0..n).map(|k| ((i * 7 + k) as f32 * 0.37).sin()).collect();
            let t = Tensor::from_vec(v, s, &Device::Cpu).unwrap();
            (format!("p{i}"), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

/// Rank r's local gradient at `step` (parameter 2 has none on odd ranks).
fn local_grads(step: u64, rank: usize) -> Vec<Option<Tensor>> {
    SHAPES
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if i == 2 && rank % 2 == 1 {
                return None;
            }
            let n: usize = s.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|k| ((step as usize * 31 + rank * 13 + i * 5 + k) as f32 * 0.71).cos())
                .collect();
            Some(Tensor::from_vec(v, s, &Device::Cpu).unwrap())
        })
        .collect()
}

/// The sum over `world` ranks of their gradients at `step`.
fn summed_grads(step: u64, world: usize) -> Vec<Option<Tensor>> {
    let mut sum: Vec<Option<Tensor>> = vec![None; SHAPES.len()];
    for r in 0..world {
        for (s, g) in sum.iter_mut().zip(local_grads(step, r)) {
            *s = match (s.take(), g) {
                (Some(a), Some(b)) => Some((a + b).unwrap()),
                (a, b) => a.or(b),
            };
        }
    }
    sum
}

fn values(vars: &[Var]) -> Vec<Vec<f32>> {
    vars.iter()
        .map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn assert_close(what: &str, a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            assert!(
                (p - q).abs() <= 1e-6 * q.abs().max(1.0),
                "{what}: {p} vs {q}"
            );
        }
    }
}

/// One process stepping on the sum of every rank's gradient.
fn reference(world: usize) -> (Vec<Vec<f32>>, AdamW) {
    let vars = vars();
    let mut opt = AdamW::new(vars.clone(), CFG).unwrap();
    for step in 1..=STEPS {
        let mut sum = summed_grads(step, world);
        clip_grad_norm(&mut sum, CLIP).unwrap();
        opt.step(&sum, 1e-2).unwrap();
    }
    let v: Vec<Var> = vars.into_iter().map(|(_, v)| v).collect();
    (values(&v), opt)
}

fn state(world: usize, zero_bucket: Option<usize>) -> TrainerState {
    TrainerState {
        format: 1,
        step: STEPS,
        data: DataPosition::default(),
        seed: 1,
        rng: RNG_SCHEME.into(),
        lr: 0.0,
        tokens_seen: 0,
        elapsed_s: 0.0,
        best: None,
        world_size: world,
        zero_bucket,
        files: vec![],
    }
}

/// Trains on `world` threads; each returns its final weights. Rank optimizers save into
/// `save` when given.
fn train(world: usize, zero: bool, bucket: usize, save: Option<&Path>) -> Vec<Vec<Vec<f32>>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = group(world)
            .into_iter()
            .map(|m| {
                s.spawn(move || {
                    let vars = vars();
                    let mut opt = Optimizer::new(vars.clone(), CFG, zero, bucket, &m).unwrap();
                    for step in 1..=STEPS {
                        opt.step(local_grads(step, m.rank), 1e-2, CLIP, &m).unwrap();
                    }
                    if let Some(dir) = save {
                        opt.save(dir, &m).unwrap();
                    }
                    values(&opt.vars())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn zero1_and_replicated_match_one_process() {
    let (want, _) = reference(3);
    for (zero, bucket) in [(true, 4), (true, 1000), (false, 4)] {
        for (r, got) in train(3, zero, bucket, None).iter().enumerate() {
            assert_close(&format!("zero={zero} bucket={bucket} rank {r}"), got, &want);
        }
    }
}

#[test]
fn zero1_state_resumes_on_other_world_sizes() {
    let dir = tempfile::tempdir().unwrap();
    train(3, true, 4, Some(dir.path()));
    let (_, single) = reference(3);
    let want: std::collections::HashMap<String, Tensor> =
        single.state_tensors().unwrap().into_iter().collect();
    let saved = state(3, Some(4));

    // One process: the shards become the unsharded per-parameter state.
    let mut one = Optimizer::new(vars(), CFG, true, 4, &dlm_train::Single).unwrap();
    one.load(dir.path(), &saved, &dlm_train::Single).unwrap();
    one.save(dir.path(), &dlm_train::Single).unwrap();
    let got = candle_core::safetensors::load(
        dir.path().join(dlm_train::checkpoint::STATE_TENSORS),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(got.len(), want.len());
    for (name, t) in &want {
        let a = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = got[name]
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_close(name, &[b], &[a]);
    }

    // Two ranks, other buckets: re-sharded, and the next update matches one process's.
    let resumed: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = group(2)
            .into_iter()
            .map(|m| {
                let saved = saved.clone();
                let dir = dir.path();
                s.spawn(move || {
                    let vars = vars();
                    let mut opt = Optimizer::new(vars, CFG, true, 3, &m).unwrap();
                    opt.load(dir, &saved, &m).unwrap();
                    opt.step(local_grads(STEPS + 1, m.rank), 1e-2, CLIP, &m)
                        .unwrap();
                    values(&opt.vars())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The single process continues from the same moments with both ranks' gradients.
    let mut opt = single;
    let mut sum = summed_grads(STEPS + 1, 2);
    // The ranks' variables start fresh (vars()), but the shards carry the f32 masters, so
    // the update continues from the trained weights as the single process does.
    clip_grad_norm(&mut sum, CLIP).unwrap();
    opt.step(&sum, 1e-2).unwrap();
    let want = values(&opt.vars().cloned().collect::<Vec<_>>());
    for got in &resumed {
        assert_close("resumed on 2 ranks", got, &want);
    }
}
