//! Checkpoints that survive being killed at any moment. A checkpoint is a HuggingFace model
//! directory (config.json, model.safetensors, tokenizer files; loadable by `dlm` and
//! `transformers`) plus `run.toml`, `trainer_state.safetensors` (optimizer moments,
//! master weights) and `trainer_state.json` (step, data position, seed, best metric, and
//! the size and sha256 of every other file), written last.
//!
//! Writing: everything goes into `ckpt-STEP.tmp/`, each file and the directory are fsynced,
//! the directory is renamed to `ckpt-STEP/`, and the `latest` pointer file is replaced
//! atomically (temp file + rename). A failed write removes the temporary directory and
//! leaves every earlier checkpoint untouched. Resuming takes the newest checkpoint whose
//! files all match `trainer_state.json`; a half-written or corrupted one is reported and
//! skipped.

use crate::data::DataPosition;
use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const STATE_JSON: &str = "trainer_state.json";
pub const STATE_TENSORS: &str = "trainer_state.safetensors";
pub const LATEST: &str = "latest";
pub const BEST: &str = "best";
const PREFIX: &str = "ckpt-";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The best validation result so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestRecord {
    pub step: u64,
    pub value: f64,
}

/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: u32,
    /// Optimizer updates done (= the schedule position).
    pub step: u64,
    /// The next micro-batch to read.
    pub data: DataPosition,
    /// The run seed. Every random stream is ChaCha8 seeded from (seed, purpose, step,
    /// micro-batch), so the step is the whole RNG state.
    pub seed: u64,
    pub rng: String,
    /// Learning rate of the last update.
    pub lr: f64,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    pub best: Option<BestRecord>,
    /// Ranks of the run that wrote it (1: one process).
    #[serde(default = "one")]
    pub world_size: usize,
    /// ZeRO-1: the bucket size (elements) that cut the per-rank optimizer files
    /// `trainer_state.rankR.safetensors`; absent: one `trainer_state.safetensors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_bucket: Option<usize>,
    /// Every other file of the checkpoint.
    pub files: Vec<FileRecord>,
}

fn one() -> usize {
    1
}

impl TrainerState {
    /// The state of a fresh run with `seed`: step 0, nothing read, nothing saved yet.
    pub fn fresh(seed: u64) -> TrainerState {
        TrainerState {
            format: 1,
            step: 0,
            data: DataPosition::default(),
            seed,
            rng: RNG_SCHEME.into(),
            lr: 0.0,
            tokens_seen: 0,
            elapsed_s: 0.0,
            best: None,
            world_size: 1,
            zero_bucket: None,
            files: vec![],
        }
    }
}

pub const RNG_SCHEME: &str =
    "chacha8 per (seed, purpose, step, micro-batch); nothing carried between steps";

/// `ckpt-STEP`.
pub fn checkpoint_name(step: u64) -> String {
    format!("{PREFIX}{step}")
}

fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::io(path, e)
}

fn sha256_of(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}

fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Writes `text` to `path` through `path.tmp`, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent() {
        sync_path(parent)?;
    }
    Ok(())
}

/// Records, fsyncs and seals a filled directory: writes `trainer_state.json` with the
/// file list into `dir`.
fn seal(dir: &Path, state: &TrainerState) -> Result<()> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == STATE_JSON || !e.path().is_file() {
            continue;
        }
        sync_path(&e.path())?;
        let (size, sha256) = sha256_of(&e.path())?;
        files.push(FileRecord { name, size, sha256 });
    }
    let state = TrainerState {
        files,
        ..state.clone()
    };
    let text = serde_json::to_vec_pretty(&state).map_err(|e| TrainError::Invalid(e.to_string()))?;
    let path = dir.join(STATE_JSON);
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(io(&path))?;
    sync_path(dir)
}

/// Moves the finished `tmp` directory to `dest`, replacing an existing one.
fn install(tmp: &Path, dest: &Path) -> Result<()> {
    let old = dest.with_extension("old");
    if dest.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dest, &old).map_err(io(dest))?;
    }
    std::fs::rename(tmp, dest).map_err(io(dest))?;
    if let Some(parent) = dest.parent() {
        sync_path(parent)?;
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Writes checkpoint `state.step` into `run_dir`: `fill` writes the model, tokenizer,
/// config and optimizer files into the temporary directory it is given. Then the
/// directory is sealed, renamed into place and `latest` is pointed at it. Returns the
/// checkpoint directory.
pub fn write_checkpoint(
    run_dir: &Path,
    state: &TrainerState,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let tmp = start_checkpoint(run_dir, state.step)?;
    finish_checkpoint(run_dir, &tmp, state, fill)
}

/// `ckpt-STEP.tmp/`, where checkpoint `step` is assembled (by every rank of a
/// data-parallel run: each writes its optimizer shard there).
pub fn staging_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(format!("{}.tmp", checkpoint_name(step)))
}

