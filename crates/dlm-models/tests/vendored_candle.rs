//! The three changes of the vendored candle-core (`vendor/README.md`), through candle's own
//! API as every dlm crate reaches it.

use candle_core::{DType, Device, Tensor, Var};

/// A bf16 sum keeps its total in f32 and rounds once: 100,000 ones sum to 100,000 (to
/// bf16's ulp of 512 there), where adding into a bf16 total stalls at 256 (256 + 1 rounds
/// back to 256); a row-wise sum of mixed signs is within one bf16 ulp of the f32 sum
/// (a bf16 total drifts by several); a long sum, in parallel blocks, is within one bf16
/// step of the exact one and the same every time.
#[test]
fn bf16_sums_accumulate_in_f32() {
    let ones = Tensor::ones(100_000, DType::BF16, &Device::Cpu).unwrap();
    let total = ones.sum_all().unwrap().to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap();
    assert!((total - 100_000.0).abs() <= 256.0, "sum of 100,000 bf16 ones: {total}");

    let v: Vec<f32> = (0..3 * 1001).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0).collect();
    let x = Tensor::from_vec(v, (3, 1001), &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
    let rows = x.sum(1).unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    let want = x.to_dtype(DType::F32).unwrap().sum(1).unwrap().to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    for (i, (got, want)) in rows.iter().zip(&want).enumerate() {
        assert!((got - want).abs() <= want.abs() / 128.0, "row {i}: bf16 sum {got}, f32 sum rounded {want}");
    }

    // Past 64 Ki elements the blocks are summed in parallel and added in order: within one
    // bf16 step of the exact sum, and the same bits every time.
    let v: Vec<f32> = (0..1_000_003u64).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 4.0).collect();
    let x = Tensor::from_vec(v, 1_000_003, &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap();
    let exact: f64 = x.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap().iter().map(|&v| v as f64).sum();
    let sum = || x.sum_all().unwrap().to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap();
    let total = sum();
    assert!((total as f64 - exact).abs() <= exact.abs() / 128.0, "parallel bf16 sum {total}, exact {exact}");
    assert!((0..5).all(|_| sum().to_bits() == total.to_bits()), "the same total every time");
}

/// A node's first gradient is stored as it is, later ones added: `y = x·x + 3x` has two
/// paths into `x` (dy/dx = 2x + 3), and a lone path keeps its value (d(5x)/dx = 5).
#[test]
fn gradients_accumulate_over_paths() {
    let x = Var::new(&[1.5f32, -2.0, 0.25], &Device::Cpu).unwrap();
    let y = ((x.as_tensor() * x.as_tensor()).unwrap() + (x.as_tensor() * 3.0).unwrap()).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec1::<f32>().unwrap(), vec![6.0, -1.0, 3.5]);
    let g = (x.as_tensor() * 5.0).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec1::<f32>().unwrap(), vec![5.0, 5.0, 5.0]);
}

/// A bf16 `add` is the f32 sum rounded once, bit for bit `bf16::from_f32`: halfway cases
/// both ways, overflow to infinity, NaN, denormals, a length that is no multiple of 16.
#[test]
fn bf16_add_rounds_like_half() {
    use half::bf16;
    let mut a: Vec<f32> = (0..1003).map(|i| ((i * 7919) % 2000) as f32 / 7.0 - 140.0).collect();
    let mut b: Vec<f32> = (0..1003).map(|i| ((i * 104_729) % 3000) as f32 / 1e4).collect();
    // 1 + 2^-8 is halfway between two bf16 (ties to even: 1), 1 + 3·2^-8 ties up; the max
    // finite bf16 doubled overflows; NaN; a denormal.
    let specials = [(1.0, 0.00390625), (1.0, 0.01171875), (3.389e38, 3.389e38), (f32::NAN, 1.0), (1e-39, 1e-39), (-0.0, 0.0)];
    for (i, &(x, y)) in specials.iter().enumerate() {
        (a[i], b[i]) = (x, y);
    }
    let (ab, bb): (Vec<bf16>, Vec<bf16>) = (a.iter().map(|&x| bf16::from_f32(x)).collect(), b.iter().map(|&x| bf16::from_f32(x)).collect());
    let sum = (Tensor::new(ab.as_slice(), &Device::Cpu).unwrap() + Tensor::new(bb.as_slice(), &Device::Cpu).unwrap()).unwrap();
    for (i, (got, (x, y))) in sum.to_vec1::<bf16>().unwrap().iter().zip(ab.iter().zip(&bb)).enumerate() {
        let want = bf16::from_f32(x.to_f32() + y.to_f32());
        assert_eq!(got.to_bits(), want.to_bits(), "element {i}: {x} + {y}");
    }
}
