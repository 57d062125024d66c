//! `dlm score`: corpus metrics of a hypothesis file against a reference file, one
//! segment per line (a trailing `\r` of CRLF files is stripped). BLEU and chrF are
//! sacreBLEU 2.6.0's, ROUGE is rouge-score 0.1.2's (mean F over segments), or with
//! `--py-rouge` the ROUGE-L of py-rouge 1.1 that the paper's authors used; see the
//! `dlm-metrics` crate.

use anyhow::{Context, Result, bail};
use dlm_metrics::{BleuConfig, BleuTokenizer, ChrfConfig, Smoothing};
use std::path::{Path, PathBuf};

/// Score hypotheses against references (BLEU, chrF, ROUGE).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    metric: Metric,
}

#[derive(clap::Subcommand)]
enum Metric {
    /// Corpus BLEU, identical to sacreBLEU 2.6.0 (prints its signature)
    Bleu(BleuArgs),
    /// ROUGE-1/2/L/Lsum mean F-measure, identical to rouge-score 0.1.2 (or, with
    /// --py-rouge, ROUGE-L identical to py-rouge 1.1, the paper's)
    Rouge(RougeArgs),
    /// chrF2 (character order 6, word order 0), identical to sacreBLEU 2.6.0
    Chrf(ChrfArgs),
}

/// The two input files.
#[derive(clap::Args)]
struct Files {
    /// Reference file, one segment per line
    #[arg(long = "ref", value_name = "REF")]
    reference: PathBuf,
    /// Hypothesis file, one segment per line (same number of lines as REF)
    #[arg(long = "hyp", value_name = "HYP")]
    hypothesis: PathBuf,
}

