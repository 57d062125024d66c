//! Every fused kernel equals its composed (plain candle) form: values and the gradients
//! of every input, with and without dropout, on shapes that are not multiples of the
//! vector width. In f32 the two agree to float rounding. In bf16 the composed form
//! rounds after every op and the fused one once, so both are compared with the f32
//! computation on the same (bf16-exact) inputs: the fused error must be within bf16
//! rounding and never worse than the composed one's.

use super::*;
use candle_core::{DType, Device, Var};
use std::sync::Arc;

/// A variable with values in [-2, 2) from a fixed pattern, exact in bf16 (multiples of
/// 1/64), so f32 and bf16 runs see the same numbers.
fn var(shape: &[usize], seed: u64, dtype: DType) -> Var {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64).map(|i| ((i * 7919 + seed * 104_729) % 256) as f32 / 64.0 - 2.0).collect();
    Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap()
}

/// max |a − b| / max(|b|, 1e-3), in f32.
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_dtype(DType::F32).unwrap(), b.to_dtype(DType::F32).unwrap());
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-3);
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
}

/// Runs `f` (a function of the variables giving one tensor) and returns its value and
/// the gradients of sum(value · weights) with respect to every variable.
fn value_and_grads(vars: &[&Var], f: impl Fn() -> Tensor) -> (Tensor, Vec<Tensor>) {
    let y = f();
    let w = var(y.dims(), 99, DType::F32).as_tensor().to_dtype(y.dtype()).unwrap();
    let loss = (y.to_dtype(DType::F32).unwrap() * w.to_dtype(DType::F32).unwrap()).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    let grads = vars.iter().map(|v| g.get(v).expect("a gradient for every input").clone()).collect();
    (y, grads)
}

type Run = (Tensor, Vec<Tensor>);

/// `run(dtype, fused)`: f32 fused = f32 composed (2e-5); bf16 fused within 1.5e-2 of f32
/// composed, or no further from it than bf16 composed is.
fn check(name: &str, run: impl Fn(DType, bool) -> Run) {
    let truth = run(DType::F32, false);
    let pairs = |(y, g): &Run| std::iter::once(y.clone()).chain(g.iter().cloned()).collect::<Vec<_>>();
    let truth = pairs(&truth);
    for (i, (a, b)) in pairs(&run(DType::F32, true)).iter().zip(&truth).enumerate() {
        assert!(rel(a, b) < 2e-5, "{name} f32: output {i} (0 = value, then gradients) differs by {}", rel(a, b));
    }
    let (fused, plain) = (pairs(&run(DType::BF16, true)), pairs(&run(DType::BF16, false)));
    for (i, ((f, p), t)) in fused.iter().zip(&plain).zip(&truth).enumerate() {
        let (ef, ep) = (rel(f, t), rel(p, t));
        assert!(ef < 1.5e-2 || ef <= ep, "{name} bf16: output {i} is {ef} from f32 (composed bf16: {ep})");
    }
}

#[test]
fn add_norm_equals_composed() {
    for drop in [None, Some(DropMask::new(11, 0.1))] {
        let (rows, h) = (37, 70);
        check(&format!("add-norm {drop:?}"), |dtype, fused| {
            let (x, res, xb) = (var(&[rows, h], 1, dtype), var(&[rows, h], 2, dtype), var(&[h], 3, dtype));
            let (w, b) = (var(&[h], 4, dtype), var(&[h], 5, dtype));
            let norm = Norm::new(w.as_tensor().clone(), b.as_tensor().clone(), 1e-5);
            value_and_grads(&[&x, &res, &xb, &w, &b], || {
                let (xt, r, xbt) = (x.as_tensor(), Some(res.as_tensor()), Some(xb.as_tensor()));
                if fused { norm.fused_add(xt, xbt, r, drop) } else { norm.plain_add(xt, xbt, r, drop) }.unwrap()
            })
        });
    }
    // No residual, no bias (the head's LayerNorm).
    check("norm", |dtype, fused| {
        let (x, w, b) = (var(&[5, 33], 6, dtype), var(&[33], 7, dtype), var(&[33], 8, dtype));
        let norm = Norm::new(w.as_tensor().clone(), b.as_tensor().clone(), 1e-12);
        value_and_grads(&[&x, &w, &b], || {
            if fused { norm.fused_add(&x, None, None, None) } else { norm.plain_add(&x, None, None, None) }.unwrap()
        })
    });
}

