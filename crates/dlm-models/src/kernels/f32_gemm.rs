//! f32 matrix products on slices, through the `gemm` crate's kernel (the one candle's f32
//! matmul calls), for kernels that own their buffers: operands are any strided views of
//! slices (a transpose is a view), and the output is written in place, or added to,
//! without the zeroed fresh tensor candle allocates for every product.

/// A strided f32 matrix: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `[rows, cols]` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose, as a view of the same elements.
    pub fn t(self) -> View<'a> {
        View { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// How a product runs: on the calling thread, or split over candle's thread count (what
/// candle's matmul does).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Threads {
    One,
    All,
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major `[a.rows, b.cols]`
/// with row stride `ld`. Panics when the operands do not fit each other or their slices
/// (a bug in the calling kernel, never a property of user input).
pub(crate) fn product(dst: &mut [f32], ld: usize, a: View, b: View, accumulate: bool, threads: Threads) {
    let (m, n) = (a.rows, b.cols);
    assert!(m == 0 || n == 0 || (m - 1) * ld + n <= dst.len(), "f32 product: output [{m}, {n}] (ld {ld}) exceeds {}", dst.len());
    // SAFETY: dst holds every (i, j) the product writes (asserted above), initialised (a
    // `&mut [f32]`), so it may be read when accumulating.
    unsafe { raw_product(dst.as_mut_ptr(), ld, a, b, accumulate, threads) }
}

/// `a · b` as a new row-major `[a.rows, b.cols]` vector, written once (never zeroed).
pub(crate) fn new_product(a: View, b: View, threads: Threads) -> Vec<f32> {
    let len = a.rows * b.cols;
    let mut out = Vec::with_capacity(len);
    // SAFETY: the product writes all `len` elements of the reserved buffer without reading
    // them (not accumulating), so they are initialised before `set_len`.
    unsafe {
        raw_product(out.as_mut_ptr(), b.cols, a, b, false, threads);
        out.set_len(len);
    }
    out
}

/// # Safety
/// `dst` must be valid for writes of row-major `[a.rows, b.cols]` with row stride `ld`,
/// and initialised there when `accumulate`.
unsafe fn raw_product(dst: *mut f32, ld: usize, a: View, b: View, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && a.in_bounds() && b.in_bounds(), "f32 product: operands [{m}, {k}] · [{}, {n}] out of bounds", b.rows);
    // The products run on the current rayon pool (`threads::configure_threads` sizes it).
    let parallelism = match (threads, rayon::current_num_threads()) {
        (Threads::All, t) if t > 1 => gemm::Parallelism::Rayon(t),
        _ => gemm::Parallelism::None,
    };
    // SAFETY: every index gemm forms in a and b, (i, l) and (l, j) for i < m, j < n,
    // l < k, is in bounds of its slice (asserted above); dst is the caller's promise.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ld as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View, b: View) -> Vec<f64> {
        let mut out = vec![0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols).map(|l| a.data[i * a.rs + l * a.cs] as f64 * b.data[l * b.rs + j * b.cs] as f64).sum();
            }
        }
        out
    }

    /// Plain and transposed operands, a padded output row stride, and accumulation, against
    /// an f64 triple loop.
    #[test]
    fn products_of_views_equal_the_definition() {
        let (m, k, n) = (37, 70, 19);
        let xs: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let ys: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0).collect();
        let (a, b) = (View::rows(&xs, m, k), View::rows(&ys, k, n));
        let bt_data: Vec<f32> = (0..n * k).map(|i| ys[(i % k) * n + i / k]).collect(); // [n, k]
        let bt = View::rows(&bt_data, n, k).t();
        let ld = n + 5;
        for (b, threads) in [(b, Threads::One), (bt, Threads::All)] {
            let mut dst = vec![2f32; m * ld];
            product(&mut dst, ld, a, b, false, threads);
            let want = naive(a, b);
            for i in 0..m {
                for j in 0..n {
                    assert!((dst[i * ld + j] as f64 - want[i * n + j]).abs() < 1e-4, "({i}, {j})");
                }
                assert!(dst[i * ld + n..(i + 1) * ld].iter().all(|&x| x == 2.0), "row {i}: padding written");
            }
            product(&mut dst, ld, a, b, true, threads);
            for i in 0..m {
                for j in 0..n {
                    assert!((dst[i * ld + j] as f64 - 2.0 * want[i * n + j]).abs() < 2e-4, "accumulated ({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn a_new_product_equals_the_product_in_place() {
        let xs: Vec<f32> = (0..400).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let (a, b) = (View::rows(&xs[..120], 10, 12), View::rows(&xs[100..], 20, 12).t()); // [10, 12] · [12, 20]
        let mut dst = vec![0f32; 200];
        product(&mut dst, 20, a, b, false, Threads::All);
        assert_eq!(new_product(a, b, Threads::All), dst);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let xs = vec![0f32; 10];
        let mut dst = vec![0f32; 16];
        product(&mut dst, 4, View::rows(&xs, 4, 4), View::rows(&xs, 4, 4), false, Threads::One);
    }
}
