//! Dropout keyed by a seeded ChaCha RNG, so a training step is a pure function of
//! (weights, batch, seed) and a resumed run repeats an uninterrupted one exactly. Each
//! call draws one 64-bit key; the mask itself comes from the counter-based hash of
//! `kernels::DropMask` (never stored, recomputed by the backward pass). Off (identity)
//! unless a seed was set with [`Dropout::set_seed`].

use crate::kernels::DropMask;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;

#[derive(Default)]
pub(crate) struct Dropout {
    rng: RefCell<Option<ChaCha8Rng>>,
}

impl Dropout {
    /// `Some(seed)`: training mode, keys drawn from a fresh RNG seeded with `seed`;
    /// `None`: evaluation mode.
    pub fn set_seed(&self, seed: Option<u64>) {
        *self.rng.borrow_mut() = seed.map(ChaCha8Rng::seed_from_u64);
    }

    /// The mask of the next call with rate `p`: `None` in evaluation mode or when p = 0.
    pub fn mask(&self, p: f64) -> Option<DropMask> {
        let mut guard = self.rng.borrow_mut();
        let rng = guard.as_mut().filter(|_| p > 0.0)?;
        Some(DropMask::new(rng.next_u64(), p))
    }

    /// Zeroes each element with probability `p` and scales the rest by 1/(1-p).
    pub fn apply(&self, x: &candle_core::Tensor, p: f64) -> candle_core::Result<candle_core::Tensor> {
        match self.mask(p) {
            Some(m) => m.apply(x),
            None => Ok(x.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn same_seed_same_mask_and_expected_scale() {
        let d = Dropout::default();
        let x = Tensor::ones((64, 64), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(d.apply(&x, 0.1).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 4096.0, "off by default");
        d.set_seed(Some(7));
        let a = d.apply(&x, 0.1).unwrap();
        let next = d.apply(&x, 0.1).unwrap();
        d.set_seed(Some(7));
        let b = d.apply(&x, 0.1).unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        assert_ne!(a.to_vec2::<f32>().unwrap(), next.to_vec2::<f32>().unwrap(), "each call has its own mask");
        // Kept entries are 1/0.9; about 10% of 4096 are dropped, so the sum stays near 4096.
        let v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let dropped = v.iter().filter(|&&e| e == 0.0).count();
        assert!((300..520).contains(&dropped), "{dropped}");
        assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.9).abs() < 1e-6));
    }
}