#[test]
fn bias_add_equals_composed() {
    check("bias-add", |dtype, fused| {
        let (x, b) = (var(&[4, 7, 45], 11, dtype), var(&[45], 12, dtype));
        value_and_grads(&[&x, &b], || if fused { BiasAdd::forward(&x, &b) } else { x.broadcast_add(&b) }.unwrap())
    });
}

#[test]
fn bias_gelu_equals_composed() {
    check("bias-gelu", |dtype, fused| {
        let (x, b) = (var(&[3, 11, 53], 6, dtype), var(&[53], 7, dtype));
        value_and_grads(&[&x, &b], || {
            if fused { BiasGelu::forward(&x, &b) } else { plain_bias_act(Activation::Gelu, &x, &b) }.unwrap()
        })
    });
}

#[test]
fn attention_probs_equal_composed() {
    let dev = Device::Cpu;
    let (b, heads, q) = (2, 3, 19);
    // Padding: row 1 attends to its first 12 keys only. Causal: keys ≤ query.
    let pad: Vec<f32> = (0..b * q).map(|i| if i / q == 1 && i % q >= 12 { f32::MIN } else { 0.0 }).collect();
    let causal: Vec<f32> = (0..b * q * q).map(|i| if i % q > (i / q) % q { f32::MIN } else { 0.0 }).collect();
    let masks = [Tensor::from_vec(pad, (b, 1, 1, q), &dev).unwrap(), Tensor::from_vec(causal, (b, 1, q, q), &dev).unwrap()];
    for mask in &masks {
        for drop in [None, Some(DropMask::new(5, 0.1))] {
            check(&format!("softmax {:?} {drop:?}", mask.dims()), |dtype, fused| {
                let scores = var(&[b, heads, q, q], 8, dtype);
                let mask = mask.to_dtype(dtype).unwrap();
                value_and_grads(&[&scores], || {
                    if fused {
                        MaskedSoftmax { scale: 0.125, drop }.forward(&scores, &mask)
                    } else {
                        plain_attention_probs(&scores, &mask, 0.125, drop)
                    }
                    .unwrap()
                })
            });
        }
    }
}

#[test]
fn attention_equals_composed() {
    let dev = Device::Cpu;
    // s = 150 > KB: two key blocks of the online softmax; s = 19: one partial block.
    for (b, s, heads, d) in [(2, 19, 3, 4), (2, 150, 2, 5)] {
        let h = heads * d;
        // Padding: sequence 1 attends to its first 12 keys only. Causal: keys ≤ query.
        let pad: Vec<f32> = (0..b * s).map(|i| if i / s == 1 && i % s >= 12 { f32::MIN } else { 0.0 }).collect();
        let causal: Vec<f32> = (0..b * s * s).map(|i| if i % s > (i / s) % s { f32::MIN } else { 0.0 }).collect();
        let masks = [Tensor::from_vec(pad, (b, 1, 1, s), &dev).unwrap(), Tensor::from_vec(causal, (b, 1, s, s), &dev).unwrap()];
        for mask in &masks {
            for drop in [None, Some(DropMask::new(5, 0.1))] {
                check(&format!("attention s {s} {:?} {drop:?}", mask.dims()), |dtype, fused| {
                    let qkv = var(&[b, s, 3 * h], 8, dtype);
                    let mask = mask.to_dtype(dtype).unwrap();
                    let scale = 1.0 / (d as f64).sqrt();
                    value_and_grads(&[&qkv], || {
                        if fused {
                            Attention::new(heads, scale as f32, drop, None).forward(&qkv, &mask)
                        } else {
                            plain_attention(&qkv, &mask, heads, scale, drop)
                        }
                        .unwrap()
                    })
                });
            }
        }
    }
}

