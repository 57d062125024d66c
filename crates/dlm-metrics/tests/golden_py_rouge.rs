//! py-rouge's ROUGE-L (the paper's authors' metric) equals `py-rouge==1.1` on the committed
//! fixture (`scripts/reference/py_rouge_fixtures.py`): per-segment and mean P/R/F to 1e-9
//! under the authors' defaults and three variants, and NLTK's original-algorithm Porter
//! stems.

mod common;
use common::*;
use dlm_metrics::porter::stem_original;
use dlm_metrics::py_rouge::{PyRougeConfig, corpus_py_rouge_l};

fn config(variant: &str) -> PyRougeConfig {
    let d = PyRougeConfig::default();
    match variant {
        "authors" => d,
        "no_stemming" => PyRougeConfig { stemming: false, ..d },
        "no_limit" => PyRougeConfig { length_limit: None, ..d },
        "alpha_0.2" => PyRougeConfig { alpha: 0.2, ..d },
        other => panic!("unknown variant {other}"),
    }
}

#[test]
fn rouge_l_matches_py_rouge() {
    let corpora = fixture("corpora.json");
    let fx = fixture("py_rouge.json");
    let long = Corpus {
        hyps: strings(&fx["long_corpus"]["hyps"]),
        streams: vec![strings(&fx["long_corpus"]["refs"]).into_iter().map(Some).collect()],
    };
    let mut variants = std::collections::BTreeSet::new();
    for case in fx["cases"].as_array().expect("cases") {
        let name = case["corpus"].as_str().unwrap();
        let variant = case["variant"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        variants.insert(variant.to_string());
        let c = if name == "long" { Corpus { hyps: long.hyps.clone(), streams: long.streams.clone() } } else { corpus(&corpora, name) };
        let refs: Vec<String> = c.streams[0][..n].iter().map(|r| r.clone().unwrap()).collect();
        let got = corpus_py_rouge_l(&c.hyps[..n], &refs, &config(variant)).unwrap();
        let label = format!("{name} {variant}");
        for (i, seg) in case["segments"].as_array().unwrap().iter().enumerate() {
            let want = f64s(seg);
            let g = &got.segments[i];
            assert_close(&format!("{label} seg {i} P"), g.precision, want[0]);
            assert_close(&format!("{label} seg {i} R"), g.recall, want[1]);
            assert_close(&format!("{label} seg {i} F"), g.fmeasure, want[2]);
        }
        let want = f64s(&case["mean"]);
        assert_close(&format!("{label} mean P"), got.mean.precision, want[0]);
        assert_close(&format!("{label} mean R"), got.mean.recall, want[1]);
        assert_close(&format!("{label} mean F"), got.mean.fmeasure, want[2]);
    }
    assert_eq!(variants.len(), 4, "{variants:?}");
}

#[test]
fn porter_original_matches_nltk() {
    let fx = fixture("py_rouge.json");
    let pairs = fx["porter_original"].as_array().expect("porter_original");
    assert!(pairs.len() > 1000);
    for p in pairs {
        let (w, s) = (p[0].as_str().unwrap(), p[1].as_str().unwrap());
        assert_eq!(stem_original(w), s, "stem_original({w})");
    }
}
