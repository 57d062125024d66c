//! `MaskedLm::encode_rows` (sequences packed end to end, no product on padding rows)
//! against `padded_encode_rows` (the rows padded into one rectangular batch through
//! `encode`, then the real positions selected), on the tiny checkpoints of every family
//! with a packed path (ModernBERT has none: its `encode_rows` is the padded default):
//! rows of different lengths, a padding id inside a row (masked as a key, and for
//! RoBERTa/XLM-R given the padding position), one-token rows; f32 and bf16. Bad rows get
//! the same errors as `encode`.

use candle_core::{DType, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm, ModelError, padded_encode_rows};
use std::path::PathBuf;

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// max |a − b| / max |b|
fn rel(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_dtype(DType::F32).unwrap(), b.to_dtype(DType::F32).unwrap());
    let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-6);
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / scale
}

#[test]
fn packed_rows_equal_the_padded_batch() {
    for name in ["tiny-bert", "tiny-roberta", "tiny-xlmr"] {
        for dtype in [DType::F32, DType::BF16] {
            let model = Backbone::load(&tiny(name), &LoadOptions { dtype, ..LoadOptions::default() }).unwrap();
            let pad = model.config().pad_id();
            let v = model.vocab_size() as u32;
            let id = |i: u32| 5 + (i * 7) % (v - 5);
            let rows: Vec<Vec<u32>> = vec![
                (0..9).map(id).collect(),
                vec![id(3)],
                (0..17).map(|i| if i == 4 { pad } else { id(i + 11) }).collect(),
                (0..5).map(|i| id(i + 2)).collect(),
            ];
            let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
            let packed = model.encode_rows(&rows, pad).unwrap();
            let padded = padded_encode_rows(&model, &rows, pad).unwrap();
            assert_eq!(packed.dims(), [32, model.hidden_size()], "{name}");
            let tol = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
            assert!(rel(&packed, &padded) < tol, "{name} {dtype:?}: {}", rel(&packed, &padded));
        }
    }
}

#[test]
fn packed_rows_reject_what_encode_rejects() {
    let model = Backbone::load(&tiny("tiny-roberta"), &LoadOptions::default()).unwrap();
    let long = vec![5u32; 21];
    let err = model.encode_rows(&[&[5, 6], &long], 1).unwrap_err();
    assert!(matches!(err, ModelError::TooLong { found: 21, max: 20 }), "{err}");
    let model = Backbone::load(&tiny("tiny-bert"), &LoadOptions::default()).unwrap();
    let e = model.encode_rows(&[&[2, 64, 3]], 0).unwrap_err().to_string();
    assert!(e.contains("token id 64 is outside the vocabulary of 64"), "{e}");
}
