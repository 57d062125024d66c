//! `mpirun -np 2 dlm train` on the tiny config, for real: the test builds `dlm` with
//! `--features mpi` (same target directory, so only dlm-train, dlm-cli and the MPI
//! bindings compile again) and checks that
//! - two ranks with `train.accumulation = 1` log the same losses and end with the same
//!   weights as one process with `train.accumulation = 2` (ZeRO-1, the default);
//! - ZeRO-1 and replicated optimizer state (`distributed.zero = false`) agree;
//! - SIGKILL of one rank ends the whole job with a message instead of a hang, and
//!   `--resume` continues exactly from the last complete checkpoint, with 2 ranks and
//!   re-sharded onto one process.
//!
//! Skipped with a message when `mpirun` or the IWSLT rows are absent (outside CI; `.ci/run`
//! installs Open MPI).

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn skip_unless(present: bool, what: &str) -> bool {
    if present {
        return false;
    }
    assert!(std::env::var_os("CI").is_none(), "{what} is missing in CI");
    eprintln!("skipping: {what} not found");
    true
}

fn iwslt() -> PathBuf {
    root().join("../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl")
}

fn have_mpirun() -> bool {
    Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds `dlm` with `--features mpi` and copies it aside; then restores the default
/// binary that the other tests use.
fn build_mpi_dlm() -> PathBuf {
    let default_bin = PathBuf::from(env!("CARGO_BIN_EXE_dlm"));
    let profile_dir = default_bin.parent().unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let build = |features: &[&str]| {
        let mut c = Command::new(&cargo);
        c.current_dir(root())
            .args(["build", "-p", "dlm-cli", "--bin", "dlm", "--target-dir"])
            .arg(&target);
        if profile != "debug" {
            c.args(["--profile", &profile]);
        }
        let status = c.args(features).status().unwrap();
        assert!(status.success(), "cargo build {features:?} failed");
    };
    build(&["--features", "mpi"]);
    let aside = target.join("mpi-test");
    std::fs::create_dir_all(&aside).unwrap();
    let mpi_bin = aside.join("dlm");
    std::fs::copy(&default_bin, &mpi_bin).unwrap();
    build(&[]);
    mpi_bin
}

/// `dlm train` on the tiny config with the test's data, 8 updates, checkpoints every 2.
fn train_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let tiny = root().join("crates/dlm-models/tests/fixtures/tiny-xlmr");
    let data = iwslt().display().to_string();
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        root().join("configs/tiny-cpu.toml").display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for s in [
        format!("model.dir={:?}", tiny.display().to_string()),
        format!("data.train={data:?}"),
        format!("data.valid={data:?}"),
        "train.max_steps=8".into(),
        "train.save_interval=2".into(),
        "train.validate_interval=0".into(),
        "train.keep_last=8".into(),
    ]
    .into_iter()
    .chain(extra.iter().map(|s| s.to_string()))
    {
        args.push("--set".into());
        args.push(s);
    }
    args
}

/// `mpirun -np N` with what a container or a root CI user needs.
fn mpirun(n: usize, dlm: &Path, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args([
            "-np",
            &n.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .arg(dlm)
        .args(args);
    c
}

fn run_ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-6)
}

fn assert_same_losses(what: &str, a: &[(u64, f64)], b: &[(u64, f64)]) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?}\n{b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.0 == y.0 && close(x.1, y.1),
            "{what}: step {}: {} vs {}",
            x.0,
            x.1,
            y.1
        );
    }
}

fn weights(ckpt: &Path) -> HashMap<String, Vec<f32>> {
    let t =
        candle_core::safetensors::load(ckpt.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    t.into_iter()
        .map(|(k, v)| {
            let v = v
                .flatten_all()
                .unwrap()
                .to_dtype(candle_core::DType::F32)
                .unwrap();
            (k, v.to_vec1::<f32>().unwrap())
        })
        .collect()
}

/// Every weight of the two checkpoints within 1e-5 relative (to the tensor's largest
/// magnitude, so that values near zero compare sensibly).
fn assert_same_weights(what: &str, a: &Path, b: &Path) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (name, x) in &a {
        let y = &b[name];
        let scale = y.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-5 * scale,
            "{what}: {name} differs by {worst} (scale {scale})"
        );
    }
}

