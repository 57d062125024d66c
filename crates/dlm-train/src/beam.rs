//! Beam search for the autoregressive baseline, as fairseq's `SequenceGenerator` decodes
//! the paper's AR baselines (Table 1's Transformer and decoder-only AR models were trained
//! and decoded with fairseq; its IWSLT14 recipe uses `--beam 5` and the default
//! `--lenpen 1`):
//!
//! * each step, every live hypothesis proposes its `2·beam` best next tokens; the
//!   `2·beam` best candidates overall (by summed log-probability) are taken in order;
//! * a candidate ending in `</s>` among the first `beam` of them is finished, scored by
//!   its summed log-probability divided by `length^len_penalty` (length counts `</s>`);
//!   the other candidates, in order, refill the `beam` live hypotheses;
//! * at the length budget only `</s>` may follow; the search ends when `beam`
//!   hypotheses are finished, and the best normalised score wins (the first one found
//!   on ties).
//!
//! With beam 1 this is greedy decoding ([`crate::ar_generate`]).

use crate::ar::next_logits;
use crate::error::{Result, TrainError};
use dlm_data::SpecialTokens;
use dlm_models::MaskedLm;

/// Beam search settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamConfig {
    /// Hypotheses kept per step (1: greedy).
    pub beam: usize,
    /// Exponent of the length normalisation (fairseq `--lenpen`, default 1: the mean
    /// log-probability per token; 0: the plain sum).
    pub len_penalty: f64,
    /// Generated tokens at most, `</s>` excluded.
    pub max_new: usize,
}

/// The winning hypothesis.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamOutput {
    /// Generated tokens, `</s>` excluded.
    pub tokens: Vec<u32>,
    /// Summed log-probability of the tokens and the final `</s>`.
    pub log_prob: f64,
    /// `log_prob / (tokens + 1)^len_penalty`, what the search maximised.
    pub score: f64,
}

struct Live {
    tokens: Vec<u32>,
    log_prob: f64,
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|&x| x as f64 - log_z).collect()
}

/// The `k` best `(token, log-prob)` of one row, best first (lower id first on ties).
fn top_k(logp: &[f64], k: usize) -> Vec<(u32, f64)> {
    let mut idx: Vec<(u32, f64)> = logp
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .map(|(i, &x)| (i as u32, x))
        .collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    idx.truncate(k);
    idx
}

