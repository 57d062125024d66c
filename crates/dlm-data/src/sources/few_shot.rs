//! k-shot prompts for instruction-tuning sources, as the Flan 2022 collection builds its
//! few-shot (`*_fs_*`) training examples, which the paper's instruction tuning mixes with
//! the zero-shot ones by fixed ratios (SPEC §7, `flan_2022_ratio.json`: `flan_fs_opt`,
//! `t0_fs_noopt`, `niv2_fs_opt`, `cot_fs_opt`, …).
//!
//! FLAN v2 (`flan/v2/few_shot.py`, seqio's `fewshot_preprocessor`) appends the
//! `x_y_delimiter` to every input, exemplars and query alike, then writes
//!
//! ```text
//! for each exemplar: inputs_prefix + x_i + x_y_delimiter + targets_prefix + y_i + example_separator
//! then:              inputs_prefix + x   + x_y_delimiter
//! ```
//!
//! drops trailing spaces (not newlines), and appends `final_suffix`; the target is the
//! query's own. Its defaults are [`FewShotPattern::default`]: delimiter `"\n\n"`,
//! separator `"\n\n\n"`, empty prefixes and suffix. Exemplars are other rows of the same
//! source ([`exemplar_rows`]); when the whole example is too long, exemplars are dropped
//! from the end (Flan's `prune_exemplars` against `max_input_length`), which the caller
//! does since only it can count tokens.

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::PromptResponse;

/// The strings around exemplars (FLAN v2's `FewShotPattern` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FewShotPattern {
    pub inputs_prefix: String,
    pub targets_prefix: String,
    pub x_y_delimiter: String,
    pub example_separator: String,
    pub final_suffix: String,
}

impl Default for FewShotPattern {
    fn default() -> Self {
        Self {
            inputs_prefix: String::new(),
            targets_prefix: String::new(),
            x_y_delimiter: "\n\n".into(),
            example_separator: "\n\n\n".into(),
            final_suffix: String::new(),
        }
    }
}

impl FewShotPattern {
    /// The prompt of `query` with `exemplars` before it (see the module documentation).
    pub fn prompt(&self, exemplars: &[&PromptResponse], query: &str) -> String {
        let mut text = String::new();
        for e in exemplars {
            for part in [
                &self.inputs_prefix,
                &e.inputs,
                &self.x_y_delimiter,
                &self.targets_prefix,
                &e.targets,
                &self.example_separator,
            ] {
                text.push_str(part);
            }
        }
        text.push_str(&self.inputs_prefix);
        text.push_str(query);
        text.push_str(&self.x_y_delimiter);
        let mut text = text.trim_end_matches(' ').to_string();
        text.push_str(&self.final_suffix);
        text
    }
}

/// `k` distinct rows of a source of `rows` rows to serve as exemplars for row `query`
/// (never `query` itself; fewer when the source is smaller), drawn from a ChaCha8 stream
/// seeded by `(seed, query)`, so the choice is a pure function of its arguments.
pub fn exemplar_rows(rows: usize, query: usize, k: usize, seed: u64) -> Vec<usize> {
    let others = rows.saturating_sub(usize::from(query < rows));
    let k = k.min(others);
    if k == 0 {
        return Vec::new();
    }
    let mixed = seed ^ (query as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = ChaCha8Rng::seed_from_u64(mixed);
    sample(&mut rng, others, k)
        .into_iter()
        .map(|i| if i >= query { i + 1 } else { i })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(i: &str, t: &str) -> PromptResponse {
        PromptResponse {
            inputs: i.into(),
            targets: t.into(),
        }
    }

    #[test]
    fn flan_default_layout() {
        let (a, b) = (pr("Q1?", "A1"), pr("Q2? ", "A2"));
        let p = FewShotPattern::default();
        assert_eq!(
            p.prompt(&[&a, &b], "Q3?"),
            "Q1?\n\nA1\n\n\nQ2? \n\nA2\n\n\nQ3?\n\n"
        );
        // zero shots: the query and the delimiter
        assert_eq!(p.prompt(&[], "Q?"), "Q?\n\n");
        // prefixes, suffix, and trailing spaces (not newlines) dropped before the suffix
        let qa = FewShotPattern {
            inputs_prefix: "Q: ".into(),
            targets_prefix: "A: ".into(),
            x_y_delimiter: "\n".into(),
            example_separator: "\n\n".into(),
            final_suffix: "A:".into(),
        };
        assert_eq!(qa.prompt(&[&a], "Q3?  "), "Q: Q1?\nA: A1\n\nQ: Q3?  \nA:");
        let spaces = FewShotPattern {
            x_y_delimiter: "  ".into(),
            ..FewShotPattern::default()
        };
        assert_eq!(spaces.prompt(&[], "Q? "), "Q?");
    }

    #[test]
    fn exemplars_are_other_rows_and_seeded() {
        for query in [0, 3, 9] {
            let rows = exemplar_rows(10, query, 4, 7);
            assert_eq!(rows.len(), 4);
            assert!(!rows.contains(&query) && rows.iter().all(|&r| r < 10));
            let mut sorted = rows.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 4, "distinct: {rows:?}");
            assert_eq!(exemplar_rows(10, query, 4, 7), rows);
        }
        // different queries and seeds draw different exemplars
        let draws: std::collections::HashSet<Vec<usize>> =
            (0..6).map(|s| exemplar_rows(50, 1, 3, s)).collect();
        assert!(draws.len() > 3);
        // a small source gives what it has
        assert_eq!(exemplar_rows(3, 1, 5, 0).len(), 2);
        assert!(exemplar_rows(1, 0, 2, 0).is_empty());
    }
}
