//! Where every parameter lives in one flat f32 vector, and how that vector is cut into
//! gradient buckets and ZeRO-1 shards.
//!
//! The parameters, in the optimizer's order, are laid end to end: parameter `i` covers
//! `[offset_i, offset_i + numel_i)` of `[total]`. Buckets are consecutive ranges of
//! `bucket` elements (the last one shorter); each bucket is padded to a multiple of the
//! world size `N` and split into `N` equal chunks, and rank `r` owns chunk `r` of every
//! bucket. A reduce-scatter per bucket thus hands each rank exactly the gradient sums of
//! what it owns, and an all-gather per bucket returns every rank's updated chunk.

use candle_core::{DType, Device, Shape, Tensor};

use crate::error::Result;

/// Parameter names, shapes and offsets in the flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatLayout {
    pub names: Vec<String>,
    pub shapes: Vec<Shape>,
    pub offsets: Vec<usize>,
    pub total: usize,
}

impl FlatLayout {
    pub fn new(params: impl IntoIterator<Item = (String, Shape)>) -> FlatLayout {
        let (mut names, mut shapes, mut offsets, mut total) = (vec![], vec![], vec![], 0);
        for (name, shape) in params {
            offsets.push(total);
            total += shape.elem_count();
            names.push(name);
            shapes.push(shape);
        }
        FlatLayout {
            names,
            shapes,
            offsets,
            total,
        }
    }

    pub fn numel(&self, i: usize) -> usize {
        self.shapes[i].elem_count()
    }

    /// `[start, start + len)` of the flat vector as one f32 tensor, from per-parameter
    /// tensors (`None`: zeros) — gradients into a bucket, weights into a shard.
    pub fn gather(
        &self,
        tensors: &[Option<Tensor>],
        start: usize,
        len: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let mut parts = Vec::new();
        for (i, t) in tensors.iter().enumerate() {
            let (lo, hi) = (self.offsets[i], self.offsets[i] + self.numel(i));
            let (a, b) = (lo.max(start), hi.min(start + len));
            if a >= b {
                continue;
            }
            parts.push(match t {
                Some(t) => t
                    .flatten_all()?
                    .narrow(0, a - lo, b - a)?
                    .to_dtype(DType::F32)?,
                None => Tensor::zeros(b - a, DType::F32, device)?,
            });
        }
        if parts.is_empty() {
            return Ok(Tensor::zeros(0, DType::F32, device)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// The flat `[total]` vector cut back into one tensor per parameter, in its shape.
    pub fn split(&self, flat: &Tensor) -> Result<Vec<Tensor>> {
        (0..self.names.len())
            .map(|i| {
                Ok(flat
                    .narrow(0, self.offsets[i], self.numel(i))?
                    .reshape(self.shapes[i].clone())?)
            })
            .collect()
    }
}

/// Buckets of `bucket` elements split over `world` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharding {
    pub total: usize,
    pub bucket: usize,
    pub world: usize,
}

/// One bucket: `[start, start + len)` of the flat vector, `chunk` elements per rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: usize,
    pub len: usize,
    pub chunk: usize,
}

impl Bucket {
    /// The part of the bucket rank `r` owns: `[start, start + len)` of the flat vector
    /// (empty for ranks past the end of a short bucket).
    pub fn owned(&self, r: usize) -> (usize, usize) {
        let lo = (r * self.chunk).min(self.len);
        let hi = ((r + 1) * self.chunk).min(self.len);
        (self.start + lo, hi - lo)
    }
}

impl Sharding {
    pub fn buckets(&self) -> Vec<Bucket> {
        let bucket = self.bucket.max(1);
        (0..self.total.div_ceil(bucket))
            .map(|b| {
                let start = b * bucket;
                let len = bucket.min(self.total - start);
                Bucket {
                    start,
                    len,
                    chunk: len.div_ceil(self.world),
                }
            })
            .collect()
    }

