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

mod mpi_support;

use mpi_support::{
    have_mpirun, iwslt, losses, mpi_dlm, mpirun, ranks_of, run_ok, signal, skip_unless, train_args,
    weights,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    let dlm = mpi_dlm().expect("cargo build [\"--features\", \"mpi\"] failed");
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
    signal(pid, "-KILL");
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
