//! Bad checkpoints and inputs give clear errors (file, tensor, expected vs found), never
//! a panic.

use candle_core::{Device, Tensor};
use dlm_models::{Backbone, LoadOptions, MaskedLm, ModelError, fill_mask};
use std::path::{Path, PathBuf};

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A temporary copy of a fixture directory.
fn copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn load_err(dir: &Path) -> String {
    match Backbone::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_config() {
    let dir = copy("tiny-bert");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("cannot read"), "{e}");
}

#[test]
fn missing_weights() {
    let dir = copy("tiny-bert");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("no weights found") && e.contains("pytorch_model.bin"), "{e}");
}

#[test]
fn truncated_safetensors() {
    let dir = copy("tiny-bert");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("corrupt or truncated") && e.contains("model.safetensors"), "{e}");
}

#[test]
fn garbage_safetensors_header() {
    let dir = copy("tiny-bert");
    std::fs::write(dir.path().join("model.safetensors"), b"\xff\xff\xff\xff\xff\xff\xff\x7fnot json").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("corrupt or truncated"), "{e}");
}

#[test]
fn corrupt_pytorch_bin() {
    let dir = copy("tiny-bert-untied-bin");
    std::fs::write(dir.path().join("pytorch_model.bin"), b"PK\x03\x04 definitely not a zip").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("pytorch_model.bin") && e.contains("corrupt"), "{e}");
}

#[test]
fn wrong_shape_names_tensor_and_shapes() {
    let dir = copy("tiny-bert");
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"intermediate_size\": 48", "\"intermediate_size\": 50");
    std::fs::write(&path, text).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("bert.encoder.layer.0.intermediate.dense.weight") && e.contains("[48, 32]") && e.contains("[50, 32]"),
        "{e}"
    );
}

#[test]
fn vocab_mismatch_is_a_shape_error() {
    let dir = copy("tiny-xlmr");
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"vocab_size\": 90", "\"vocab_size\": 250002");
    std::fs::write(&path, text).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("roberta.embeddings.word_embeddings.weight") && e.contains("250002"), "{e}");
}

#[test]
fn missing_tensor_lists_prefixes_tried() {
    let dir = copy("tiny-bert");
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    std::fs::write(&path, text).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("bert.encoder.layer.2.attention.self.query.weight")
            && e.contains("tried: bert.encoder.layer.2.attention.self.query.weight, encoder.layer.2.attention.self.query.weight, roberta.encoder"),
        "{e}"
    );
}

#[test]
fn unknown_model_type() {
    let dir = copy("tiny-bert");
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"");
    std::fs::write(&path, text).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("\"gpt2\" is not supported"), "{e}");
}

#[test]
fn malformed_config() {
    let dir = copy("tiny-bert");
    std::fs::write(dir.path().join("config.json"), "{\"model_type\": \"bert\", ").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("not a valid config.json"), "{e}");
}

#[test]
fn over_long_input_is_rejected() {
    let model = Backbone::load(&tiny("tiny-roberta"), &LoadOptions::default()).unwrap();
    // 22 positions, pad = 1, positions start at 2: 20 usable.
    assert_eq!(model.max_sequence_length(), 20);
    let ids = Tensor::from_vec(vec![5u32; 21], (1, 21), &Device::Cpu).unwrap();
    let err = model.logits(&ids, &ids.ones_like().unwrap()).unwrap_err();
    assert!(matches!(err, ModelError::TooLong { found: 21, max: 20 }), "{err}");
}

#[test]
fn out_of_vocabulary_id_is_rejected() {
    let model = Backbone::load(&tiny("tiny-bert"), &LoadOptions::default()).unwrap();
    let ids = Tensor::new(&[[2u32, 64, 3]], &Device::Cpu).unwrap();
    let e = model.logits(&ids, &ids.ones_like().unwrap()).unwrap_err().to_string();
    assert!(e.contains("token id 64 is outside the vocabulary of 64"), "{e}");
}

#[test]
fn fill_mask_without_mask() {
    let model = Backbone::load(&tiny("tiny-bert"), &LoadOptions::default()).unwrap();
    let e = fill_mask(&model, &[2, 10, 11, 3], 4, 5).unwrap_err().to_string();
    assert!(e.contains("no mask token (id 4)"), "{e}");
}

/// Found by fuzzing (fuzz/artifacts/torch_checkpoint/, docs/reliability.md): a pickle whose
/// BINUNICODE string declares ~4 GiB made the vendored candle reader allocate all of it up
/// front (out of memory under the fuzzer); it is now a clear error naming the short string.
#[test]
fn torch_pickle_with_a_huge_string_length_is_an_error() {
    let e = torch_artifact_error("oom-binunicode-length", "mp_rank_00_model_states.pt");
    assert!(e.contains("BINUNICODE"), "{e}");
}

/// The error of reading the torch checkpoint `fuzz/artifacts/torch_checkpoint/<name>`,
/// saved as `file`.
fn torch_artifact_error(name: &str, file: &str) -> String {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/artifacts/torch_checkpoint").join(name);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::copy(&input, &path).unwrap();
    dlm_models::read_torch_state_dict(&path, None).err().expect("a corrupt pickle must not load").to_string()
}

/// Found by fuzzing (fuzz/artifacts/torch_checkpoint/short-rebuild-args-tuple): a pickle
/// whose tensor rebuild tuple is shorter than `_rebuild_tensor_v2`'s arguments made the
/// vendored candle reader index past the tuple (`Vec::remove` panicked); it is now an error.
#[test]
fn torch_pickle_with_a_short_rebuild_tuple_is_an_error() {
    let e = torch_artifact_error("short-rebuild-args-tuple", "pytorch_model.bin");
    assert!(e.contains("expected") && e.contains("found"), "{e}");
}

/// Found by fuzzing (fuzz/artifacts/torch_checkpoint/long1-wider-than-64-bits): a LONG1
/// opcode declaring more than 8 bytes overflowed the vendored reader's shift (a panic with
/// overflow checks, a wrong value without); it is now an error.
#[test]
fn torch_pickle_with_a_wide_long1_is_an_error() {
    let e = torch_artifact_error("long1-wider-than-64-bits", "pytorch_model.bin");
    assert!(e.contains("LONG1"), "{e}");
}
