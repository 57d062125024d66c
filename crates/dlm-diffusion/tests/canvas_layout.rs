//! The oracle-length canvas (`dlm eval --oracle-length`) in each model's own layout, on the
//! tiny checkpoints: the BERT family keeps SPEC §2's `<s> prompt <mask>×L </s>`; LLaDA,
//! whose generation code appends nothing, gets `prompt <mask>×L`, the canvas `dlm
//! generate` (`Canvas::for_model`) gives it for the same prompt and length.

use dlm_diffusion::{Canvas, SpecialIds};
use dlm_models::{Backbone, LoadOptions};
use std::path::PathBuf;

fn load(name: &str) -> Backbone {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dlm-models/tests/fixtures").join(name);
    Backbone::load(&dir, &LoadOptions::default()).unwrap()
}

#[test]
fn oracle_canvases_follow_the_model_layout() {
    // A formatted pair: <s> prompt (fixed) response (3 tokens) </s>.
    let sp = SpecialIds { bos: 0, eos: 2, pad: 1, mask: 126 };
    let ids = [0, 37, 50, 110, 11, 12, 13, 2];
    let fixed = [true, true, true, true, false, false, false, false];
    let llada = load("llada-tiny");
    let open = Canvas::oracle_for_model(&llada, &ids, &fixed, sp).unwrap();
    assert_eq!(open.ids(), &[0, 37, 50, 110, 126, 126, 126]);
    assert_eq!(open, Canvas::for_model(&llada, &ids[..4], 3, sp).unwrap());
    let sp = SpecialIds { mask: 89, ..sp };
    let xlmr = load("tiny-xlmr");
    let closed = Canvas::oracle_for_model(&xlmr, &ids, &fixed, sp).unwrap();
    assert_eq!(closed, Canvas::oracle(&ids, &fixed, sp).unwrap());
    assert_eq!(closed.ids(), &[0, 37, 50, 110, 89, 89, 89, 2]);
}