/// The rank processes `mpirun` started: (rank, pid).
fn ranks_of(mpirun_pid: u32) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1));
        if ppid != Some(&mpirun_pid.to_string()) {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let rank = env
            .split(|&b| b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix("OMPI_COMM_WORLD_RANK="))
            .and_then(|r| r.parse().ok());
        if let Some(rank) = rank {
            out.push((rank, pid));
        }
    }
    out
}

#[test]
fn two_ranks_train_like_one_process_with_accumulation_two() {
    if skip_unless(iwslt().exists(), "the IWSLT14 rows") || skip_unless(have_mpirun(), "mpirun") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| tmp.path().join(n);
    // One process, 2 micro-batches per update: the default build.
    let mut single = Command::new(env!("CARGO_BIN_EXE_dlm"));
    single.args(train_args(&dir("single"), &["train.accumulation=2"]));
    run_ok(single);
    let reference = losses(&dir("single"));
    assert_eq!(reference.len(), 8);

    let dlm = build_mpi_dlm();
    // Two ranks, one micro-batch each, ZeRO-1.
    let out = run_ok(mpirun(
        2,
        &dlm,
        &train_args(&dir("zero"), &["train.accumulation=1"]),
    ));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("rank 1/2 on"),
        "no rank layout in the log:\n{log}"
    );
    assert!(log.contains("ZeRO-1"), "no optimizer memory line:\n{log}");
    assert_same_losses(
        "2 ranks vs accumulation 2",
        &losses(&dir("zero")),
        &reference,
    );
    assert_same_weights(
        "2 ranks vs accumulation 2",
        &dir("zero/ckpt-8"),
        &dir("single/ckpt-8"),
    );
    let state = std::fs::read_to_string(dir("zero/ckpt-8/trainer_state.json")).unwrap();
    assert!(state.contains("\"world_size\": 2"), "{state}");
    for r in 0..2 {
        assert!(dir(&format!("zero/ckpt-8/trainer_state.rank{r}.safetensors")).exists());
    }

    // Replicated optimizer state: the same run.
    let args = train_args(
        &dir("replicated"),
        &["train.accumulation=1", "distributed.zero=false"],
    );
    run_ok(mpirun(2, &dlm, &args));
    assert_same_losses(
        "replicated vs ZeRO-1",
        &losses(&dir("replicated")),
        &losses(&dir("zero")),
    );
    assert_same_weights(
        "replicated vs ZeRO-1",
        &dir("replicated/ckpt-8"),
        &dir("zero/ckpt-8"),
    );

    // SIGKILL one rank after the first checkpoint: the job ends (no hang) with a message.
    let killed = dir("killed");
    let mut job = mpirun(2, &dlm, &train_args(&killed, &["train.accumulation=1"]));
    let mut job = job
        .env("DLM_TRAIN_STEP_DELAY_MS", "300")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !killed.join("latest").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let ranks = ranks_of(job.id());
    let &(_, pid) = ranks.iter().find(|r| r.0 == 1).expect("rank 1 not found");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    while job.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job hangs after a rank died"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = job.wait_with_output().unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains("signal 9") || msg.contains("Killed"),
        "no message naming the kill:\n{msg}"
    );
    let done = losses(&killed).len();
    assert!(done < 8, "the run finished before the kill ({done} steps)");

    // Re-sharded onto one process (2 micro-batches per update to keep the batch).
    let copy = dir("killed-single");
    run_ok({
        let mut c = Command::new("cp");
        c.arg("-a").arg(&killed).arg(&copy);
        c
    });
    let mut one = Command::new(&dlm);
    one.args(["train", "--resume"])
        .arg(&copy)
        .args(["--set", "train.accumulation=2"]);
    let out = run_ok(one);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("re-cut") && log.contains("2 rank(s)"),
        "no re-sharding note:\n{log}"
    );
    assert_same_losses("resumed on 1 process", &losses(&copy), &reference);
    assert_same_weights(
        "resumed on 1 process",
        &copy.join("ckpt-8"),
        &dir("single/ckpt-8"),
    );

    // Resumed with the same 2 ranks.
    let resume = vec![
        "train".to_string(),
        "--resume".into(),
        killed.display().to_string(),
    ];
    run_ok(mpirun(2, &dlm, &resume));
    assert_same_losses("resumed on 2 ranks", &losses(&killed), &reference);
    assert_same_weights(
        "resumed on 2 ranks",
        &killed.join("ckpt-8"),
        &dir("single/ckpt-8"),
    );
}
