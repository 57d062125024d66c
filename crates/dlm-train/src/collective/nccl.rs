//! [`Collective`] over NCCL between GPUs (cudarc's bindings), one rank per device: rank r
//! uses `cuda:<local rank>`. MPI launches the ranks, carries NCCL's unique id from rank 0
//! to the others (`MPI_Bcast`), and carries every tensor that lives in host memory
//! (losses, counts, flags); tensors on the GPU go through NCCL on candle's own stream, so
//! they are ordered with the kernels that produce and consume them.

use super::{Collective, Mpi, unsupported};
use crate::error::{Result, TrainError};
use candle_core::cuda_backend::CudaDType;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Device, Storage, Tensor};
use cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};
use cudarc::nccl::safe::{Comm, Id, NcclType, ReduceOp};

/// Bytes of an NCCL unique id.
const ID_BYTES: usize = 128;

pub struct Nccl {
    comm: Comm,
    device: CudaDevice,
    /// Declared last: MPI is finalised after NCCL's communicator is gone.
    mpi: Mpi,
}

fn nccl_error(op: &str, e: impl std::fmt::Debug) -> TrainError {
    TrainError::Collective(format!("NCCL {op}: {e:?}"))
}

impl Nccl {
    /// Initialises MPI, opens `cuda:<local rank>` and joins the NCCL communicator whose id
    /// rank 0 broadcasts.
    pub fn init() -> Result<Nccl> {
        let mpi = Mpi::init()?;
        let device = Device::new_cuda(mpi.local_rank())?;
        let device = device.as_cuda_device()?.clone();
        let id = if mpi.rank() == 0 {
            let id = Id::new().map_err(|e| nccl_error("unique id", e))?;
            id.internal().iter().map(|&c| c as u8).collect()
        } else {
            vec![0u8; ID_BYTES]
        };
        let id = mpi.broadcast(&Tensor::from_vec(id, ID_BYTES, &Device::Cpu)?, 0)?;
        let mut internal = [0 as std::ffi::c_char; ID_BYTES];
        for (dst, src) in internal.iter_mut().zip(id.to_vec1::<u8>()?) {
            *dst = src as std::ffi::c_char;
        }
        let comm = Comm::from_rank(
            device.cuda_stream(),
            mpi.rank(),
            mpi.world_size(),
            Id::uninit(internal),
        )
        .map_err(|e| nccl_error("communicator", e))?;
        Ok(Nccl { comm, device, mpi })
    }

    /// Runs `op` from `t`'s device memory into a fresh `[len]` buffer on this rank's GPU.
    fn run<T: CudaDType + NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        t: &Tensor,
        len: usize,
        op: impl FnOnce(&cudarc::driver::CudaView<'_, T>, &mut CudaSlice<T>) -> Result<()>,
    ) -> Result<Tensor> {
        let t = t.contiguous()?;
        let mut out = self.device.alloc_zeros::<T>(len)?;
        {
            let (storage, layout) = t.storage_and_layout();
            let Storage::Cuda(s) = &*storage else {
                return Err(TrainError::Collective(
                    "NCCL: tensor is not on a GPU".into(),
                ));
            };
            let start = layout.start_offset();
            let slice = s.as_cuda_slice::<T>()?;
            let view = slice.slice(start..start + t.elem_count());
            op(&view, &mut out)?;
        }
        let storage = CudaStorage::wrap_cuda_slice(out, self.device.clone());
        Ok(Tensor::from_storage(
            Storage::Cuda(storage),
            len,
            BackpropOp::none(),
            false,
        ))
    }

    fn all_reduce_as<T: CudaDType + NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        t: &Tensor,
    ) -> Result<Tensor> {
        let out = self.run::<T>(t, t.elem_count(), |s, r| {
            self.comm
                .all_reduce(s, r, &ReduceOp::Sum)
                .map(|_| ())
                .map_err(|e| nccl_error("all_reduce", e))
        })?;
        Ok(out.reshape(t.shape())?)
    }

    fn reduce_scatter_as<T: CudaDType + NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        t: &Tensor,
    ) -> Result<Tensor> {
        let chunk = super::mpi::chunk_of("reduce_scatter", t.elem_count(), self.world_size())?;
        self.run::<T>(t, chunk, |s, r| {
            self.comm
                .reduce_scatter(s, r, &ReduceOp::Sum)
                .map(|_| ())
                .map_err(|e| nccl_error("reduce_scatter", e))
        })
    }

    fn all_gather_as<T: CudaDType + NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        t: &Tensor,
    ) -> Result<Tensor> {
        self.run::<T>(t, t.elem_count() * self.world_size(), |s, r| {
            self.comm
                .all_gather(s, r)
                .map(|_| ())
                .map_err(|e| nccl_error("all_gather", e))
        })
    }

    fn broadcast_as<T: CudaDType + NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        t: &Tensor,
        root: usize,
    ) -> Result<Tensor> {
        let out = self.run::<T>(t, t.elem_count(), |s, r| {
            self.comm
                .broadcast(Some(s), r, root as i32)
                .map(|_| ())
                .map_err(|e| nccl_error("broadcast", e))
        })?;
        Ok(out.reshape(t.shape())?)
    }
}

/// Host tensors go through MPI; GPU tensors of f32/f64 through NCCL.
macro_rules! on_gpu {
    ($self:ident, $op:literal, $t:expr, $method:ident, $host:expr $(, $arg:expr)*) => {{
        if !$t.device().is_cuda() {
            return $host;
        }
        match $t.dtype() {
            DType::F32 => $self.$method::<f32>($t $(, $arg)*),
            DType::F64 => $self.$method::<f64>($t $(, $arg)*),
            d => Err(unsupported($op, d)),
        }
    }};
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }
    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }
    fn local_rank(&self) -> usize {
        self.mpi.local_rank()
    }
    fn host(&self) -> String {
        format!("{} (cuda:{})", self.mpi.host(), self.mpi.local_rank())
    }
    fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        on_gpu!(
            self,
            "all_reduce",
            t,
            all_reduce_as,
            self.mpi.all_reduce_sum(t)
        )
    }
    fn reduce_scatter_sum(&self, t: &Tensor) -> Result<Tensor> {
        on_gpu!(
            self,
            "reduce_scatter",
            t,
            reduce_scatter_as,
            self.mpi.reduce_scatter_sum(t)
        )
    }
    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        on_gpu!(self, "all_gather", t, all_gather_as, self.mpi.all_gather(t))
    }
    fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        on_gpu!(
            self,
            "broadcast",
            t,
            broadcast_as,
            self.mpi.broadcast(t, root),
            root
        )
    }
    fn barrier(&self) -> Result<()> {
        self.mpi.barrier()
    }
    fn abort(&self, code: i32) -> ! {
        self.mpi.abort(code)
    }
}
