//! Training data: prompt-response JSONL tokenized and formatted as SPEC §2 sequences
//! (`<s> prompt response </s>`, cut from the left to the maximum length), grouped into
//! token-budget micro-batches, and the order in which a run visits them. The order of
//! epoch `e` is a pure function of `(seed, e)`, so a run's data position is just
//! `(epoch, batch index)`.
//!
//! With `[[data.sources]]` the training set is a fixed-ratio mixture (SPEC §7): each
//! source file is read in its raw format (`dlm_data::sources`), `data.mixture_rows`
//! `(source, row)` picks are drawn by `dlm_data::Mixture` from a stream seeded by
//! `(train.seed, "mixture")`, and the picked rows, in draw order, are the dataset. The
//! draw is fixed for the run (a resume rebuilds the same set); the batch order per epoch
//! then shuffles it as for a single file.

use crate::error::{Result, TrainError};
use crate::seeds::derive_seed;
use dlm_data::{SpecialTokens, Tokenizer, VocabMap};
use crate::config::DataSection;
use dlm_data::{Formatted, Mixture, PromptResponse, batches_by_tokens, format_pair};
use dlm_data::{read_prompt_jsonl, read_source};
use std::collections::HashMap;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// One formatted example and its response text (the reference for BLEU/ROUGE).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub seq: Formatted,
    pub response: String,
}

impl Example {
    /// `<s> prompt`: the fixed prefix.
    pub fn prefix(&self) -> &[u32] {
        &self.seq.ids[..self.seq.n_fixed()]
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file (for a mixture: the first source; `sources` lists them all).
    pub path: PathBuf,
    pub examples: Vec<Example>,
    /// For a mixture, what was drawn from each source; empty for a single file.
    pub sources: Vec<SourceDraw>,
}

/// One source of a mixture dataset and how many examples were drawn from it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDraw {
    pub path: PathBuf,
    pub format: dlm_data::SourceFormat,
    /// Normalised weight.
    pub weight: f64,
    /// Rows in the file.
    pub rows: usize,
    /// Examples of the dataset drawn from it.
    pub drawn: usize,
}

/// `text` encoded as `bos … eos` (`dlm_data::wrap_bos_eos`), so that every example is
/// SPEC §2's `<s> prompt response </s>` and the response ends with the `</s>` that LLaDA's
/// SFT recipe scores.
fn encode_wrapped(tokenizer: &Tokenizer, text: &str, special: &SpecialTokens) -> Result<Vec<u32>> {
    Ok(dlm_data::wrap_bos_eos(tokenizer.encode(text, true)?, special))
}

/// Tokenizes and formats one pair.
fn example(
    row: &PromptResponse,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    max_length: usize,
) -> Result<Example> {
    let src = encode_wrapped(tokenizer, &row.inputs, special)?;
    let tgt = encode_wrapped(tokenizer, &row.targets, special)?;
    let seq = format_pair(&src, &tgt, special, max_length)?;
    Ok(Example {
        seq,
        response: row.targets.clone(),
    })
}

/// Row `row` of a source as an example, with `spec.shots` exemplars of the same source
/// (chosen by `dlm_data::exemplar_rows` from the run seed and `row`) before its prompt;
/// exemplars are dropped from the end while `<s> prompt response </s>` is longer than
/// `max_length` (Flan's exemplar pruning).
fn few_shot_example(
    table: &[PromptResponse],
    row: usize,
    spec: &dlm_data::SourceSpec,
    seed: u64,
    tokenizer: &Tokenizer,
    special: &SpecialTokens,
    max_length: usize,
) -> Result<Example> {
    let query = table
        .get(row)
        .ok_or_else(|| TrainError::Invalid(format!("row {row} of {} out of range", spec.path.display())))?;
    if spec.shots == 0 {
        return example(query, tokenizer, special, max_length);
    }
    let picks = dlm_data::exemplar_rows(table.len(), row, spec.shots, derive_seed(seed, &[FEW_SHOT_TAG]));
    let exemplars: Vec<&PromptResponse> = picks.iter().filter_map(|&i| table.get(i)).collect();
    let target_len = encode_wrapped(tokenizer, &query.targets, special)?.len();
    for n in (1..=exemplars.len()).rev() {
        let inputs = spec.few_shot.prompt(&exemplars[..n], &query.inputs);
        // `<s> prompt response </s>` = src[:-1] + tgt[1:] (SPEC §2)
        if (encode_wrapped(tokenizer, &inputs, special)?.len() + target_len).saturating_sub(2) <= max_length {
            let shot = PromptResponse { inputs, targets: query.targets.clone() };
            return example(&shot, tokenizer, special, max_length);
        }
    }
    // Not even one exemplar fits: Flan drops such rows; the mixture keeps it zero-shot.
    example(query, tokenizer, special, max_length)
}

