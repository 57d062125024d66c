//! Text side of dlm: tokenizers and special tokens, prompt-response formatting (SPEC §2),
//! the generation canvas (SPEC §4), padding into flat batches, and the paper's prompted
//! JSONL data, readers for raw instruction formats (`sources`: Flan CoT TSV, Alpaca, GSM8K)
//! and fixed-ratio mixing of sources (`mixture`, SPEC §7), and the Jinja chat templates of
//! instruction-tuned models (`chat_template`, rendered with minijinja as transformers
//! does). No tensor dependency: everything here is plain `Vec`s and shapes.
//!
//! ```text
//! Tokenizer::from_dir(model dir) ──► encode(prompt), encode(response)   (<s> … </s> each)
//!   ──► format::format_pair ──► Formatted { ids, fixed }                 (SPEC §2)
//!   ──► batch::collate      ──► Batch { ids [batch, seq], masks }        (right padding)
//! ```

pub mod batch;
pub mod chat_template;
pub mod error;
pub mod fairseq_dict;
pub mod format;
pub mod jsonl;
pub mod mixture;
pub mod sources;
pub mod special;
pub mod tokenizer;
pub mod vocab_map;

pub use batch::{Batch, FixedSequence, batches_by_tokens, collate};
pub use chat_template::{ChatMessage, ChatTemplate, chat_prefix};
pub use error::DataError;
pub use fairseq_dict::FairseqDictionary;
pub use format::{
    Canvas, DEFAULT_MAX_LENGTH, Formatted, canvas_prefix, format_pair, formatted_len, generation_canvas, wrap_bos_eos,
};
pub use jsonl::{PromptJsonl, PromptResponse, read_prompt_jsonl};
pub use mixture::{Mixture, MixtureSource, Pick, read_ratio_json};
pub use sources::few_shot::{FewShotPattern, exemplar_rows};
pub use sources::{SourceFormat, SourceSpec, read_source};
pub use special::SpecialTokens;
pub use vocab_map::{VOCAB_MAP_FILE, VocabMap};
pub use tokenizer::{SpmConversion, Tokenizer, TokenizerSource, clean_up_tokenization};
