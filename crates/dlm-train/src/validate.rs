//! Validation (SPEC §7): the objective's loss on a held-out slice with dropout off and the
//! same corruption draws every time (so values are comparable across steps), and — for
//! objectives that generate — corpus BLEU (lower-cased, SPEC §8) and ROUGE-L of responses
//! produced with the oracle length, `validate.steps` iterations of the paper's sampler and
//! the KV cache `validate.cache`.

use crate::config::{BestMetric, RunConfig};
use crate::data::{BatchPlan, DataPosition, Dataset};
use crate::error::Result;
use crate::metrics_log::ValidRecord;
use crate::objective::TrainObjective;
use crate::seeds::{VALIDATION, derive_seed};
use dlm_data::Tokenizer;
use dlm_diffusion::SamplerConfig;
use dlm_metrics::{BleuConfig, corpus_bleu, corpus_rouge};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub fn validate(
    objective: &mut dyn TrainObjective,
    data: &Dataset,
    tokenizer: &Tokenizer,
    cfg: &RunConfig,
    step: u64,
) -> Result<ValidRecord> {
    objective.set_dropout(None);
    let mut plan = BatchPlan::new(data, cfg.data.max_tokens, 0, false);
    let (mut loss, mut rows, mut correct, mut scored) = (0.0, 0usize, 0usize, 0usize);
    let (mut hyps, mut refs) = (Vec::new(), Vec::new());
    let mut generates = cfg.validate.generate;
    let sampler = SamplerConfig { steps: cfg.validate.steps, cache: cfg.validate.cache, ..SamplerConfig::default() };
    for b in 0..plan.len() {
        let (indices, _) = plan.next(DataPosition { epoch: 0, batch: b });
        let batch: Vec<_> = indices.iter().map(|&i| &data.examples[i]).collect();
        let mut rng =
            ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, &[VALIDATION, b as u64]));
        let out = objective.step(&batch, &mut rng)?;
        // Mean of the batch losses weighted by their rows.
        loss += out.metrics.loss * batch.len() as f64;
        rows += batch.len();
        correct += out.metrics.correct;
        scored += out.metrics.scored;
        if generates {
            match objective.generate(&batch, &sampler)? {
                Some(generated) => {
                    for (ids, e) in generated.iter().zip(&batch) {
                        hyps.push(tokenizer.decode(ids, true)?);
                        refs.push(e.response.clone());
                    }
                }
                None => generates = false,
            }
        }
    }
    let (bleu, rouge_l) = if generates && !hyps.is_empty() {
        let bleu_cfg = BleuConfig {
            tokenize: cfg.validate.bleu_tokenize,
            lowercase: true,
            ..BleuConfig::default()
        };
        let bleu = corpus_bleu(&hyps, &refs, &bleu_cfg)?.score;
        let rouge = corpus_rouge(&hyps, &refs, true)?.rouge_l * 100.0;
        (Some(bleu), Some(rouge))
    } else {
        (None, None)
    };
    Ok(ValidRecord {
        step,
        loss: if rows > 0 { loss / rows as f64 } else { 0.0 },
        accuracy: if scored > 0 {
            correct as f64 / scored as f64
        } else {
            0.0
        },
        bleu,
        rouge_l,
        examples: rows,
    })
}

/// The value `best` compares, oriented so that larger is better (loss negated); `None`
/// when the record lacks it (e.g. BLEU for a non-generating objective: loss is used).
pub fn score(record: &ValidRecord, best: BestMetric) -> f64 {
    match best {
        BestMetric::Bleu => record.bleu.unwrap_or(-record.loss),
        BestMetric::RougeL => record.rouge_l.unwrap_or(-record.loss),
        BestMetric::Loss => -record.loss,
    }
}
