//! Rotary position embeddings as `transformers` applies them to ModernBERT's queries and
//! keys (`apply_rotary_pos_emb`, non-interleaved halves): `x·cos + rotate_half(x)·sin`,
//! with `inv_freq[i] = theta^(-2i/d)` and the angles computed in f32, then cast to the
//! compute dtype. Composed from ordinary ops, so gradients flow through it.

use candle_core::{D, DType, Device, Result, Tensor};

/// The cos/sin tables of some positions (`0..seq` of a forward, or those a cached forward
/// computes) for one theta.
pub(crate) struct Rotary {
    cos: Tensor, // [positions, head_dim]
    sin: Tensor, // [positions, head_dim]
}

impl Rotary {
    /// The tables of `positions`, in order (row i rotates by position `positions[i]`).
    pub fn at(
        theta: f64,
        head_dim: usize,
        positions: impl ExactSizeIterator<Item = usize>,
        dtype: DType,
        device: &Device,
    ) -> Result<Rotary> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
            .collect();
        let n = positions.len();
        // angle[p, j] = p · inv_freq[j mod half], the frequencies repeated for both halves.
        let angles: Vec<f32> = positions
            .flat_map(|p| {
                (0..head_dim)
                    .map(|j| p as f32 * inv_freq[j % half])
                    .collect::<Vec<_>>()
            })
            .collect();
        let angles = Tensor::from_vec(angles, (n, head_dim), device)?;
        Ok(Rotary {
            cos: angles.cos()?.to_dtype(dtype)?,
            sin: angles.sin()?.to_dtype(dtype)?,
        })
    }

    /// `x`: [batch, heads, positions, head_dim] → the same, rotated by position.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let (first, second) = (
            x.narrow(D::Minus1, 0, d / 2)?,
            x.narrow(D::Minus1, d / 2, d / 2)?,
        );
        let rotated = Tensor::cat(&[&second.neg()?, &first], D::Minus1)?; // rotate_half
        x.broadcast_mul(&self.cos)? + rotated.broadcast_mul(&self.sin)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rotation keeps each pair's length and rotates pair (x_j, x_{j+d/2}) at position p by
    /// p·theta^(-2j/d); position 0 is the identity.
    #[test]
    fn rotates_pairs_by_position_times_frequency() {
        let dev = Device::Cpu;
        let r = Rotary::at(100.0, 4, 0..3, DType::F32, &dev).unwrap();
        let x = Tensor::new(&[1f32, 2., 3., 4.], &dev)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let x = x.repeat((1, 1, 3, 1)).unwrap(); // the same vector at positions 0, 1, 2
        let y = r
            .apply(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(&y[..4], &[1., 2., 3., 4.]);
        for p in 1..3 {
            for (j, (a, b)) in [(1f32, 3f32), (2., 4.)].into_iter().enumerate() {
                let angle = p as f32 * 100f32.powf(-2.0 * j as f32 / 4.0);
                let (c, s) = (angle.cos(), angle.sin());
                let (ya, yb) = (y[p * 4 + j], y[p * 4 + j + 2]);
                assert!(
                    (ya - (a * c - b * s)).abs() < 1e-6 && (yb - (b * c + a * s)).abs() < 1e-6,
                    "p {p} j {j}"
                );
            }
        }
    }
}
