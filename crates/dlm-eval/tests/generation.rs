//! Generation through the library on the tiny 514-position XLM-R (no shared data
//! needed): oracle lengths give as many generation positions as the gold response has
//! tokens, a length beam runs with the model directory's predictor, progress is reported
//! for every example, and an empty gold response predicts the empty string.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use dlm_data::Tokenizer;
use dlm_diffusion::{LengthPredictor, SamplerConfig};
use dlm_eval::{
    Dataset, Example, Format, GenerationConfig, Generator, LengthMode, Progress, PromptStyle,
    RunInfo, Subset, Task, evaluate_model,
};
use dlm_models::{Backbone, LoadOptions};

fn example(prompt: &str, target: &str) -> Example {
    Example {
        prompt: prompt.into(),
        target: target.into(),
        options: None,
    }
}

fn dataset() -> Dataset {
    let a = vec![
        example("what do you think ? the", "people are here"),
        example("so we have to", "see the world now"),
        example("it is", ""),
    ];
    let b = vec![example("i know that they", "get up")];
    Dataset {
        task: Task::TydiQa,
        format: Format::Prompted,
        shots: Some(0),
        template: "test".into(),
        subsets: vec![
            Subset {
                name: "a".into(),
                source: PathBuf::from("a.jsonl"),
                examples: a,
            },
            Subset {
                name: "b".into(),
                source: PathBuf::from("b.jsonl"),
                examples: b,
            },
        ],
    }
}

#[derive(Default)]
struct Count {
    total: usize,
    done: usize,
    finished: bool,
}

impl Progress for Count {
    fn start(&mut self, total: usize) {
        self.total = total;
    }
    fn advance(&mut self, n: usize) {
        self.done += n;
    }
    fn finish(&mut self) {
        self.finished = true;
    }
}

#[test]
fn oracle_and_length_beam() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::fixture::long_tiny_xlmr(&tmp.path().join("m"), true);
    let model = Backbone::load(&dir, &LoadOptions::default()).unwrap();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();
    let special = tokenizer.special_tokens().unwrap();
    let predictor = LengthPredictor::load(&dir, &Device::Cpu).unwrap();
    let generator = Generator {
        model: &model,
        tokenizer: &tokenizer,
        special,
        predictor: Some(&predictor),
        chat: None,
    };
    let info = RunInfo {
        model: dir.display().to_string(),
        data: "inline".into(),
        style: PromptStyle::Instruct,
        limit: None,
        dtype: Some("f32".into()),
        started: Instant::now(),
    };
    let ds = dataset();
    for length in [LengthMode::Oracle, LengthMode::Predicted { beam: 2 }] {
        let cfg = GenerationConfig {
            sampler: SamplerConfig {
                steps: 3,
                ..SamplerConfig::default()
            },
            length,
            batch_size: 2,
        };
        let mut progress = Count::default();
        let eval = evaluate_model(&ds, &generator, &cfg, &info, &mut progress).unwrap();
        assert_eq!(
            (progress.total, progress.done, progress.finished),
            (4, 4, true)
        );
        assert_eq!(eval.predictions.len(), 4);
        let r = &eval.report;
        assert_eq!((r.examples, r.skipped, r.scored), (4, 0, 4));
        assert_eq!(
            r.subsets.iter().map(|s| s.scored).collect::<Vec<_>>(),
            vec![3, 1]
        );
        assert_eq!(r.settings.generation.as_ref().unwrap().length, length);
        assert!(r.timing.examples_per_second.unwrap() > 0.0);
        if length == LengthMode::Oracle {
            // Word-level tokenizer: at most as many words as gold tokens (special tokens
            // the model may predict are dropped when decoding); the empty gold gives "".
            for (item, p) in eval.plan.items.iter().zip(&eval.predictions) {
                let gold = &ds.subsets[item.subset].examples[item.index].target;
                assert!(
                    p.split_whitespace().count() <= gold.split_whitespace().count(),
                    "{p:?} vs {gold:?}"
                );
                if gold.is_empty() {
                    assert_eq!(p, "");
                }
            }
        }
    }
    // A length beam without a predictor is a setting error.
    let no_predictor = Generator {
        predictor: None,
        ..generator
    };
    let cfg = GenerationConfig {
        sampler: SamplerConfig::default(),
        length: LengthMode::Predicted { beam: 2 },
        batch_size: 2,
    };
    let e = evaluate_model(&ds, &no_predictor, &cfg, &info, &mut dlm_eval::Silent).unwrap_err();
    assert!(e.to_string().contains("length predictor"), "{e}");
}