impl Dataset {
    /// Reads, tokenizes and formats `path` (at most `limit` rows when `limit > 0`). A bad
    /// line is an error naming the file and line; a file without rows is an error.
    pub fn load(path: &Path, tokenizer: &Tokenizer, special: &SpecialTokens, max_length: usize, limit: usize) -> Result<Dataset> {
        let rows = read_prompt_jsonl(path)?;
        let take = if limit > 0 {
            limit.min(rows.len())
        } else {
            rows.len()
        };
        let mut examples = Vec::with_capacity(take);
        for row in rows.iter().take(take) {
            examples.push(example(row, tokenizer, special, max_length)?);
        }
        if examples.is_empty() {
            return Err(TrainError::EmptyDataset { path: path.into() });
        }
        Ok(Dataset {
            path: path.into(),
            examples,
            sources: Vec::new(),
        })
    }

    /// The training set of `[data]`: the mixture of `data.sources` when there are any
    /// ([`Dataset::mixture`]), else `data.train` (its first `max_train_rows` rows).
    pub fn load_train(
        data: &DataSection,
        tokenizer: &Tokenizer,
        special: &SpecialTokens,
        max_length: usize,
        seed: u64,
    ) -> Result<Dataset> {
        if data.sources.is_empty() {
            return Dataset::load(&data.train, tokenizer, special, max_length, data.max_train_rows);
        }
        let specs: Vec<dlm_data::SourceSpec> = data
            .sources
            .iter()
            .map(|s| dlm_data::SourceSpec {
                path: s.path.clone(),
                format: s.format,
                weight: s.weight,
                shots: s.shots,
                few_shot: s.few_shot.clone(),
            })
            .collect();
        let mut d = Dataset::mixture(&specs, data.mixture_rows, tokenizer, special, max_length, seed)?;
        d.truncate(data.max_train_rows);
        Ok(d)
    }

    /// `rows` examples (0: the sources' total row count) drawn from `sources` by their
    /// weights with the stream seeded by `derive_seed(seed, ["mixture"])`; only the picked
    /// rows are tokenized. A source that is missing, malformed or empty is an error naming
    /// its file.
    pub fn mixture(
        sources: &[dlm_data::SourceSpec],
        rows: usize,
        tokenizer: &Tokenizer,
        special: &SpecialTokens,
        max_length: usize,
        seed: u64,
    ) -> Result<Dataset> {
        let first = sources
            .first()
            .ok_or_else(|| TrainError::Invalid("a mixture needs at least one source".into()))?;
        let mut tables = Vec::with_capacity(sources.len());
        for s in sources {
            let t = read_source(&s.path, s.format)?;
            if t.is_empty() && s.weight > 0.0 {
                return Err(TrainError::EmptyDataset {
                    path: s.path.clone(),
                });
            }
            tables.push(t);
        }
        let mixture = Mixture::new(
            sources
                .iter()
                .zip(&tables)
                .map(|(s, t)| (s.path.display().to_string(), s.weight, t.len())),
        )?;
        let n = if rows > 0 { rows } else { mixture.total_rows() };
        let picks = mixture.draw(n, derive_seed(seed, &[MIXTURE_TAG]));
        let counts = mixture.counts(&picks);
        // A row drawn again in a later pass is tokenized once.
        let mut cache: HashMap<(usize, usize), Example> = HashMap::new();
        let mut examples = Vec::with_capacity(picks.len());
        for p in &picks {
            let ex = match cache.get(&(p.source, p.row)) {
                Some(e) => e.clone(),
                None => {
                    let (table, spec) = tables.get(p.source).zip(sources.get(p.source)).ok_or_else(|| {
                        TrainError::Invalid(format!("mixture pick {p:?} out of range"))
                    })?;
                    let e = few_shot_example(table, p.row, spec, seed, tokenizer, special, max_length)?;
                    cache.insert((p.source, p.row), e.clone());
                    e
                }
            };
            examples.push(ex);
        }
        if examples.is_empty() {
            return Err(TrainError::EmptyDataset {
                path: first.path.clone(),
            });
        }
        let draws: Vec<SourceDraw> = sources
            .iter()
            .zip(mixture.sources())
            .zip(counts)
            .map(|((s, m), drawn)| SourceDraw {
                path: s.path.clone(),
                format: s.format,
                weight: m.weight,
                rows: m.rows,
                drawn,
            })
            .collect();
        for d in &draws {
            tracing::info!(
                "mixture: {} ({}, weight {:.4}, {} rows): {} examples drawn",
                d.path.display(),
                d.format.name(),
                d.weight,
                d.rows,
                d.drawn
            );
        }
        Ok(Dataset {
            path: first.path.clone(),
            examples,
            sources: draws,
        })
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Every token id that occurs (for vocabulary pruning).
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.examples.iter().flat_map(|e| e.seq.ids.iter().copied())
    }