/// Packed sequences (one of 150 rows: two query blocks; one of a single row; a padding id
/// inside one) equal each sequence alone through the composed path, values and gradients;
/// and equal the padded fused kernel at the real rows of the rectangular batch.
#[test]
fn packed_attention_equals_padded() {
    let dev = Device::Cpu;
    let (heads, d) = (2, 5);
    let h = heads * d;
    let lengths: Arc<[usize]> = Arc::from(vec![19, 150, 1, 7]);
    let total: usize = lengths.iter().sum();
    // Key 3 of the first sequence is a padding id inside it.
    let bias: Vec<f32> = (0..total).map(|i| if i == 3 { f32::MIN } else { 0.0 }).collect();
    let bias = Tensor::from_vec(bias, total, &dev).unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    check("packed attention", |dtype, fused| {
        let qkv = var(&[total, 3 * h], 8, dtype);
        let bias = bias.to_dtype(dtype).unwrap();
        value_and_grads(&[&qkv], || {
            if fused {
                Attention::new(heads, scale as f32, None, Some(lengths.clone())).forward(&qkv, &bias)
            } else {
                plain_packed_attention(&qkv, &bias, &lengths, heads, scale)
            }
            .unwrap()
        })
    });
    // The same rows padded to [4, 150, 3h] (padding keys masked) through the padded kernel.
    let qkv = var(&[total, 3 * h], 8, DType::F32).as_tensor().clone();
    let packed = Attention::new(heads, scale as f32, None, Some(lengths.clone())).forward(&qkv, &bias).unwrap();
    let s = 150;
    let (mut rows, mut mask, mut start) = (Vec::new(), Vec::new(), 0);
    for &len in lengths.iter() {
        let pad = Tensor::zeros((s - len, 3 * h), DType::F32, &dev).unwrap();
        rows.push(Tensor::cat(&[&qkv.narrow(0, start, len).unwrap(), &pad], 0).unwrap());
        let b = bias.narrow(0, start, len).unwrap().to_vec1::<f32>().unwrap();
        mask.extend(b.into_iter().chain(std::iter::repeat_n(f32::MIN, s - len)));
        start += len;
    }
    let padded_qkv = Tensor::stack(&rows, 0).unwrap(); // [4, s, 3h]
    let mask = Tensor::from_vec(mask, (4, 1, 1, s), &dev).unwrap();
    let padded = Attention::new(heads, scale as f32, None, None).forward(&padded_qkv, &mask).unwrap();
    let mut start = 0;
    for (n, &len) in lengths.iter().enumerate() {
        let want = padded.get(n).unwrap().narrow(0, 0, len).unwrap();
        let got = packed.narrow(0, start, len).unwrap();
        assert!(rel(&got, &want) < 1e-6, "sequence {n}: {}", rel(&got, &want));
        start += len;
    }
}

#[test]
fn cross_entropy_equals_log_softmax() {
    let (rows, v) = (9, 1003);
    let targets = Tensor::from_vec((0..rows as u32).map(|r| r * 97 % v as u32).collect::<Vec<_>>(), rows, &Device::Cpu).unwrap();
    check("cross-entropy", |dtype, fused| {
        let logits = var(&[rows, v], 9, dtype);
        value_and_grads(&[&logits], || {
            if fused {
                kernels::cross_entropy(&logits, &targets).unwrap().narrow(1, 0, 2).unwrap()
            } else {
                let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32).unwrap(), D::Minus1).unwrap();
                let ce = logp.gather(&targets.unsqueeze(1).unwrap(), 1).unwrap().neg().unwrap();
                let ent = logp.mean_keepdim(D::Minus1).unwrap().neg().unwrap();
                Tensor::cat(&[ce, ent], 1).unwrap()
            }
        })
    });
    for dtype in [DType::F32, DType::BF16] {
        let logits = var(&[rows, v], 10, dtype);
        let arg = kernels::cross_entropy(&logits, &targets).unwrap().narrow(1, 2, 1).unwrap().squeeze(1).unwrap();
        let want = logits.as_tensor().argmax(D::Minus1).unwrap().to_dtype(DType::F32).unwrap();
        assert_eq!(arg.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap(), "argmax, first maximum on ties");
    }
}