fn failed(run_dir: &Path, step: u64, tmp: &Path, e: TrainError) -> TrainError {
    let _ = std::fs::remove_dir_all(tmp);
    TrainError::CheckpointWrite {
        path: run_dir.join(checkpoint_name(step)),
        source: Box::new(e),
    }
}

/// Creates an empty [`staging_dir`] for checkpoint `step` (removing a stale one).
pub fn start_checkpoint(run_dir: &Path, step: u64) -> Result<PathBuf> {
    let tmp = staging_dir(run_dir, step);
    let result = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))
    })();
    result
        .map(|()| tmp.clone())
        .map_err(|e| failed(run_dir, step, &tmp, e))
}

/// Runs `fill` on the staging directory `tmp`, then seals it, renames it to `ckpt-STEP/`
/// and points `latest` at it; on failure the staging directory is removed.
pub fn finish_checkpoint(
    run_dir: &Path,
    tmp: &Path,
    state: &TrainerState,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let dest = run_dir.join(checkpoint_name(state.step));
    let result = (|| {
        fill(tmp)?;
        seal(tmp, state)?;
        install(tmp, &dest)?;
        write_atomic(
            &run_dir.join(LATEST),
            format!("{}\n", checkpoint_name(state.step)).as_bytes(),
        )
    })();
    result
        .map(|()| dest)
        .map_err(|e| failed(run_dir, state.step, tmp, e))
}

/// Replaces `run_dir/best` with a copy of checkpoint `ckpt` (hard links where possible).
pub fn mark_best(run_dir: &Path, ckpt: &Path) -> Result<()> {
    let dest = run_dir.join(BEST);
    let tmp = run_dir.join("best.tmp");
    let result = (|| {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        for e in std::fs::read_dir(ckpt).map_err(io(ckpt))? {
            let e = e.map_err(io(ckpt))?;
            let to = tmp.join(e.file_name());
            if std::fs::hard_link(e.path(), &to).is_err() {
                std::fs::copy(e.path(), &to).map_err(io(&to))?;
            }
        }
        sync_path(&tmp)?;
        install(&tmp, &dest)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        TrainError::CheckpointWrite {
            path: dest,
            source: Box::new(e),
        }
    })
}

/// Reads `trainer_state.json` of `dir` and checks every recorded file's size and sha256.
pub fn verify(dir: &Path) -> Result<TrainerState> {
    let bad = |message: String| TrainError::BadCheckpoint {
        path: dir.into(),
        message,
    };
    let path = dir.join(STATE_JSON);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| bad(format!("cannot read {STATE_JSON} ({e}); half-written?")))?;
    let state: TrainerState =
        serde_json::from_str(&text).map_err(|e| bad(format!("{STATE_JSON} is corrupt: {e}")))?;
    if state.files.is_empty() {
        return Err(bad("no files recorded".into()));
    }
    for f in &state.files {
        let p = dir.join(&f.name);
        let (size, sha) = sha256_of(&p).map_err(|_| bad(format!("{} is missing", f.name)))?;
        if size != f.size {
            return Err(bad(format!(
                "{} has {size} bytes, expected {}",
                f.name, f.size
            )));
        }
        if sha != f.sha256 {
            return Err(bad(format!("{} fails its sha256 check", f.name)));
        }
    }
    Ok(state)
}

/// `ckpt-N` directories of `run_dir`, newest first.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(run_dir).map_err(io(run_dir))? {
        let e = e.map_err(io(run_dir))?;
        if let Some(step) = e.file_name().to_str().and_then(step_of)
            && e.path().is_dir()
        {
            out.push((step, e.path()));
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out)
}

