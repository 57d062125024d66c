//! Dropout from a counter-based RNG: element `i` of a call keyed `key` is kept iff
//! `hash(key, i) ≥ p·2³²`, so a mask is never stored: the forward pass, the backward pass
//! and any device compute the same mask from `(key, i)` alone, vectorised. Kept elements
//! are scaled by 1/(1−p). The hash is murmur3's 32-bit finaliser applied twice with the
//! two halves of the key mixed in, which passes the usual avalanche tests.

use super::vector::{self, BackendStorage, Elem};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use half::bf16;
use rayon::prelude::*;

/// One dropout call: its key and its rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DropMask {
    key: u64,
    threshold: u32,
    scale: f32,
}

#[inline(always)]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl DropMask {
    /// Dropout with probability `p` ∈ [0, 1) for the call keyed `key`.
    pub fn new(key: u64, p: f64) -> DropMask {
        let threshold = (p.clamp(0.0, 1.0) * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        DropMask { key, threshold, scale: (1.0 / (1.0 - p)) as f32 }
    }

    /// The factor for element `i`: 0 (dropped) or 1/(1−p) (kept).
    #[inline(always)]
    pub fn factor(&self, i: usize) -> f32 {
        let h = fmix(fmix((i as u32) ^ (self.key as u32)).wrapping_add((self.key >> 32) as u32) ^ ((i >> 32) as u32));
        if h >= self.threshold { self.scale } else { 0.0 }
    }

    /// `x · mask` with gradients (the backward pass applies the same mask to the gradient).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::BF16) {
            return x.contiguous()?.apply_op1(*self);
        }
        let mask: Vec<f32> = (0..x.elem_count()).map(|i| self.factor(i)).collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?
    }

    fn run<E: Elem>(&self, x: &[E]) -> Vec<E> {
        let mut out = vec![E::ZERO; x.len()];
        let chunk = vector::rows_per_task(x.len(), 1).max(4096);
        out.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).enumerate().for_each(|(c, (o, x))| {
            vector::vectorised(#[inline(always)] || {
                let base = c * chunk;
                for (j, (o, x)) in o.iter_mut().zip(x).enumerate() {
                    *o = E::put(x.get() * self.factor(base + j));
                }
            })
        });
        out
    }
}

impl CustomOp1 for DropMask {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(_) => f32::wrap(self.run(vector::contiguous::<f32>(storage, layout, "dropout")?)),
            CpuStorage::BF16(_) => bf16::wrap(self.run(vector::contiguous::<bf16>(storage, layout, "dropout")?)),
            s => candle_core::bail!("dropout: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(*self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn rate_scale_and_gradient() {
        let m = DropMask::new(42, 0.1);
        let x = Var::from_tensor(&Tensor::ones((256, 256), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let y = m.apply(&x).unwrap();
        let v = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let dropped = v.iter().filter(|&&e| e == 0.0).count();
        // 10% of 65536 = 6554, binomial sd ≈ 77: ±5 sd.
        assert!((6554 - 385..6554 + 385).contains(&dropped), "{dropped}");
        assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.9).abs() < 1e-6));
        // Same key → same mask; another key → another mask.
        assert_eq!(m.apply(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), v);
        let other = DropMask::new(43, 0.1).apply(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_ne!(other, v);
        // d(sum(y))/dx is the mask itself.
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), v);
        // bf16 and the host path (other devices) give the same mask.
        let yb = m.apply(&x.to_dtype(DType::BF16).unwrap()).unwrap().to_dtype(DType::F32).unwrap();
        let host: Vec<f32> = (0..v.len()).map(|i| m.factor(i)).collect();
        let bf: Vec<f32> = yb.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(bf.iter().zip(&host).all(|(a, b)| (a - b).abs() < 1e-2));
        assert_eq!(host, v);
    }

    #[test]
    fn masks_are_uncorrelated_across_neighbours_and_keys() {
        // Adjacent elements and adjacent keys are independent: P(both kept) ≈ 0.81.
        let m = DropMask::new(7, 0.1);
        let n = 200_000;
        let both = (0..n).filter(|&i| m.factor(i) > 0.0 && m.factor(i + 1) > 0.0).count() as f64 / n as f64;
        assert!((both - 0.81).abs() < 0.005, "{both}");
        let k = DropMask::new(8, 0.1);
        let both = (0..n).filter(|&i| m.factor(i) > 0.0 && k.factor(i) > 0.0).count() as f64 / n as f64;
        assert!((both - 0.81).abs() < 0.005, "{both}");
    }
}
