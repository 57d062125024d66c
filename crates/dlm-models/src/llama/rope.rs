//! Rotary position embeddings as LLaDA's `RotaryEmbedding` and Qwen2's rotary embedding
//! compute them (non-interleaved halves): `x·cos + rotate_half(x)·sin`, with
//! `inv_freq[i] = 1 / theta^(2i/d)` and the angles `p · inv_freq` in f32, as torch does.
//! LLaDA rotates in f32 and casts back; Qwen2 casts the tables to the compute dtype.
//! Composed from ordinary ops, so gradients flow through it.

use candle_core::{D, DType, Device, Result, Tensor};

pub(crate) struct Rope {
    inv_freq: Vec<f32>, // [d / 2]
    f32_rotation: bool,
}

impl Rope {
    pub fn new(theta: f64, head_dim: usize, f32_rotation: bool) -> Rope {
        let (theta, d) = (theta as f32, head_dim as f32);
        let inv_freq = (0..head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f32 / d)).collect();
        Rope { inv_freq, f32_rotation }
    }

    /// The cos and sin tables at `positions`: [N, 1, d] each, in the dtype the rotation
    /// runs in (f32 for LLaDA, `dtype` for Qwen2).
    pub fn tables(&self, positions: &[u32], dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let angles: Vec<f32> =
            positions.iter().flat_map(|&p| (0..2 * half).map(move |j| p as f32 * self.inv_freq[j % half])).collect();
        let angles = Tensor::from_vec(angles, (positions.len(), 1, 2 * half), device)?;
        let dtype = if self.f32_rotation { DType::F32 } else { dtype };
        Ok((angles.cos()?.to_dtype(dtype)?, angles.sin()?.to_dtype(dtype)?))
    }

    /// `x`: [N, heads, d] rotated by the tables of its rows → same shape and dtype.
    pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let xr = x.to_dtype(cos.dtype())?;
        let d = xr.dim(D::Minus1)?;
        let (first, second) = (xr.narrow(D::Minus1, 0, d / 2)?, xr.narrow(D::Minus1, d / 2, d / 2)?);
        let rotated = Tensor::cat(&[&second.neg()?, &first], D::Minus1)?; // rotate_half
        (xr.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?.to_dtype(x.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pair (x_j, x_{j+d/2}) at position p turns by p·theta^(-2j/d); position 0 is the
    /// identity.
    #[test]
    fn rotates_pairs_by_position_times_frequency() {
        let dev = Device::Cpu;
        let rope = Rope::new(100.0, 4, true);
        let (cos, sin) = rope.tables(&[0, 1, 2], DType::F32, &dev).unwrap();
        let x = Tensor::new(&[1f32, 2., 3., 4.], &dev).unwrap().reshape((1, 1, 4)).unwrap().repeat((3, 1, 1)).unwrap();
        let y = Rope::apply(&x, &cos, &sin).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&y[..4], &[1., 2., 3., 4.]);
        for p in 1..3 {
            for (j, (a, b)) in [(1f32, 3f32), (2., 4.)].into_iter().enumerate() {
                let angle = p as f32 * 100f32.powf(-2.0 * j as f32 / 4.0);
                let (c, s) = (angle.cos(), angle.sin());
                assert!((y[p * 4 + j] - (a * c - b * s)).abs() < 1e-5, "p {p} j {j}");
                assert!((y[p * 4 + j + 2] - (b * c + a * s)).abs() < 1e-5, "p {p} j {j}");
            }
        }
    }
}