#[derive(clap::Args)]
struct BleuArgs {
    #[command(flatten)]
    files: Files,
    /// Tokenizer applied before counting n-grams
    #[arg(long, default_value = "13a", value_parser = ["13a", "intl", "none", "char", "zh"])]
    tokenize: String,
    /// Lowercase hypotheses and references first
    #[arg(long)]
    lowercase: bool,
    /// Smoothing of zero n-gram precisions
    #[arg(long, default_value = "exp", value_parser = ["exp", "floor", "add-k", "none"])]
    smooth: String,
    /// Print one JSON object instead of sacreBLEU's text line
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RougeArgs {
    #[command(flatten)]
    files: Files,
    /// Do not Porter-stem tokens (stemming is on by default)
    #[arg(long)]
    no_stemmer: bool,
    /// ROUGE-L as the paper's authors computed it: py-rouge 1.1's defaults (WordNet base
    /// forms and the original Porter stemmer, a 665-character length limit, summary-level
    /// LCS, mean P/R/F over segments)
    #[arg(long)]
    py_rouge: bool,
    /// With --py-rouge: the length limit in characters (0: none)
    #[arg(long, default_value_t = 665, requires = "py_rouge")]
    length_limit: usize,
    /// With --py-rouge: alpha of the F-measure P·R / ((1-α)·P + α·R)
    #[arg(long, default_value_t = 0.5, requires = "py_rouge")]
    alpha: f64,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ChrfArgs {
    #[command(flatten)]
    files: Files,
    /// Print one JSON object instead of sacreBLEU's text line
    #[arg(long)]
    json: bool,
}

/// Run `dlm score <metric>`.
pub fn run(args: Args) -> Result<()> {
    match args.metric {
        Metric::Bleu(a) => run_bleu(a),
        Metric::Rouge(a) => run_rouge(a),
        Metric::Chrf(a) => run_chrf(a),
    }
}

/// Segments of a text file: one per line, `\n` or `\r\n` line ends.
fn read_segments(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect())
}

/// Both files, checked to have the same number of lines: (hypotheses, references).
fn read_pair(files: &Files) -> Result<(Vec<String>, Vec<String>)> {
    let refs = read_segments(&files.reference)?;
    let hyps = read_segments(&files.hypothesis)?;
    if refs.len() != hyps.len() {
        bail!(
            "line count mismatch: reference file {} has {} lines but hypothesis file {} has {} lines",
            files.reference.display(),
            refs.len(),
            files.hypothesis.display(),
            hyps.len()
        );
    }
    Ok((hyps, refs))
}

fn scoring_context(files: &Files) -> String {
    format!("scoring {} against {}", files.hypothesis.display(), files.reference.display())
}

fn run_bleu(a: BleuArgs) -> Result<()> {
    let (hyps, refs) = read_pair(&a.files)?;
    let cfg = BleuConfig {
        tokenize: a.tokenize.parse::<BleuTokenizer>()?,
        lowercase: a.lowercase,
        smooth: a.smooth.parse::<Smoothing>()?,
        ..BleuConfig::default()
    };
    let s = dlm_metrics::corpus_bleu(&hyps, &refs, &cfg).with_context(|| scoring_context(&a.files))?;
    if a.json {
        let v = serde_json::json!({
            "score": s.score,
            "counts": s.counts,
            "totals": s.totals,
            "sys_len": s.sys_len,
            "ref_len": s.ref_len,
            "signature": s.signature,
        });
        println!("{v}");
    } else {
        println!("{}", s.format_line());
    }
    Ok(())
}

fn run_rouge(a: RougeArgs) -> Result<()> {
    if a.py_rouge {
        return run_py_rouge(a);
    }
    let (hyps, refs) = read_pair(&a.files)?;
    let stem = !a.no_stemmer;
    let r = dlm_metrics::corpus_rouge(&hyps, &refs, stem).with_context(|| scoring_context(&a.files))?;
    if a.json {
        let v = serde_json::json!({
            "rouge1": r.rouge1,
            "rouge2": r.rouge2,
            "rougeL": r.rouge_l,
            "rougeLsum": r.rouge_lsum,
        });
        println!("{v}");
    } else {
        println!(
            "ROUGE mean F (rouge-score 0.1.2, stemmer: {}, {} segments): rouge1 = {:.4} rouge2 = {:.4} rougeL = {:.4} rougeLsum = {:.4}",
            if stem { "yes" } else { "no" },
            r.segments.len(),
            r.rouge1,
            r.rouge2,
            r.rouge_l,
            r.rouge_lsum
        );
    }
    Ok(())
}

fn run_py_rouge(a: RougeArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.alpha) {
        bail!("--alpha must be in [0, 1], got {}", a.alpha);
    }
    let (hyps, refs) = read_pair(&a.files)?;
    let cfg = dlm_metrics::PyRougeConfig {
        stemming: !a.no_stemmer,
        length_limit: (a.length_limit > 0).then_some(a.length_limit),
        alpha: a.alpha,
    };
    let r = dlm_metrics::corpus_py_rouge_l(&hyps, &refs, &cfg).with_context(|| scoring_context(&a.files))?;
    if a.json {
        let m = r.mean;
        let v = serde_json::json!({ "rougeL": { "p": m.precision, "r": m.recall, "f": m.fmeasure }, "config": cfg });
        println!("{v}");
    } else {
        println!(
            "ROUGE-L mean (py-rouge 1.1, stemming: {}, length limit: {}, alpha {}, {} segments): P = {:.4} R = {:.4} F = {:.4}",
            if cfg.stemming { "yes" } else { "no" },
            cfg.length_limit.map_or("none".to_string(), |n| format!("{n} characters")),
            cfg.alpha,
            r.segments.len(),
            r.mean.precision,
            r.mean.recall,
            r.mean.fmeasure
        );
    }
    Ok(())
}

fn run_chrf(a: ChrfArgs) -> Result<()> {
    let (hyps, refs) = read_pair(&a.files)?;
    let s = dlm_metrics::corpus_chrf(&hyps, &refs, &ChrfConfig::default()).with_context(|| scoring_context(&a.files))?;
    if a.json {
        let v = serde_json::json!({ "score": s.score, "name": s.name, "signature": s.signature });
        println!("{v}");
    } else {
        println!("{}", s.format_line());
    }
    Ok(())
}
