//! A scalar model of the AMX tile registers and instructions, exact to the Intel SDM's
//! pseudo-code, so the GEMM driver's packing and tiling can be tested on CPUs without AMX.
//!
//! - `TILELOADD` fills `rows` x `colsb` bytes and zeroes the rest of the 1 KiB register;
//! - `TILESTORED` writes `rows` x `colsb` bytes;
//! - `TDPBF16PS`, per row m of C: two f32 temporaries per output column accumulate the
//!   even and the odd products of the k-pairs separately (each an FMA with round to
//!   nearest even), then `C[m, n] = C[m, n] + even + odd`; bf16 inputs that are denormal
//!   read as zero and denormal results are flushed to zero. Shapes are checked as the
//!   instruction's #UD conditions do (here: a panic).
//!
//! Real tiles (a Xeon with AMX, 2026-12-01) add inside `TDPBF16PS` in another order than
//! the pseudo-code: their f32 sums differ from the model's in the last bits (up to about
//! 1e-5 relative where a sum cancels). The model proves the driver's packing, tiling and
//! blocking; `amx::tests::the_tiles_give_the_models_product` bounds the difference.

use super::tiles::{ROW_BYTES, ROWS, Tiles};

pub(crate) struct TileModel {
    rows: [usize; 8],
    colsb: [usize; 8],
    regs: Vec<[u8; ROWS * ROW_BYTES]>,
}

impl TileModel {
    /// The registers after `LDTILECFG config` (zeroed).
    pub(crate) fn new(config: &[u8; 64]) -> Self {
        assert_eq!(config[0], 1, "palette");
        assert_eq!(config[1], 0, "start row");
        let mut m = TileModel {
            rows: [0; 8],
            colsb: [0; 8],
            regs: vec![[0; ROWS * ROW_BYTES]; 8],
        };
        for t in 0..8 {
            m.colsb[t] = u16::from_le_bytes([config[16 + 2 * t], config[17 + 2 * t]]) as usize;
            m.rows[t] = config[48 + t] as usize;
            assert!(m.rows[t] <= ROWS && m.colsb[t] <= ROW_BYTES, "tile {t} shape");
        }
        m
    }

