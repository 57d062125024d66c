//! `dlm fill-mask`: top-k predictions at every mask position, as HF's fill-mask pipeline.
//! Given token ids (`--ids`) it needs no tokenizer; token strings are then absent.

use crate::model_dir::{ModelArgs, mask_id_without_tokenizer};
use dlm_data::Tokenizer;
use dlm_models::ModelError;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Number of predictions per mask position
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
    /// Token ids, comma separated, used as-is (no tokenization; no tokenizer needed)
    #[arg(long, value_delimiter = ',', conflicts_with = "text", required_unless_present = "text")]
    ids: Option<Vec<u32>>,
    /// With --ids: the mask token's id (default: the tokenizer's mask token, else
    /// config.json's mask_token_id)
    #[arg(long, value_name = "N", requires = "ids")]
    mask_id: Option<u32>,
    /// Text containing the tokenizer's mask token (e.g. "<mask>" or "[MASK]")
    text: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tokenizer, ids, mask) = match (&args.ids, &args.text) {
        (Some(ids), _) => {
            let (model, tok) = args.model.load_for_ids()?;
            let mask = match (args.mask_id, &tok) {
                (Some(m), _) => m,
                (None, Some(t)) => t.special.mask,
                (None, None) => mask_id_without_tokenizer(&model, None)?,
            };
            (model, tok.map(|t| t.tokenizer), ids.clone(), mask)
        }
        (None, Some(text)) => {
            let loaded = args.model.load()?;
            let ids = loaded.tokenizer.encode(text, true)?;
            (loaded.model, Some(loaded.tokenizer), ids, loaded.special.mask)
        }
        (None, None) => anyhow::bail!("give a TEXT or --ids"),
    };
    let token = |id: u32| tokenizer.as_ref().and_then(|t: &Tokenizer| t.id_to_token(id));
    let predictions = dlm_models::fill_mask(&model, &ids, mask, args.top_k).map_err(|e| match e {
        ModelError::NoMask { .. } => match token(mask) {
            Some(text) => anyhow::anyhow!("{e}: the mask token of this tokenizer is {text:?}"),
            None => e.into(),
        },
        e => e.into(),
    })?;
    if args.json {
        let preds: Vec<Vec<_>> = predictions
            .iter()
            .map(|p| {
                p.iter()
                    .map(|q| {
                        let mut o = json!({"token_id": q.token_id, "score": q.score});
                        if let Some(t) = token(q.token_id) {
                            o["token"] = json!(t);
                        }
                        o
                    })
                    .collect()
            })
            .collect();
        println!("{}", json!({"input_ids": ids, "predictions": preds}));
        return Ok(());
    }
    for (n, p) in predictions.iter().enumerate() {
        println!("mask {}:", n + 1);
        for q in p {
            println!("  {:>8.4}  {:>7}  {}", q.score, q.token_id, token(q.token_id).unwrap_or_default());
        }
    }
    Ok(())
}
