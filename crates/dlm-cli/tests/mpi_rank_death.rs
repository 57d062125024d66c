//! A rank that dies or hangs mid-run, with `mpirun -np 2 dlm train` on the tiny config
//! (issue "A rank dies"). The test builds `dlm` with `--features mpi` itself (with
//! `mpi_support`, as `mpi_cli.rs` does, same target directory) and checks that
//! - SIGKILL of one rank after a checkpoint ends the whole job within a bound, non-zero,
//!   with a message naming the killed rank, and leaves no rank behind; `--resume` with 2
//!   ranks then logs, bit for bit, the losses of an uninterrupted 2-rank run and ends with
//!   the same weights;
//! - a rank that stops (SIGSTOP: alive, but never reaching the next collective, which
//!   `mpirun` does not notice) is caught by the collective watchdog
//!   (`DLM_COLLECTIVE_TIMEOUT`): the waiting rank names the collective, the update and the
//!   timeout and exits, and `mpirun` ends the job.
//!
//! Skipped with a message when `mpirun`, the IWSLT rows or the MPI build are absent
//! (outside CI; `.ci/run` installs Open MPI).

mod mpi_support;

use mpi_support::{
    have_mpirun, iwslt, losses, mpi_dlm, mpirun, ranks_of, run_ok, signal, skip_unless, train_args,
    weights,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the job may take to end after a rank died or stopped.
const BOUND: Duration = Duration::from_secs(60);
/// The watchdog timeout of the hang test, in seconds.
const HANG_TIMEOUT_S: u64 = 5;

/// `dlm train` on the tiny config with the test's data: 8 updates of one micro-batch per
/// rank, checkpoints every 2.
fn train_args_acc1(out: &Path) -> Vec<String> {
    train_args(out, &["train.accumulation=1"])
}

/// Everything present, or the reason to skip (outside CI).
fn setup() -> Option<PathBuf> {
    if skip_unless(iwslt().exists(), "the IWSLT14 rows") || skip_unless(have_mpirun(), "mpirun") {
        return None;
    }
    let dlm = mpi_dlm();
    if skip_unless(
        dlm.is_some(),
        "a dlm built with --features mpi (the build failed)",
    ) {
        return None;
    }
    dlm
}

/// True while `pid` is a live (not zombie) process running `exe`.
fn alive(pid: u32, exe: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    if state == Some("Z") || state == Some("X") {
        return false;
    }
    std::fs::read_link(proc.join("exe")).is_ok_and(|p| p == exe)
}

/// Starts a 2-rank run that sleeps 300 ms after every update (so that it is still running
/// when the test acts), waits for its first checkpoint and returns the job and its ranks.
fn start_slow_run(dlm: &Path, out: &Path, timeout_s: u64) -> (Child, Vec<(usize, u32)>) {
    let mut job = mpirun(2, dlm, &train_args_acc1(out))
        .env("DLM_TRAIN_STEP_DELAY_MS", "300")
        .env("DLM_COLLECTIVE_TIMEOUT", timeout_s.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !out.join("latest").exists() {
        if start.elapsed() > Duration::from_secs(120) || job.try_wait().unwrap().is_some() {
            let _ = job.kill();
            let o = job.wait_with_output().unwrap();
            panic!(
                "no checkpoint after {:?}:\n{}",
                start.elapsed(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ranks = ranks_of(job.id());
    assert_eq!(
        ranks.iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 1],
        "{ranks:?}"
    );
    (job, ranks)
}

/// Waits (at most [`BOUND`]) for the job to end; then checks that it failed and that no
/// rank is left. Returns its stderr and how long it took.
fn wait_for_end(mut job: Child, ranks: &[(usize, u32)], dlm: &Path) -> (String, Duration) {
    let start = Instant::now();
    while job.try_wait().unwrap().is_none() {
        if start.elapsed() > BOUND {
            for &(_, pid) in ranks {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            let _ = job.kill();
            let o = job.wait_with_output().unwrap();
            panic!(
                "the job still runs {BOUND:?} after a rank died:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let out = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "mpirun succeeded:\n{stderr}");
    // mpirun has returned: give the kernel a moment to reap the ranks it killed.
    let start = Instant::now();
    let left = loop {
        let left: Vec<_> = ranks.iter().filter(|r| alive(r.1, dlm)).collect();
        if left.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for &&(_, pid) in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "ranks left behind: {left:?}\n{stderr}");
    (stderr, took)
}

#[test]
fn a_killed_rank_ends_the_job_and_resume_repeats_the_uninterrupted_run_bit_for_bit() {
    let Some(dlm) = setup() else { return };
    let dlm = std::fs::canonicalize(dlm).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let killed = tmp.path().join("killed");

    // The uninterrupted 2-rank run.
    run_ok(mpirun(2, &dlm, &train_args_acc1(&whole)));
    let reference = losses(&whole);
    assert_eq!(
        reference.iter().map(|l| l.0).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );

    // The same run, rank 0 (the one that writes the checkpoints and the log) killed after
    // the first checkpoint. The watchdog (20 s) backs up mpirun, which notices at once.
    let (job, ranks) = start_slow_run(&dlm, &killed, 20);
    signal(ranks[0].1, "-KILL");
    let (stderr, took) = wait_for_end(job, &ranks, &dlm);
    assert!(
        stderr.contains("rank 0") && stderr.contains("signal 9")
            || stderr.contains("(DLM_COLLECTIVE_TIMEOUT)"),
        "no message naming the dead rank:\n{stderr}"
    );
    eprintln!("SIGKILL of rank 0: mpirun ended the job in {took:?}");
    let before = losses(&killed);
    assert!(
        before.len() < 8,
        "the run finished before the kill ({before:?})"
    );
    let latest = std::fs::read_to_string(killed.join("latest")).unwrap_or_default();
    eprintln!(
        "killed after step {}, latest checkpoint {latest:?}",
        before.len()
    );

    // Resumed with 2 ranks: every logged loss as in the uninterrupted run, to the bit.
    let resume = vec![
        "train".to_string(),
        "--resume".into(),
        killed.display().to_string(),
    ];
    let out = run_ok(mpirun(2, &dlm, &resume));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("resuming from"), "no resume line:\n{log}");
    let after = losses(&killed);
    assert_eq!(after.len(), 8, "{after:?}");
    for ((s, a), (t, b)) in after.iter().zip(&reference) {
        assert!(
            s == t && a.to_bits() == b.to_bits(),
            "step {s}: resumed loss {a:e} vs uninterrupted {b:e}"
        );
    }
    assert!(
        weights(&killed.join("ckpt-8")) == weights(&whole.join("ckpt-8")),
        "the final weights differ from the uninterrupted run's"
    );
}

#[test]
fn a_hung_rank_is_ended_by_the_collective_watchdog() {
    let Some(dlm) = setup() else { return };
    let dlm = std::fs::canonicalize(dlm).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("hung");
    // Rank 1 stopped: alive for mpirun, absent for the next collective of rank 0.
    let (job, ranks) = start_slow_run(&dlm, &run, HANG_TIMEOUT_S);
    signal(ranks[1].1, "-STOP");
    let (stderr, took) = wait_for_end(job, &ranks, &dlm);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: rank 0 of 2: "))
        .unwrap_or_else(|| panic!("no watchdog error from rank 0:\n{stderr}"));
    assert!(
        line.contains(&format!(
            "has not completed after {HANG_TIMEOUT_S} s (DLM_COLLECTIVE_TIMEOUT)"
        )) && line.contains(" in update "),
        "{line}"
    );
    assert!(
        took >= Duration::from_secs(HANG_TIMEOUT_S) - Duration::from_millis(500),
        "ended after {took:?}, before the timeout:\n{stderr}"
    );
    eprintln!("rank 1 stopped: the watchdog ended the job in {took:?}: {line}");
}
