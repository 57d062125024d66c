//! [`Collective`] over MPI (rsmpi on the system's Open MPI or MPICH): tensors are copied to
//! host memory, reduced with `MPI_Allreduce` / `MPI_Reduce_scatter_block` /
//! `MPI_Allgather` / `MPI_Bcast` on `MPI_COMM_WORLD`, and copied back to their device.
//!
//! MPI's default error handler (`MPI_ERRORS_ARE_FATAL`) ends the job when a collective
//! fails, and `mpirun` ends every rank when one of them dies (Open MPI prints which rank
//! and which signal), so a rank killed mid-run never leaves the others waiting forever.
//! Where the launcher does not notice (a rank stopped or hung, a launcher that does not
//! end the job), every collective runs under a [`Watchdog`] deadline
//! (`DLM_COLLECTIVE_TIMEOUT`), after which the waiting rank reports and exits.

use super::watchdog::{Watchdog, timeout_from_env};
use super::{Collective, hostname, unsupported};
use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor, WithDType};
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

pub struct Mpi {
    world: SimpleCommunicator,
    local_rank: usize,
    /// The deadline of every collective (`None`: `DLM_COLLECTIVE_TIMEOUT=0`).
    watchdog: Option<Watchdog>,
    /// Finalizes MPI when dropped; declared last so that the communicators go first.
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI (once per process).
    pub fn init() -> Result<Mpi> {
        let universe = mpi::initialize().ok_or_else(|| {
            TrainError::Collective("MPI is already initialised in this process".into())
        })?;
        let world = universe.world();
        let watchdog = timeout_from_env()?
            .map(|t| Watchdog::exiting(t, world.rank() as usize, world.size() as usize));
        let mut mpi = Mpi {
            world,
            local_rank: 0,
            watchdog,
            _universe: universe,
        };
        mpi.local_rank = mpi.watched("split_shared", |w| w.split_shared(0).rank() as usize);
        Ok(mpi)
    }

    /// Runs the collective `op` on the world communicator, under the watchdog's deadline.
    fn watched<T>(&self, op: &'static str, f: impl FnOnce(&SimpleCommunicator) -> T) -> T {
        match &self.watchdog {
            Some(w) => w.guard(op, || f(&self.world)),
            None => f(&self.world),
        }
    }

    fn host_vec<T: WithDType + Equivalence>(t: &Tensor) -> Result<Vec<T>> {
        Ok(t.flatten_all()?.to_vec1::<T>()?)
    }

    fn all_reduce_as<T: WithDType + Equivalence>(&self, t: &Tensor) -> Result<Tensor> {
        let send = Self::host_vec::<T>(t)?;
        let mut recv = vec![T::from_f64(0.0); send.len()];
        self.watched("all_reduce", |w| {
            w.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum())
        });
        Ok(Tensor::from_vec(recv, t.shape(), t.device())?)
    }

    fn reduce_scatter_as<T: WithDType + Equivalence>(&self, t: &Tensor) -> Result<Tensor> {
        let send = Self::host_vec::<T>(t)?;
        let chunk = chunk_of("reduce_scatter", send.len(), self.world_size())?;
        let mut recv = vec![T::from_f64(0.0); chunk];
        self.watched("reduce_scatter", |w| {
            w.reduce_scatter_block_into(&send[..], &mut recv[..], SystemOperation::sum())
        });
        Ok(Tensor::from_vec(recv, chunk, t.device())?)
    }

    fn all_gather_as<T: WithDType + Equivalence>(&self, t: &Tensor) -> Result<Tensor> {
        let send = Self::host_vec::<T>(t)?;
        let mut recv = vec![T::from_f64(0.0); send.len() * self.world_size()];
        self.watched("all_gather", |w| {
            w.all_gather_into(&send[..], &mut recv[..])
        });
        let n = recv.len();
        Ok(Tensor::from_vec(recv, n, t.device())?)
    }

    fn broadcast_as<T: WithDType + Equivalence>(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        let mut buf = Self::host_vec::<T>(t)?;
        self.watched("broadcast", |w| {
            w.process_at_rank(root as i32).broadcast_into(&mut buf[..])
        });
        Ok(Tensor::from_vec(buf, t.shape(), t.device())?)
    }
}

/// `len / world`, or an error when `len` does not split evenly.
pub(crate) fn chunk_of(op: &str, len: usize, world: usize) -> Result<usize> {
    if !len.is_multiple_of(world) {
        return Err(TrainError::Collective(format!(
            "{op}: {len} elements do not split into {world} equal chunks"
        )));
    }
    Ok(len / world)
}

/// Dispatches on the tensor's dtype: `$method::<T>` for f32, f64 and u8.
macro_rules! by_dtype {
    ($self:ident, $op:literal, $t:expr, $method:ident $(, $arg:expr)*) => {
        match $t.dtype() {
            DType::F32 => $self.$method::<f32>($t $(, $arg)*),
            DType::F64 => $self.$method::<f64>($t $(, $arg)*),
            DType::U8 => $self.$method::<u8>($t $(, $arg)*),
            d => Err(unsupported($op, d)),
        }
    };
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn world_size(&self) -> usize {
        self.world.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn host(&self) -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| hostname())
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        by_dtype!(self, "all_reduce", t, all_reduce_as)
    }
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        by_dtype!(self, "reduce_scatter", t, reduce_scatter_as)
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        by_dtype!(self, "all_gather", t, all_gather_as)
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        by_dtype!(self, "broadcast", t, broadcast_as, root)
    }
    fn barrier(&self) -> Result<()> {
        self.watched("barrier", |w| w.barrier());
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