    fn f32_at(&self, t: usize, r: usize, i: usize) -> f32 {
        let b = &self.regs[t][r * ROW_BYTES + 4 * i..][..4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// bf16 element `i` of row `r`, widened, denormals as zero.
    fn bf16_at(&self, t: usize, r: usize, i: usize) -> f32 {
        let b = &self.regs[t][r * ROW_BYTES + 2 * i..][..2];
        flush(f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
    }
}

/// Denormals to (signed) zero.
fn flush(x: f32) -> f32 {
    if x.is_subnormal() { 0.0f32.copysign(x) } else { x }
}

impl Tiles for TileModel {
    unsafe fn zero<const T: u8>(&mut self) {
        self.regs[T as usize].fill(0);
    }

    unsafe fn load<const T: u8>(&mut self, src: *const u8, stride: usize) {
        let t = T as usize;
        let (rows, colsb) = (self.rows[t], self.colsb[t]);
        let reg = &mut self.regs[t];
        reg.fill(0);
        for r in 0..rows {
            // SAFETY: the caller guarantees `rows` rows of `colsb` bytes at `stride`.
            let row = unsafe { std::slice::from_raw_parts(src.add(r * stride), colsb) };
            reg[r * ROW_BYTES..][..colsb].copy_from_slice(row);
        }
    }

    unsafe fn dot_bf16<const C: u8, const A: u8, const B: u8>(&mut self) {
        let (c, a, b) = (C as usize, A as usize, B as usize);
        assert!(c != a && c != b && a != b, "TDPBF16PS needs three distinct tiles");
        assert_eq!(self.rows[c], self.rows[a], "C rows vs A rows");
        assert_eq!(self.colsb[a] / 4, self.rows[b], "A pairs vs B rows");
        assert_eq!(self.colsb[c], self.colsb[b], "C columns vs B columns");
        let mut out = [0u8; ROWS * ROW_BYTES];
        for m in 0..self.rows[c] {
            let mut temp = [0f32; 2 * ROW_BYTES / 4];
            for k in 0..self.colsb[a] / 4 {
                for n in 0..self.colsb[c] / 4 {
                    for h in 0..2 {
                        let (x, y) = (self.bf16_at(a, m, 2 * k + h), self.bf16_at(b, k, 2 * n + h));
                        temp[2 * n + h] = flush(x.mul_add(y, temp[2 * n + h]));
                    }
                }
            }
            for n in 0..self.colsb[c] / 4 {
                let sum = flush(flush(self.f32_at(c, m, n) + temp[2 * n]) + temp[2 * n + 1]);
                out[m * ROW_BYTES + 4 * n..][..4].copy_from_slice(&sum.to_le_bytes());
            }
        }
        self.regs[c] = out;
    }

    unsafe fn store<const T: u8>(&mut self, dst: *mut u8, stride: usize) {
        let t = T as usize;
        for r in 0..self.rows[t] {
            // SAFETY: the caller guarantees `rows` rows of `colsb` bytes at `stride`.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add(r * stride), self.colsb[t]) };
            row.copy_from_slice(&self.regs[t][r * ROW_BYTES..][..self.colsb[t]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tiles::CONFIG;
    use super::*;

    fn bf16_bytes(v: &[f32]) -> Vec<u8> {
        v.iter()
            .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
            .collect()
    }

    /// One row of A (pairs (1, 2), (3, 4), ...) times B: column n of B holds pairs
    /// (n, -n) in pair-row 0 and (0.5, 0.25) in pair-row 1; C starts at 100.
    #[test]
    fn dot_pairs_follow_the_sdm() {
        let mut cfg = CONFIG;
        for t in 0..3 {
            cfg[48 + t] = [1, 1, 2][t]; // C: 1 row, A: 1 row, B: 2 pair-rows
            cfg[16 + 2 * t] = [64, 8, 64][t]; // C: 16 f32, A: 2 pairs, B: 16 pairs
        }
        let mut t = TileModel::new(&cfg);
        let a = bf16_bytes(&[1.0, 2.0, 3.0, 4.0]);
        let mut b = Vec::new();
        for n in 0..16 {
            b.extend(bf16_bytes(&[n as f32, -(n as f32)]));
        }
        for _ in 0..16 {
            b.extend(bf16_bytes(&[0.5, 0.25]));
        }
        let c: Vec<u8> = [100f32; 16].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut out = [0u8; 64];
        // SAFETY: the buffers hold the configured rows and columns.
        unsafe {
            t.load::<0>(c.as_ptr(), 64);
            t.load::<1>(a.as_ptr(), 8);
            t.load::<2>(b.as_ptr(), 64);
            t.dot_bf16::<0, 1, 2>();
            t.store::<0>(out.as_mut_ptr(), 64);
        }
        for n in 0..16 {
            let got = f32::from_le_bytes(out[4 * n..][..4].try_into().unwrap());
            let want = 100.0 + (1.0 * n as f32 + 3.0 * 0.5) + (2.0 * -(n as f32) + 4.0 * 0.25);
            assert_eq!(got, want, "column {n}");
        }
        // a load zeroes what the configuration leaves out: only row 0, bytes 0..8 of A
        assert_eq!(&t.regs[1][..8], &a[..8]);
        assert!(t.regs[1][8..].iter().all(|&x| x == 0));
    }

    /// The even and odd products are summed apart and joined at the end (SDM order), and
    /// denormal bf16 inputs count as zero. Pairs (2^24, 1), (-2^24, 0), (tiny, 0) times
    /// (1, 1), (1, 0), (2^127, 0): even 2^24 - 2^24 + 0 = 0, odd 1 → 1. Adding each pair's
    /// sum in turn would give (2^24 + 1 → 2^24) - 2^24 = 0; without DAZ, tiny · 2^127 = 2^-6.
    #[test]
    fn sums_stay_split_and_denormals_are_zero() {
        let mut t = TileModel::new(&CONFIG);
        let tiny = f32::from_bits(0x0001_0000); // 2^-133, a bf16 denormal
        let p24 = 16777216.0;
        let mut a = vec![0u8; 1024];
        let mut b = vec![0u8; 1024];
        a[..12].copy_from_slice(&bf16_bytes(&[p24, 1.0, -p24, 0.0, tiny, 0.0]));
        for (q, pair) in [[1.0, 1.0], [1.0, 0.0], [2f32.powi(127), 0.0]].iter().enumerate() {
            b[q * 64..][..4].copy_from_slice(&bf16_bytes(pair)); // pair-row q, column 0
        }
        let mut out = vec![0u8; 1024];
        // SAFETY: 16 x 64-byte buffers.
        unsafe {
            t.zero::<0>();
            t.load::<1>(a.as_ptr(), 64);
            t.load::<2>(b.as_ptr(), 64);
            t.dot_bf16::<0, 1, 2>();
            t.store::<0>(out.as_mut_ptr(), 64);
        }
        assert_eq!(f32::from_le_bytes(out[..4].try_into().unwrap()), 1.0);
        assert!(out[4..].iter().all(|&x| x == 0));
    }
}