/// The newest checkpoint that verifies; every one skipped is reported with its reason
/// (through `warn`) before an older one is used.
pub fn find_resumable(
    run_dir: &Path,
    mut warn: impl FnMut(&TrainError),
) -> Result<(PathBuf, TrainerState)> {
    let mut reasons = Vec::new();
    for (_, dir) in list_checkpoints(run_dir)? {
        match verify(&dir) {
            Ok(state) => return Ok((dir, state)),
            Err(e) => {
                warn(&e);
                reasons.push(e.to_string());
            }
        }
    }
    let detail = if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    };
    Err(TrainError::NoCheckpoint {
        dir: run_dir.into(),
        detail,
    })
}

/// Deletes all but the newest `keep` checkpoints. (A stale `ckpt-N.tmp` left by a kill is
/// replaced when step N is checkpointed again after the resume.)
pub fn prune_old(run_dir: &Path, keep: usize) -> Result<()> {
    for (_, dir) in list_checkpoints(run_dir)?.into_iter().skip(keep) {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> TrainerState {
        TrainerState { step, ..TrainerState::fresh(1) }
    }

    fn write(run: &Path, step: u64) -> PathBuf {
        write_checkpoint(run, &state(step), |d| {
            std::fs::write(d.join("model.safetensors"), format!("weights {step}"))
                .map_err(|e| TrainError::io(d, e))
        })
        .unwrap()
    }

    #[test]
    fn writes_seals_and_points_latest() {
        let run = tempfile::tempdir().unwrap();
        let dir = write(run.path(), 5);
        assert_eq!(dir, run.path().join("ckpt-5"));
        assert!(!run.path().join("ckpt-5.tmp").exists());
        assert_eq!(
            std::fs::read_to_string(run.path().join(LATEST)).unwrap(),
            "ckpt-5\n"
        );
        let s = verify(&dir).unwrap();
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].size, 9);
    }

    #[test]
    fn corrupted_newest_falls_back_with_a_message() {
        let run = tempfile::tempdir().unwrap();
        write(run.path(), 5);
        let newest = write(run.path(), 10);
        std::fs::write(newest.join("model.safetensors"), "weights 99").unwrap();
        let mut warned = Vec::new();
        let (dir, s) = find_resumable(run.path(), |e| warned.push(e.to_string())).unwrap();
        assert_eq!(
            (dir.file_name().unwrap().to_str().unwrap(), s.step),
            ("ckpt-5", 5)
        );
        assert!(
            warned[0].contains("ckpt-10") && warned[0].contains("sha256"),
            "{warned:?}"
        );

        // Half-written: no trainer_state.json; truncated file: size mismatch.
        std::fs::remove_file(newest.join(STATE_JSON)).unwrap();
        let e = verify(&newest).unwrap_err().to_string();
        assert!(e.contains("half-written"), "{e}");
        let five = run.path().join("ckpt-5");
        std::fs::write(five.join("model.safetensors"), "w").unwrap();
        let e = find_resumable(run.path(), |_| {}).unwrap_err().to_string();
        assert!(
            e.contains("no valid checkpoint") && e.contains("bytes"),
            "{e}"
        );
    }

    #[test]
    fn failed_write_leaves_the_previous_checkpoint() {
        let run = tempfile::tempdir().unwrap();
        write(run.path(), 5);
        let e = write_checkpoint(run.path(), &state(10), |_| {
            Err(TrainError::Invalid("disk full".into()))
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("previous checkpoint is left intact")
                && e.to_string().contains("disk full"),
            "{e}"
        );
        assert!(!run.path().join("ckpt-10.tmp").exists() && !run.path().join("ckpt-10").exists());
        assert_eq!(
            std::fs::read_to_string(run.path().join(LATEST)).unwrap(),
            "ckpt-5\n"
        );
        assert_eq!(find_resumable(run.path(), |_| {}).unwrap().1.step, 5);
    }

    #[test]
    fn keeps_the_newest_and_the_best() {
        let run = tempfile::tempdir().unwrap();
        for s in [1, 2, 3, 4] {
            write(run.path(), s);
        }
        mark_best(run.path(), &run.path().join("ckpt-2")).unwrap();
        prune_old(run.path(), 2).unwrap();
        let left: Vec<u64> = list_checkpoints(run.path())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(left, vec![4, 3]);
        assert_eq!(verify(&run.path().join(BEST)).unwrap().step, 2);
        // Rewriting the same step replaces it.
        write(run.path(), 4);
        assert_eq!(verify(&run.path().join("ckpt-4")).unwrap().step, 4);
    }
}