    /// Rank `r`'s ranges of the flat vector, one per bucket, in order: the rank's shard is
    /// their concatenation.
    pub fn owned(&self, r: usize) -> Vec<(usize, usize)> {
        self.buckets().iter().map(|b| b.owned(r)).collect()
    }

    /// Elements rank `r` owns.
    pub fn shard_len(&self, r: usize) -> usize {
        self.owned(r).iter().map(|o| o.1).sum()
    }
}

/// A shard's part of one parameter: elements `[param_offset, param_offset + len)` of
/// parameter `param`, at `shard_offset` in the rank's shard and `bucket_offset` in its
/// chunk of bucket `bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub param: usize,
    pub param_offset: usize,
    pub len: usize,
    pub bucket: usize,
    pub bucket_offset: usize,
    pub shard_offset: usize,
}

/// The pieces of rank `r`'s shard, in shard order.
pub fn pieces(layout: &FlatLayout, sharding: &Sharding, r: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut shard_offset = 0;
    for (bucket, (start, len)) in sharding.owned(r).into_iter().enumerate() {
        for i in 0..layout.names.len() {
            let (lo, hi) = (layout.offsets[i], layout.offsets[i] + layout.numel(i));
            let (a, b) = (lo.max(start), hi.min(start + len));
            if a < b {
                out.push(Piece {
                    param: i,
                    param_offset: a - lo,
                    len: b - a,
                    bucket,
                    bucket_offset: a - start,
                    shard_offset: shard_offset + a - start,
                });
            }
        }
        shard_offset += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(sizes: &[usize]) -> FlatLayout {
        FlatLayout::new(
            sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (format!("p{i}"), Shape::from(n))),
        )
    }

    #[test]
    fn every_element_is_owned_by_exactly_one_rank() {
        // 3 + 7 + 5 = 15 elements, buckets of 4 → [4, 4, 4, 3]; 3 ranks → chunks 2, 2, 2, 1.
        let l = layout(&[3, 7, 5]);
        let s = Sharding {
            total: l.total,
            bucket: 4,
            world: 3,
        };
        let b = s.buckets();
        assert_eq!(b.len(), 4);
        assert_eq!((b[3].start, b[3].len, b[3].chunk), (12, 3, 1));
        let mut seen = vec![0; l.total];
        for r in 0..3 {
            let ps = pieces(&l, &s, r);
            assert_eq!(ps.iter().map(|p| p.len).sum::<usize>(), s.shard_len(r));
            for p in ps {
                for k in 0..p.len {
                    seen[l.offsets[p.param] + p.param_offset + k] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "{seen:?}");
        // Rank 2's chunk of a 4-element bucket is [2·2, 3·2) ∩ [0, 4) = nothing; of the
        // last bucket (len 3, chunk 1) it owns [2, 3) → flat element 14.
        assert_eq!(s.owned(2), vec![(4, 0), (8, 0), (12, 0), (14, 1)]);
    }

    #[test]
    fn gather_and_split_round_trip() {
        let d = Device::Cpu;
        let a = Tensor::new(&[1f32, 2.0], &d).unwrap();
        let b = Tensor::new(&[[3f32, 4.0, 5.0]], &d).unwrap();
        let l = FlatLayout::new([
            ("a".into(), a.shape().clone()),
            ("b".into(), b.shape().clone()),
        ]);
        let flat = l.gather(&[Some(a.clone()), None], 0, 5, &d).unwrap();
        assert_eq!(
            flat.to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0, 0.0, 0.0, 0.0]
        );
        let mid = l.gather(&[Some(a), Some(b.clone())], 1, 3, &d).unwrap();
        assert_eq!(mid.to_vec1::<f32>().unwrap(), vec![2.0, 3.0, 4.0]);
        let parts = l
            .split(&Tensor::new(&[1f32, 2.0, 3.0, 4.0, 5.0], &d).unwrap())
            .unwrap();
        assert_eq!(
            parts[1].to_vec2::<f32>().unwrap(),
            b.to_vec2::<f32>().unwrap()
        );
    }
}