/// Beam search from `prefix` (`<s> prompt`, model ids) with a causal model.
pub fn beam_search(
    model: &dyn MaskedLm,
    prefix: &[u32],
    cfg: &BeamConfig,
    special: &SpecialTokens,
) -> Result<BeamOutput> {
    if cfg.beam == 0 {
        return Err(TrainError::Invalid("beam size must be at least 1".into()));
    }
    if !cfg.len_penalty.is_finite() {
        return Err(TrainError::Invalid(format!(
            "length penalty must be finite, got {}",
            cfg.len_penalty
        )));
    }
    let room = model.max_sequence_length().saturating_sub(prefix.len());
    let max_new = cfg.max_new.min(room);
    let normalise = |log_prob: f64, len: usize| log_prob / (len as f64).powf(cfg.len_penalty);
    let mut live = vec![Live {
        tokens: Vec::new(),
        log_prob: 0.0,
    }];
    let mut finished: Vec<BeamOutput> = Vec::new();
    for step in 0..=max_new {
        let seqs: Vec<Vec<u32>> = live
            .iter()
            .map(|h| [prefix, &h.tokens].concat())
            .collect();
        let logits = next_logits(model, &seqs, special)?; // [live, V]
        // (live index, token, summed log-prob), best first
        let mut candidates: Vec<(usize, u32, f64)> = Vec::new();
        for (i, (h, row)) in live.iter().zip(&logits).enumerate() {
            let logp = log_softmax(row);
            let proposals = if step == max_new {
                // the budget is spent: only `</s>` may follow
                let eos = logp.get(special.eos as usize).copied().unwrap_or(f64::NEG_INFINITY);
                vec![(special.eos, eos)]
            } else {
                top_k(&logp, 2 * cfg.beam)
            };
            candidates.extend(proposals.into_iter().map(|(t, lp)| (i, t, h.log_prob + lp)));
        }
        candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        candidates.truncate(2 * cfg.beam);
        let mut next = Vec::with_capacity(cfg.beam);
        for (rank, &(i, token, log_prob)) in candidates.iter().enumerate() {
            if token == special.eos {
                if rank < cfg.beam && finished.len() < cfg.beam {
                    let tokens = live[i].tokens.clone();
                    let score = normalise(log_prob, tokens.len() + 1);
                    finished.push(BeamOutput { tokens, log_prob, score });
                }
            } else if next.len() < cfg.beam {
                let mut tokens = live[i].tokens.clone();
                tokens.push(token);
                next.push(Live { tokens, log_prob });
            }
        }
        if finished.len() >= cfg.beam || next.is_empty() {
            break;
        }
        live = next;
    }
    finished
        .into_iter()
        .reduce(|best, h| if h.score > best.score { h } else { best })
        .ok_or_else(|| TrainError::Invalid("beam search finished no hypothesis (no finite `</s>` score)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ar::ar_generate;
    use candle_core::{DType, Device, Tensor};
    use rand::{Rng, SeedableRng};

    /// A bigram LM: the hidden state of a position is the one-hot of its token and the
    /// head is a `[V, V]` table of next-token logits, so tests set every probability.
    struct Bigram {
        table: Tensor, // [V, V]
        vocab: usize,
    }

    impl Bigram {
        fn new(rows: Vec<Vec<f32>>) -> Bigram {
            let vocab = rows.len();
            let table = Tensor::from_vec(rows.concat(), (vocab, vocab), &Device::Cpu).unwrap();
            Bigram { table, vocab }
        }
    }

    impl MaskedLm for Bigram {
        fn encode(&self, ids: &Tensor, _attention_mask: &Tensor) -> dlm_models::Result<Tensor> {
            let (b, s) = ids.dims2()?;
            let eye = Tensor::eye(self.vocab, DType::F32, &Device::Cpu)?;
            Ok(eye.index_select(&ids.flatten_all()?, 0)?.reshape((b, s, self.vocab))?)
        }
        fn project(&self, hidden: &Tensor) -> dlm_models::Result<Tensor> {
            Ok(hidden.broadcast_matmul(&self.table)?)
        }
        fn vocab_size(&self) -> usize {
            self.vocab
        }
        fn hidden_size(&self) -> usize {
            self.vocab
        }
        fn max_sequence_length(&self) -> usize {
            64
        }
        fn device(&self) -> &Device {
            self.table.device()
        }
        fn dtype(&self) -> DType {
            DType::F32
        }
    }

    fn special() -> SpecialTokens {
        SpecialTokens {
            bos: 0,
            pad: 1,
            eos: 2,
            unk: 3,
            mask: 4,
        }
    }

    #[test]
    fn beam_one_is_greedy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for trial in 0..20 {
            let v = 12;
            let rows: Vec<Vec<f32>> = (0..v)
                .map(|_| (0..v).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect())
                .collect();
            let lm = Bigram::new(rows);
            let prefix = [0, 5 + (trial % 7) as u32];
            let greedy = ar_generate(&lm, &prefix, 9, &special()).unwrap();
            let cfg = BeamConfig { beam: 1, len_penalty: 1.0, max_new: 9 };
            let beam = beam_search(&lm, &prefix, &cfg, &special()).unwrap();
            assert_eq!(beam.tokens, greedy, "trial {trial}");
        }
    }

    #[test]
    fn beam_finds_a_better_sequence_than_greedy() {
        // ids: 0 <s>, 1 pad, 2 </s>, 3 unk, 4 mask, 5 A, 6 B, 7 C.
        // After <s>: A 0.55, B 0.45. After A: </s>, B, C equally likely (1/3 each).
        // After B: </s> 0.99. Greedy takes A: log .55 + log 1/3 = -1.697 (A </s>);
        // beam 2 keeps B and finds B </s>: log .45 + log .99 = -0.809.
        let ln = |p: f32| p.ln();
        let mut rows = vec![vec![-30.0f32; 8]; 8];
        rows[0][5] = ln(0.55);
        rows[0][6] = ln(0.45);
        for t in [2, 6, 7] {
            rows[5][t] = ln(1.0 / 3.0);
        }
        rows[6][2] = ln(0.99);
        rows[6][7] = ln(0.01);
        rows[7][2] = 0.0;
        let lm = Bigram::new(rows);
        let s = special();
        let greedy = ar_generate(&lm, &[0], 5, &s).unwrap();
        assert_eq!(greedy, vec![5]);
        for len_penalty in [0.0, 1.0] {
            let cfg = BeamConfig { beam: 2, len_penalty, max_new: 5 };
            let out = beam_search(&lm, &[0], &cfg, &s).unwrap();
            assert_eq!(out.tokens, vec![6], "lenpen {len_penalty}");
            assert!((out.log_prob - (0.45f64.ln() + 0.99f64.ln())).abs() < 1e-5);
            let greedy_log_prob = 0.55f64.ln() + (1.0f64 / 3.0).ln();
            assert!(out.log_prob > greedy_log_prob + 0.5);
        }
    }

    #[test]
    fn length_budget_forces_the_end() {
        // `</s>` is never likely: the budget decides the length; the EOS score still counts.
        let mut rows = vec![vec![0.0f32; 6]; 6];
        for r in &mut rows {
            r[2] = -20.0;
        }
        let lm = Bigram::new(rows);
        let cfg = BeamConfig { beam: 3, len_penalty: 1.0, max_new: 4 };
        let out = beam_search(&lm, &[0], &cfg, &special()).unwrap();
        assert_eq!(out.tokens.len(), 4);
        assert!((out.score - out.log_prob / 5.0).abs() < 1e-12);
        let bad = BeamConfig { beam: 0, ..cfg };
        assert!(beam_search(&lm, &[0], &bad, &special()).is_err());
    }
}
