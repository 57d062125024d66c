//! The one seam between training and a distributed engine: the rank, the world size and
//! six collectives on tensors. The trainer is written against [`Collective`] only; the
//! engines are [`Single`] (one process, no dependency, the default), `Mpi` (cargo feature
//! `mpi`: the system's MPI through rsmpi, on host memory) and `Nccl` (cargo feature
//! `nccl`: NCCL through cudarc on CUDA tensors, MPI for launch, the NCCL id and host
//! tensors). dlm has no networking of its own.
//!
//! Launch is the engine's: `mpirun -np N dlm train ...`; [`detect`] finds the MPI
//! environment a launcher leaves (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`, `PMIX_RANK`) and
//! falls back to [`Single`] without it.

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
pub mod watchdog;

#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;
#[cfg(feature = "nccl")]
pub use self::nccl::Nccl;
pub use self::watchdog::note_update;

use crate::error::{Result, TrainError};
use candle_core::{Device, Tensor};
use std::rc::Rc;

/// Rank, world size and collectives over all ranks. Every rank must call the same
/// collectives in the same order with tensors of the same shape and dtype.
pub trait Collective {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// The rank among the ranks on this host (selects the GPU: one rank per device).
    fn local_rank(&self) -> usize;
    /// The host this rank runs on.
    fn host(&self) -> String;
    /// Element-wise sum over the ranks (f32 or f64); every rank gets the result.
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor>;
    /// Sums `[world · chunk]` over the ranks and returns this rank's `[chunk]` of the sum.
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor>;
    /// Concatenates every rank's `[chunk]` in rank order: `[world · chunk]`.
    fn all_gather(&self, t: &Tensor) -> Result<Tensor>;
    /// `root`'s tensor on every rank.
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor>;
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the job with `code` (after a failure on this rank, so that the
    /// others do not wait for it forever).
    fn abort(&self, code: i32) -> !;
}

/// One process: every collective is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn host(&self) -> String {
        hostname()
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn broadcast(&self, t: &Tensor, _root: usize) -> Result<Tensor> {
        Ok(t.clone())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Any engine, with the wall time spent in its collectives added up (communication time
/// per update in `metrics.jsonl`).
pub struct Timed<'a> {
    inner: &'a dyn Collective,
    spent: std::cell::Cell<std::time::Duration>,
}

impl<'a> Timed<'a> {
    pub fn new(inner: &'a dyn Collective) -> Timed<'a> {
        Timed {
            inner,
            spent: Default::default(),
        }
    }

    /// Seconds spent in collectives so far.
    pub fn seconds(&self) -> f64 {
        self.spent.get().as_secs_f64()
    }

    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        self.spent.set(self.spent.get() + start.elapsed());
        out
    }
}

impl Collective for Timed<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn world_size(&self) -> usize {
        self.inner.world_size()
    }
    fn local_rank(&self) -> usize {
        self.inner.local_rank()
    }
    fn host(&self) -> String {
        self.inner.host()
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        self.time(|| self.inner.all_reduce_sum(t))
    }
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        self.time(|| self.inner.reduce_scatter_sum(t))
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        self.time(|| self.inner.all_gather(t))
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        self.time(|| self.inner.broadcast(t, root))
    }
    fn barrier(&self) -> Result<()> {
        self.time(|| self.inner.barrier())
    }
    fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }
}

/// Environment variables an MPI launcher sets in every rank (Open MPI, MPICH/PMI, PMIx).
pub const LAUNCHER_ENV: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

/// True when this process was started by an MPI launcher.
pub fn launched_by_mpi() -> bool {
    LAUNCHER_ENV.iter().any(|v| std::env::var_os(v).is_some())
}

/// The engine for this process: under an MPI launcher, `Nccl` for a CUDA `device` (feature
/// `nccl`) or `Mpi` (feature `mpi`); otherwise [`Single`]. A binary built without the
/// feature that is started by `mpirun` refuses to run N copies of one training.
pub fn detect(device: &str) -> Result<Rc<dyn Collective>> {
    if !launched_by_mpi() {
        return Ok(Rc::new(Single));
    }
    engine(device)
}

