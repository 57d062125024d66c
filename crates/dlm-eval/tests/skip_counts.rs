//! With the real XLM-R tokenizer (`.cache/models/xlmr-tokenizer`, fetched by
//! `scripts/fetch-models.sh`) at 512 tokens, the examples the plan skips are exactly the
//! counts of `docs/data-stats.md` (`dlm data stats`, equal to the paper's published
//! `skipped.json`): loaders and skip rule agree with the rest of the project.

mod common;

use dlm_data::Tokenizer;
use dlm_eval::{LoadOptions, Task, load, plan};

#[test]
fn skipped_counts_equal_the_published_ones() {
    let Some(d) = common::data_root() else { return };
    let xlmr = common::repo_root().join(".cache/models/xlmr-tokenizer");
    if !xlmr.is_dir() {
        eprintln!(
            "skipping: {} is absent (scripts/fetch-models.sh)",
            xlmr.display()
        );
        return;
    }
    let tok = Tokenizer::from_dir(&xlmr).unwrap();
    for (task, dir, shots, rows, skipped) in [
        (Task::Mmlu, "eval/mmlu", 1, 1531, 193),
        (Task::BbhNlp, "eval/bbh-nlp", 2, 1212, 239),
        (Task::Mgsm, "eval/mgsm", 8, 500, 500),
    ] {
        let opts = LoadOptions {
            shots: Some(shots),
            tokenizer: Some(&tok),
            ..LoadOptions::default()
        };
        let ds = load(task, &d.join(dir), &opts).unwrap();
        let p = plan(&ds, &tok, None, 512, None).unwrap();
        let total: usize = p.counts.iter().map(|c| c.examples).sum();
        let skip: usize = p.counts.iter().map(|c| c.skipped).sum();
        assert_eq!((total, skip), (rows, skipped), "{task} {shots}-shot");
        assert_eq!(p.items.len(), rows - skipped);
    }
}
