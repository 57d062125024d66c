//! Gradients of the SPEC §3 loss with respect to every backbone parameter equal those of
//! PyTorch (fixed masks and timesteps, dropout off): the backward pass through the
//! encoder, the gathered masked rows and the MLM head is what training relies on.
//! Fixture: scripts/reference/gradient_fixtures.py.

use dlm_diffusion::{Corruption, LossForm, ObjectiveConfig, TimestepSampler, TokenBatch, Weighting, objective_with};
use dlm_models::{Backbone, LoadOptions};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json")
}

#[test]
fn loss_gradients_match_pytorch() {
    let golden = fixture("golden.json");
    let want = fixture("gradients.json");
    let l = &golden["loss"];
    let (pad, mask) = (golden["special"]["pad"].as_u64().unwrap() as u32, golden["special"]["mask"].as_u64().unwrap() as u32);
    let rows: Vec<Vec<u32>> = serde_json::from_value(l["rows"].clone()).unwrap();
    let fixed: Vec<Vec<bool>> = serde_json::from_value(l["fixed"].clone()).unwrap();
    let pairs: Vec<(Vec<u32>, Vec<bool>)> = rows.iter().zip(&fixed).map(|(r, f)| (r.clone(), f.iter().map(|x| !x).collect())).collect();
    let batch = TokenBatch::from_rows(&pairs, pad).unwrap();
    let masked: Vec<Vec<bool>> = serde_json::from_value(l["masked"].clone()).unwrap();
    let flat = masked.iter().flat_map(|m| m.iter().copied().chain(std::iter::repeat(false)).take(batch.seq)).collect();
    let corruption = Corruption { t: serde_json::from_value(l["t"].clone()).unwrap(), masked: flat };
    let cfg = ObjectiveConfig {
        timesteps: l["timesteps"].as_u64().unwrap() as u32,
        sampler: TimestepSampler::Uniform,
        form: LossForm::Dlm { weighting: Weighting::Linear },
        label_smoothing: 0.0,
        mask_id: mask,
        pad_id: pad,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures/tiny-xlmr");
    let device = dlm_models::device_from_env("DLM_TEST_DEVICE").unwrap(); // default cpu
    let model = Backbone::load(&dir, &LoadOptions { trainable: true, device, ..LoadOptions::default() }).unwrap();
    let out = objective_with(&model, &batch, &corruption, &cfg).unwrap();
    assert!((out.metrics.loss - want["loss"].as_f64().unwrap()).abs() < 1e-4);
    let grads = out.loss.backward().unwrap();
    let expected = want["grads"].as_object().unwrap();
    let vars = model.params().vars();
    assert_eq!(vars.len(), expected.len(), "one gradient per parameter");
    for (name, var) in vars {
        let w = &expected[name.as_str()];
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect();
        let close = |ours: f64, theirs: f64, what: &str| {
            let tol = 1e-4 * theirs.abs().max(1.0) + 1e-6;
            assert!((ours - theirs).abs() < tol, "{name} {what}: ours {ours}, torch {theirs}");
        };
        close(g.iter().sum(), w["sum"].as_f64().unwrap(), "sum");
        close(g.iter().map(|x| x.abs()).sum(), w["abs_sum"].as_f64().unwrap(), "abs sum");
        close(g.iter().map(|x| x * x).sum::<f64>().sqrt(), w["norm"].as_f64().unwrap(), "norm");
        if let Some(values) = w["values"].as_array() {
            for (i, (ours, theirs)) in g.iter().zip(values).enumerate() {
                close(*ours, theirs.as_f64().unwrap(), &format!("[{i}]"));
            }
        }
    }
}
