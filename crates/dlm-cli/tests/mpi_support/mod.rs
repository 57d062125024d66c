//! Helpers shared by the tests that run `dlm train` under `mpirun` (`mpi_cli.rs`,
//! `mpi_rank_death.rs`): the data and `mpirun` checks, the `--features mpi` build of `dlm`
//! (once per test binary), the `dlm train` and `mpirun` command lines, and readers for the
//! logged losses, the checkpointed weights and the rank processes.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// False when `present`; otherwise says why the test is skipped and returns true (outside
/// CI: in CI a missing piece fails the test).
pub fn skip_unless(present: bool, what: &str) -> bool {
    if present {
        return false;
    }
    assert!(std::env::var_os("CI").is_none(), "{what} is missing in CI");
    eprintln!("skipping: {what} not found");
    true
}

pub fn iwslt() -> PathBuf {
    root().join("../shared/data/eval/iwslt14/0-shot/validation/deen.jsonl")
}

pub fn have_mpirun() -> bool {
    Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `dlm` built with `--features mpi`, copied aside (once per test binary, under a name of
/// its own so that test binaries running at the same time don't overwrite each other's);
/// then the default binary that the other tests use is restored. `None` when the MPI build
/// fails.
pub fn mpi_dlm() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(build_mpi_dlm).clone()
}

fn build_mpi_dlm() -> Option<PathBuf> {
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
        // Without the variables `cargo test` sets for this test (its package's name and
        // directory...): build scripts that watch them (ring's) would otherwise rerun, and
        // rebuild again for the next plain `cargo` command.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_EXE_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&&*k)
            {
                c.env_remove(&*k);
            }
        }
        c.current_dir(root())
            .args(["build", "-p", "dlm-cli", "--bin", "dlm", "--target-dir"])
            .arg(&target);
        if profile != "debug" {
            c.args(["--profile", &profile]);
        }
        c.args(features).status().unwrap().success()
    };
    let built = build(&["--features", "mpi"]);
    let aside = target.join("mpi-test");
    // The test binary's crate name (`mpi_cli`, `mpi_rank_death`...).
    let mpi_bin = aside.join(concat!("dlm-", env!("CARGO_CRATE_NAME")));
    if built {
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::copy(&default_bin, &mpi_bin).unwrap();
    }
    assert!(build(&[]), "cargo build (default features) failed");
    built.then_some(mpi_bin)
}

/// `dlm train` on the tiny config with the test's data, 8 updates, checkpoints every 2;
/// then `extra` as more `--set`s.
pub fn train_args(out: &Path, extra: &[&str]) -> Vec<String> {
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

/// `mpirun -np N` with what a container or a root CI user needs, without the test knobs
/// (`DLM_COLLECTIVE_TIMEOUT`, `DLM_TRAIN_STEP_DELAY_MS`) the caller's environment may hold:
/// a test that wants them sets them on the returned command.
pub fn mpirun(n: usize, dlm: &Path, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("DLM_COLLECTIVE_TIMEOUT")
        .env_remove("DLM_TRAIN_STEP_DELAY_MS")
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

pub fn run_ok(mut c: Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// (step, loss) of every train record, the loss exactly as logged; none when the run has
/// no `metrics.jsonl`.
pub fn losses(run: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

/// Every tensor of the checkpoint's `model.safetensors`, flattened to f32, by name.
pub fn weights(ckpt: &Path) -> BTreeMap<String, Vec<f32>> {
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

/// The rank processes `mpirun` started: (rank, pid), by rank.
pub fn ranks_of(mpirun_pid: u32) -> Vec<(usize, u32)> {
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
    out.sort();
    out
}

/// `kill SIG PID`, which must succeed.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}
