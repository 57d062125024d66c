//! `dlm inspect MODEL_DIR`: architecture, parameter counts, vocabulary, special ids, dtype.

use crate::model_dir::{ModelArgs, Precision};
use dlm_models::MaskedLm;
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory in HuggingFace layout, or a hub id `org/name`
    model: PathBuf,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// The tokenizer, when the model folder does not hold it (a file or a folder)
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let loaded = ModelArgs { model: args.model.clone(), dtype: Precision::F32, tokenizer: args.tokenizer.clone() }.load()?;
    let (m, tok, sp) = (&loaded.model, &loaded.tokenizer, loaded.special);
    let c = m.config();
    let counts = m.parameter_counts();
    let name = |id: u32| tok.id_to_token(id).unwrap_or_default();
    let report = json!({
        "model": args.model,
        "model_type": c.model_type,
        "family": format!("{:?}", m.family()),
        "layers": c.num_hidden_layers,
        "hidden_size": c.hidden_size,
        "attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "activation": c.hidden_act,
        "max_sequence_length": m.max_sequence_length(),
        "parameters": counts,
        "vocab_size": c.vocab_size,
        "tokenizer": {"path": tok.path(), "vocab_size": tok.vocab_size()},
        "special_tokens": {
            "bos": {"id": sp.bos, "token": name(sp.bos)},
            "eos": {"id": sp.eos, "token": name(sp.eos)},
            "pad": {"id": sp.pad, "token": name(sp.pad)},
            "mask": {"id": sp.mask, "token": name(sp.mask)},
            "unk": {"id": sp.unk, "token": name(sp.unk)},
        },
        "stored_dtype": m.stored_dtype(),
        "decoder": if c.tie_word_embeddings { "tied to word embeddings" } else { "untied" },
        "mlm_head": if m.fresh_head() { "freshly initialised (checkpoint has none)" } else { "from checkpoint" },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let millions = |n: usize| format!("{:.2}M", n as f64 / 1e6);
    println!("{}", args.model.display());
    println!("  architecture   {} ({:?}), {} layers, hidden {}, {} heads, ffn {}, {:?}",
        c.model_type, m.family(), c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.hidden_act);
    println!("  parameters     {} total = {} embedding + {} non-embedding",
        millions(counts.total), millions(counts.embedding), millions(counts.non_embedding));
    println!("  vocabulary     {} (tokenizer {} from {})", c.vocab_size, tok.vocab_size(), tok.path().display());
    println!("  max length     {}", m.max_sequence_length());
    println!("  special ids    bos {} {:?}, eos {} {:?}, pad {} {:?}, mask {} {:?}, unk {} {:?}",
        sp.bos, name(sp.bos), sp.eos, name(sp.eos), sp.pad, name(sp.pad), sp.mask, name(sp.mask), sp.unk, name(sp.unk));
    println!("  stored dtype   {}", m.stored_dtype().unwrap_or("unknown"));
    println!("  decoder        {}", report["decoder"].as_str().unwrap_or_default());
    println!("  MLM head       {}", report["mlm_head"].as_str().unwrap_or_default());
    Ok(())
}