#[cfg(feature = "mpi")]
fn engine(device: &str) -> Result<Rc<dyn Collective>> {
    #[cfg(feature = "nccl")]
    if device.starts_with("cuda") {
        return Ok(Rc::new(Nccl::init()?));
    }
    let _ = device;
    Ok(Rc::new(Mpi::init()?))
}

#[cfg(not(feature = "mpi"))]
fn engine(_device: &str) -> Result<Rc<dyn Collective>> {
    let size = std::env::var("OMPI_COMM_WORLD_SIZE")
        .or_else(|_| std::env::var("PMI_SIZE"))
        .unwrap_or_default();
    if size.is_empty() || size == "1" {
        return Ok(Rc::new(Single));
    }
    Err(TrainError::Collective(format!(
        "started by an MPI launcher with {size} ranks, but this dlm was built without MPI; \
         rebuild it with `cargo build --release -p dlm-cli --features mpi`"
    )))
}

/// One line per rank, e.g. `rank 1/2 on node-a (local rank 1)`, gathered to every rank.
pub fn layout(comm: &dyn Collective) -> Result<String> {
    const WIDTH: usize = 64;
    let mut name = comm.host().into_bytes();
    name.resize(WIDTH, 0);
    let hosts = comm.all_gather(&Tensor::from_vec(name, WIDTH, &Device::Cpu)?)?;
    let local = Tensor::new(&[comm.local_rank() as f64], &Device::Cpu)?;
    let locals = comm.all_gather(&local)?.to_vec1::<f64>()?;
    let hosts = hosts.to_vec1::<u8>()?;
    let world = comm.world_size();
    let lines: Vec<String> = (0..world)
        .map(|r| {
            let bytes = &hosts[r * WIDTH..(r + 1) * WIDTH];
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(WIDTH);
            format!(
                "rank {r}/{world} on {} (local rank {})",
                String::from_utf8_lossy(&bytes[..end]),
                locals[r]
            )
        })
        .collect();
    Ok(lines.join("; "))
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, or `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Sum over the ranks of a few f64 scalars (losses, counts, flags).
pub fn sum_scalars(comm: &dyn Collective, values: &[f64]) -> Result<Vec<f64>> {
    if comm.world_size() == 1 {
        return Ok(values.to_vec());
    }
    let t = Tensor::new(values, &Device::Cpu)?;
    Ok(comm.all_reduce_sum(&t)?.to_vec1::<f64>()?)
}

/// `root`'s f64 scalars on every rank.
pub fn broadcast_scalars(comm: &dyn Collective, values: &[f64], root: usize) -> Result<Vec<f64>> {
    if comm.world_size() == 1 {
        return Ok(values.to_vec());
    }
    let t = Tensor::new(values, &Device::Cpu)?;
    Ok(comm.broadcast(&t, root)?.to_vec1::<f64>()?)
}

/// The error for a tensor a collective cannot carry.
#[cfg(feature = "mpi")]
pub(crate) fn unsupported(op: &str, dtype: candle_core::DType) -> TrainError {
    TrainError::Collective(format!("{op}: tensors of {dtype:?} are not supported"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_is_the_identity() {
        let t = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let s = Single;
        assert_eq!((s.rank(), s.world_size()), (0, 1));
        for out in [
            s.all_reduce_sum(&t).unwrap(),
            s.reduce_scatter_sum(&t).unwrap(),
            s.all_gather(&t).unwrap(),
            s.broadcast(&t, 0).unwrap(),
        ] {
            assert_eq!(out.to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        }
        assert_eq!(sum_scalars(&s, &[0.5, 3.0]).unwrap(), vec![0.5, 3.0]);
        let l = layout(&s).unwrap();
        assert!(
            l.starts_with("rank 0/1 on ") && l.ends_with("(local rank 0)"),
            "{l}"
        );
    }
}