    /// Rewrites the ids through `map` (original → model ids; unknown ids become `unk`).
    pub fn remap(&mut self, map: &VocabMap, unk: u32) {
        for e in &mut self.examples {
            for id in &mut e.seq.ids {
                *id = map.to_model(*id).unwrap_or(unk);
            }
        }
    }

    /// Keeps the first `n` examples (all when `n == 0`).
    pub fn truncate(&mut self, n: usize) {
        if n > 0 {
            self.examples.truncate(n);
        }
    }
}

/// Seed tag of the mixture draw.
const MIXTURE_TAG: u64 = 0x6d69_7874; // "mixt"
const FEW_SHOT_TAG: u64 = 0x6673_686f; // "fsho"

/// Where a run is in its data: epoch and the next micro-batch of that epoch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DataPosition {
    pub epoch: u64,
    pub batch: usize,
}

/// The micro-batches of a dataset (fixed) and their order per epoch.
pub struct BatchPlan {
    batches: Vec<Vec<usize>>,
    seed: u64,
    shuffle: bool,
    order: Vec<usize>,
    order_epoch: Option<u64>,
}

impl BatchPlan {
    pub fn new(data: &Dataset, max_tokens: usize, seed: u64, shuffle: bool) -> BatchPlan {
        let lengths: Vec<usize> = data.examples.iter().map(|e| e.seq.len()).collect();
        let batches = batches_by_tokens(&lengths, max_tokens);
        BatchPlan {
            batches,
            seed,
            shuffle,
            order: Vec::new(),
            order_epoch: None,
        }
    }

    /// Micro-batches per epoch.
    pub fn len(&self) -> usize {
        self.batches.len()
    }
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The example indices at `pos`, and the position after it (rolling into the next
    /// epoch at the end of one).
    pub fn next(&mut self, pos: DataPosition) -> (Vec<usize>, DataPosition) {
        if self.order_epoch != Some(pos.epoch) {
            self.order = (0..self.batches.len()).collect();
            if self.shuffle {
                let mut rng =
                    ChaCha8Rng::seed_from_u64(derive_seed(self.seed, &[0xda7a, pos.epoch]));
                self.order.shuffle(&mut rng);
            }
            self.order_epoch = Some(pos.epoch);
        }
        let b = pos.batch.min(self.order.len().saturating_sub(1));
        let indices = self
            .order
            .get(b)
            .map(|&i| self.batches[i].clone())
            .unwrap_or_default();
        let next = if b + 1 >= self.order.len() {
            DataPosition {
                epoch: pos.epoch + 1,
                batch: 0,
            }
        } else {
            DataPosition {
                epoch: pos.epoch,
                batch: b + 1,
            }
        };
        (indices, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(lengths: &[usize]) -> Dataset {
        let examples = lengths
            .iter()
            .map(|&l| Example {
                seq: Formatted {
                    ids: vec![5; l],
                    fixed: vec![false; l],
                },
                response: String::new(),
            })
            .collect();
        Dataset {
            path: "x".into(),
            examples,
            sources: Vec::new(),
        }
    }

    #[test]
    fn order_is_a_function_of_seed_and_epoch() {
        let d = data(&[3, 3, 3, 3, 3, 3, 3, 3]);
        // Budget 6 → 4 batches of two rows each.
        let mut a = BatchPlan::new(&d, 6, 9, true);
        assert_eq!(a.len(), 4);
        let mut pos = DataPosition::default();
        let mut seen = Vec::new();
        for _ in 0..8 {
            let (idx, next) = a.next(pos);
            seen.push((pos, idx));
            pos = next;
        }
        assert_eq!(pos, DataPosition { epoch: 2, batch: 0 });
        // A fresh plan asked for any position gives the same batch (resume).
        let mut b = BatchPlan::new(&d, 6, 9, true);
        for (pos, idx) in seen.iter().rev() {
            assert_eq!(&b.next(*pos).0, idx);
        }
        // Each epoch covers every example once.
        let mut first: Vec<usize> = seen[..4].iter().flat_map(|(_, i)| i.clone()).collect();
        first.sort();
        assert_eq!(first, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn unshuffled_order_is_by_length() {
        let d = data(&[4, 2, 9]);
        let mut p = BatchPlan::new(&d, 4, 0, false);
        let (first, _) = p.next(DataPosition::default());
        assert_eq!(first, vec![1]);
    }
}
