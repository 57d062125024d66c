//! A BERT `vocab.txt` turned into the tokenizer HF's `BertTokenizerFast` builds from it
//! (transformers' `BertConverter`): BertNormalizer(clean_text, handle_chinese_chars,
//! strip_accents, lowercase) with the flags of `tokenizer_config.json` (`do_lower_case`
//! defaults to true — unless the vocabulary has upper-case word tokens and no lower-case
//! ones, which lowercasing would make unreachable: AntiBERTy's amino-acid vocabulary, whose
//! runner passes `do_lower_case=False`, as its wheel ships it without a config —
//! `strip_accents` to "follow lowercase", `tokenize_chinese_chars` to true), BertPreTokenizer, WordPiece with the `##` prefix and 100 characters per word,
//! `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B:1 [SEP]:1` templates and the WordPiece decoder.
//! Token texts (`[CLS]`, `[UNK]`, ...) come from the side files when they name them.

use std::path::Path;

use std::collections::HashMap;

use tokenizers::AddedToken;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;

use super::hf_files::HfFiles;
use crate::DataError;

/// Builds the tokenizer of a BERT `vocab.txt` at `path` with the options of `files`.
pub(crate) fn from_vocab_txt(
    path: &Path,
    files: &HfFiles,
) -> Result<tokenizers::Tokenizer, DataError> {
    let load_err = |message: String| DataError::TokenizerLoad {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    // As transformers' `load_vocab`: one token per line, the line's index is its id; a
    // token listed twice keeps its last index.
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let id = u32::try_from(index).map_err(|_| load_err("more than 2^32 lines".into()))?;
        vocab.insert(line.to_owned(), id);
    }
    if vocab.is_empty() {
        return Err(load_err("the vocabulary is empty".into()));
    }

    let name =
        |key: &str, default: &str| files.token_name(key).unwrap_or_else(|| default.to_owned());
    let unk = name("unk_token", "[UNK]");
    let sep = name("sep_token", "[SEP]");
    let pad = name("pad_token", "[PAD]");
    let cls = name("cls_token", "[CLS]");
    let mask = name("mask_token", "[MASK]");
    let id_of = |tok: &str| {
        vocab
            .get(tok)
            .copied()
            .ok_or_else(|| load_err(format!("the vocabulary has no `{tok}` token")))
    };
    let (cls_id, sep_id) = (id_of(&cls)?, id_of(&sep)?);

    // Built through its serde form: the builder wants an `ahash` map we do not depend on.
    // (From a string: its deserializer borrows the `type` tag.)
    let model_json = serde_json::json!({
        "type": "WordPiece",
        "unk_token": unk,
        "continuing_subword_prefix": "##",
        "max_input_chars_per_word": 100,
        "vocab": vocab,
    })
    .to_string();
    let model: WordPiece =
        serde_json::from_str(&model_json).map_err(|e| load_err(e.to_string()))?;
    let normalizer = BertNormalizer::new(
        true,
        files
            .tokenizer_flag("tokenize_chinese_chars")
            .unwrap_or(true),
        files.tokenizer_flag("strip_accents"),
        files.tokenizer_flag("do_lower_case").unwrap_or_else(|| !upper_case_only(vocab.keys())),
    );
    let processor = TemplateProcessing::builder()
        .try_single(vec![format!("{cls}:0"), "$A:0".into(), format!("{sep}:0")])
        .and_then(|b| {
            b.try_pair(vec![
                format!("{cls}:0"),
                "$A:0".into(),
                format!("{sep}:0"),
                "$B:1".into(),
                format!("{sep}:1"),
            ])
        })
        .map_err(load_err)?
        .special_tokens(vec![(cls.clone(), cls_id), (sep.clone(), sep_id)])
        .build()
        .map_err(|e| load_err(e.to_string()))?;

    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_normalizer(Some(normalizer))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(processor))
        .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    // transformers registers every special token of the slow tokenizer as a special,
    // non-normalized added token, in the order unk, sep, pad, cls, mask.
    let specials: Vec<AddedToken> = [unk, sep, pad, cls, mask]
        .into_iter()
        .map(|t| AddedToken::from(t, true))
        .collect();
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// Whether the word tokens (all but `[...]` specials) have upper-case letters and no
/// lower-case ones.
fn upper_case_only<'a>(tokens: impl Iterator<Item = &'a String>) -> bool {
    let mut upper = false;
    for t in tokens.filter(|t| !(t.starts_with('[') && t.ends_with(']'))) {
        if t.chars().any(char::is_lowercase) {
            return false;
        }
        upper |= t.chars().any(char::is_uppercase);
    }
    upper
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_upper_case_vocabulary_escapes_default_lowercasing() {
        let v = |ts: &[&str]| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(upper_case_only(v(&["[PAD]", "[MASK]", "A", "C", "##Q"]).iter()));
        assert!(!upper_case_only(v(&["[PAD]", "A", "the"]).iter()));
        assert!(!upper_case_only(v(&["[PAD]", "1", "##2"]).iter()));
    }
}
