//! `metrics.jsonl`: one JSON object per optimizer update (`"kind": "train"`: step, lr,
//! loss, accuracy, tokens, tokens/s, grad norm, elapsed seconds, epoch, and with several
//! ranks the seconds spent communicating) and per validation
//! (`"kind": "valid"`: step, loss, accuracy and BLEU/ROUGE-L when generated). On resume
//! the log is cut back to the checkpoint's step, so it always tells one history.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const METRICS_FILE: &str = "metrics.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRecord {
    pub step: u64,
    pub epoch: u64,
    pub lr: f64,
    pub loss: f64,
    pub accuracy: f64,
    pub tokens: u64,
    pub tokens_per_s: f64,
    pub grad_norm: f64,
    pub elapsed_s: f64,
    /// Seconds this update spent in collectives (runs of more than one rank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidRecord {
    pub step: u64,
    pub loss: f64,
    pub accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bleu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<f64>,
    pub examples: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Train(TrainRecord),
    Valid(ValidRecord),
}

impl Record {
    pub fn step(&self) -> u64 {
        match self {
            Record::Train(r) => r.step,
            Record::Valid(r) => r.step,
        }
    }
}

pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `run_dir/metrics.jsonl` for appending after dropping every record past
    /// `keep_until` (and any torn last line of a killed run).
    pub fn open(run_dir: &Path, keep_until: u64) -> Result<MetricsLog> {
        let path = run_dir.join(METRICS_FILE);
        let kept: Vec<Record> = read_records(&path)?
            .into_iter()
            .filter(|r| r.step() <= keep_until)
            .collect();
        let mut text = String::new();
        for r in &kept {
            text.push_str(
                &serde_json::to_string(r).map_err(|e| TrainError::Invalid(e.to_string()))?,
            );
            text.push('\n');
        }
        crate::checkpoint::write_atomic(&path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(MetricsLog { path, file })
    }

    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line =
            serde_json::to_string(record).map_err(|e| TrainError::Invalid(e.to_string()))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Every well-formed record of a metrics file (a missing file has none; unparsable lines,
/// such as a line torn by a kill, are skipped).
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(step: u64) -> Record {
        Record::Train(TrainRecord {
            step,
            epoch: 0,
            lr: 0.1,
            loss: step as f64,
            accuracy: 0.0,
            tokens: 1,
            tokens_per_s: 1.0,
            grad_norm: 1.0,
            elapsed_s: 0.0,
            comm_s: None,
        })
    }

    #[test]
    fn resume_cuts_the_log_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), 0).unwrap();
        for s in 1..=5 {
            log.append(&train(s)).unwrap();
        }
        drop(log);
        // A torn line as a kill would leave it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(METRICS_FILE))
            .unwrap()
            .write_all(b"{\"kind\":\"tr")
            .unwrap();
        let mut log = MetricsLog::open(dir.path(), 3).unwrap();
        log.append(&train(4)).unwrap();
        let steps: Vec<u64> = read_records(&dir.path().join(METRICS_FILE))
            .unwrap()
            .iter()
            .map(Record::step)
            .collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }
}
