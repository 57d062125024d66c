//! `dlm inspect MODEL_DIR`: architecture, parameter counts, vocabulary, special ids, dtype;
//! `dlm inspect --system`: the CPU, its features, the kernel level and the thread count.

use crate::model_dir::{ModelArgs, Precision};
use dlm_models::MaskedLm;
use dlm_models::kernels::{SystemReport, system_report};
use serde_json::json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory in HuggingFace layout, or a hub id `org/name` (optional with --system)
    #[arg(required_unless_present = "system")]
    model: Option<PathBuf>,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Report the machine: CPU model, its SIMD/AMX features, the kernel level in use
    /// (DLM_KERNEL_LEVEL may lower it) and the thread count (DLM_NUM_THREADS)
    #[arg(long)]
    system: bool,
    /// Where to load the model: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The tokenizer, when the model folder does not hold it (a file or a folder)
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let system = args.system.then(system_report);
    match (&args.model, system) {
        (Some(model), system) => inspect_model(model, &args.device, args.tokenizer.clone(), system, args.json),
        (None, Some(system)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&json!({ "system": system }))?);
            } else {
                println!("{system}");
            }
            Ok(())
        }
        (None, None) => anyhow::bail!("give a MODEL directory or --system"),
    }
}

/// The model's report, after the system's when there is one (in JSON: its `system` field).
fn inspect_model(model: &PathBuf, device: &str, tokenizer: Option<PathBuf>, system: Option<SystemReport>, json: bool) -> anyhow::Result<()> {
    let loaded = ModelArgs { model: model.clone(), dtype: Precision::F32, device: device.to_string(), tokenizer }.load()?;
    let (m, tok, sp) = (&loaded.model, &loaded.tokenizer, loaded.special);
    let c = m.config();
    let counts = m.parameter_counts();
    let name = |id: u32| tok.id_to_token(id).unwrap_or_default();
    let report = json!({
        "model": model,
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
    if json {
        let mut report = report;
        if let Some(system) = system {
            report["system"] = json!(system);
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if let Some(system) = system {
        println!("{system}\n");
    }
    let millions = |n: usize| format!("{:.2}M", n as f64 / 1e6);
    println!("{}", model.display());
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
