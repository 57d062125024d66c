//! The kernel level: which instruction set the hot operations run on, picked once per
//! process from the CPU's features, or lowered with `DLM_KERNEL_LEVEL`.
//!
//! Each level includes every level below it (all CPUs with AMX also have AVX512-BF16).
//! What each level changes today:
//! - `amx`: bf16 matrix products on AMX tiles (`amx`);
//! - `avx512bf16`: bf16 matrix products with `vdpbf16ps` (`bf16_gemm`);
//! - `avx512`, `avx2`, `portable`: bf16 products through candle (widen to f32);
//! - the fused elementwise kernels (`vector`) compile for AVX-512 from `avx512` up, for
//!   AVX2 at `avx2`, and for the x86-64 baseline at `portable`.
//!
//! f32 matrix products always go to candle's GEMM (the `gemm` crate), which picks AVX-512
//! or AVX2 from the CPU on its own and cannot be lowered from here.

use super::cpu::{self, Features};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that lowers the level.
pub const LEVEL_VAR: &str = "DLM_KERNEL_LEVEL";

/// Kernel levels, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub enum Level {
    /// No SIMD assumed beyond the x86-64 baseline (or not x86-64 at all).
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512 F/BW/DQ/VL.
    Avx512,
    /// AVX-512 with BF16 dot products (`vdpbf16ps`).
    Avx512Bf16,
    /// AMX-TILE + AMX-BF16 with the OS's permission, on top of AVX512-BF16.
    AmxBf16,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [
        Level::Portable,
        Level::Avx2,
        Level::Avx512,
        Level::Avx512Bf16,
        Level::AmxBf16,
    ];

    /// The name `DLM_KERNEL_LEVEL` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Avx512Bf16 => "avx512bf16",
            Level::AmxBf16 => "amx",
        }
    }

    /// The best level the given features allow.
    pub fn best_for(f: &Features) -> Level {
        let avx512 = f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
        if avx512 && f.avx512bf16 && f.amx_tile && f.amx_bf16 && f.amx_permitted {
            Level::AmxBf16
        } else if avx512 && f.avx512bf16 {
            Level::Avx512Bf16
        } else if avx512 {
            Level::Avx512
        } else if f.avx2 && f.fma {
            Level::Avx2
        } else {
            Level::Portable
        }
    }

    /// The best level this CPU allows: [`Level::best_for`] its features, but not `amx`
    /// when the AMX self-test ([`check_amx`]) failed.
    pub fn detected() -> Level {
        match Level::best_for(&cpu::features()) {
            Level::AmxBf16 if matches!(AMX_CHECK.get(), Some(AmxCheck::Failed(_))) => Level::Avx512Bf16,
            best => best,
        }
    }
}

impl From<Level> for &'static str {
    fn from(level: Level) -> Self {
        level.name()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, KernelError> {
        let s = s.trim().to_ascii_lowercase();
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| KernelError::UnknownLevel { value: s })
    }
}

/// Bad kernel settings in the environment.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{LEVEL_VAR}={value:?} is not a kernel level; expected one of amx, avx512bf16, avx512, avx2, portable")]
    UnknownLevel { value: String },
    #[error("{LEVEL_VAR}={requested} asks for more than this CPU has: the best level here is {best}")]
    Unsupported { requested: Level, best: Level },
    #[error("DLM_NUM_THREADS={value:?} is not a thread count; expected a whole number ≥ 1")]
    BadThreads { value: String },
    #[error("could not start the thread pool: {0}")]
    ThreadPool(String),
}

/// The level `DLM_KERNEL_LEVEL` asks for (the detected level where it is unset or empty),
/// refused when unknown or above what the CPU has.
fn requested() -> Result<Level, KernelError> {
    resolve(std::env::var(LEVEL_VAR).ok().as_deref(), Level::detected())
}

/// The level a `DLM_KERNEL_LEVEL` value selects on a CPU whose best level is `best`.
fn resolve(value: Option<&str>, best: Level) -> Result<Level, KernelError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(best);
    };
    let requested: Level = value.parse()?;
    if requested > best {
        return Err(KernelError::Unsupported { requested, best });
    }
    Ok(requested)
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// What the AMX self-test found (`amx/self_test.rs`): run by `kernels::start` on CPUs
/// that claim AMX, before any level is chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum AmxCheck {
    /// Not run: no AMX, the OS refused tile state, or no `kernels::start` in this process.
    NotRun,
    Passed,
    /// What went wrong; the process stays at `avx512bf16`.
    Failed(String),
}

impl fmt::Display for AmxCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmxCheck::NotRun => f.write_str("not run (no AMX offered here, or no kernels::start in this process)"),
            AmxCheck::Passed => f.write_str("passed"),
            AmxCheck::Failed(why) => write!(f, "FAILED ({why}); bf16 products stay at avx512bf16"),
        }
    }
}

static AMX_CHECK: OnceLock<AmxCheck> = OnceLock::new();

/// Checks the AMX kernel on this machine once, in a child process, when the CPU and the OS
/// offer AMX; afterwards [`Level::detected`] leaves out `amx` if it failed.
///
/// # Safety
/// The process must have one thread (first thing in `main`, as `kernels::start`).
pub(super) unsafe fn check_amx() {
    AMX_CHECK.get_or_init(|| {
        if Level::best_for(&cpu::features()) != Level::AmxBf16 {
            return AmxCheck::NotRun;
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: one thread (the caller's promise); the level says the CPU claims AMX.
        return unsafe { super::amx::self_test::in_child(super::amx::gemm) };
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        AmxCheck::NotRun
    });
}

/// Fixes the process's level from the CPU and `DLM_KERNEL_LEVEL`, refusing a bad value.
/// Binaries call it first thing; without it, [`level`] decides on first use and only warns.
pub fn init() -> Result<Level, KernelError> {
    let chosen = requested()?;
    Ok(*LEVEL.get_or_init(|| chosen))
}

/// The level the kernels run at in this process (decided on the first call).
pub fn level() -> Level {
    *LEVEL.get_or_init(|| {
        requested().unwrap_or_else(|e| {
            let best = Level::detected();
            tracing::warn!("{e}; running at {best}");
            best
        })
    })
}

/// What `dlm inspect --system` prints: the machine and the kernels chosen for it.
#[derive(Debug, Serialize)]
pub struct SystemReport {
    pub cpu: String,
    /// Extensions found (see [`Features::names`]).
    pub flags: Vec<&'static str>,
    /// Whether Linux granted this process AMX tile state.
    pub amx_permitted: bool,
    /// The AMX kernel's check on this machine.
    pub amx_self_test: AmxCheck,
    /// The best level the CPU allows.
    pub detected: Level,
    /// The level in use (lower when `DLM_KERNEL_LEVEL` says so).
    pub level: Level,
    /// Threads of the rayon pool the GEMMs and custom ops run on.
    pub threads: usize,
}

/// The report for this process (fixes the level if nothing did yet).
pub fn system_report() -> SystemReport {
    let f = cpu::features();
    SystemReport {
        cpu: cpu::model_name(),
        flags: f.names(),
        amx_permitted: f.amx_permitted,
        amx_self_test: AMX_CHECK.get().cloned().unwrap_or(AmxCheck::NotRun),
        detected: Level::detected(),
        level: level(),
        threads: rayon::current_num_threads(),
    }
}

impl SystemReport {
    /// One line for the logs of `train`, `eval` and `generate`.
    pub fn summary(&self) -> String {
        let lowered = if self.level < self.detected {
            format!(" (lowered from {})", self.detected)
        } else if let AmxCheck::Failed(_) = &self.amx_self_test {
            format!(" (AMX self-test {})", self.amx_self_test)
        } else {
            String::new()
        };
        format!(
            "kernels: level {}{lowered}, {} threads, CPU {}",
            self.level, self.threads, self.cpu
        )
    }
}

impl fmt::Display for SystemReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "CPU            {}", self.cpu)?;
        writeln!(f, "flags          {}", self.flags.join(" "))?;
        writeln!(f, "AMX permitted  {}", if self.amx_permitted { "yes" } else { "no" })?;
        writeln!(f, "AMX self-test  {}", self.amx_self_test)?;
        writeln!(f, "detected level {}", self.detected)?;
        writeln!(f, "kernel level   {} ({LEVEL_VAR} may lower it)", self.level)?;
        write!(f, "threads        {} (DLM_NUM_THREADS sets them)", self.threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for l in Level::ALL {
            assert_eq!(l.name().parse::<Level>().unwrap(), l);
            assert_eq!(format!(" {} ", l.name().to_uppercase()).parse::<Level>().unwrap(), l);
        }
        assert!(Level::ALL.windows(2).all(|w| w[0] < w[1]));
        let err = "sse9".parse::<Level>().unwrap_err().to_string();
        assert!(err.contains("\"sse9\"") && err.contains("avx512bf16"), "{err}");
    }

    /// Each level needs every feature of the levels below it.
    #[test]
    fn best_level_follows_the_features() {
        let mut f = Features::default();
        assert_eq!(Level::best_for(&f), Level::Portable);
        f.avx2 = true;
        assert_eq!(Level::best_for(&f), Level::Portable, "AVX2 without FMA");
        f.fma = true;
        assert_eq!(Level::best_for(&f), Level::Avx2);
        (f.avx512f, f.avx512bw, f.avx512vl) = (true, true, true);
        assert_eq!(Level::best_for(&f), Level::Avx2, "AVX-512 without DQ");
        f.avx512dq = true;
        assert_eq!(Level::best_for(&f), Level::Avx512);
        (f.amx_tile, f.amx_bf16, f.amx_permitted) = (true, true, true);
        assert_eq!(Level::best_for(&f), Level::Avx512, "AMX without AVX512-BF16");
        f.avx512bf16 = true;
        assert_eq!(Level::best_for(&f), Level::AmxBf16);
        f.amx_permitted = false;
        assert_eq!(Level::best_for(&f), Level::Avx512Bf16, "AMX the OS refused");
    }

    /// A failed AMX check shows in the one-line summary and the full report.
    #[test]
    fn a_failed_amx_check_is_reported() {
        let report = SystemReport {
            cpu: "test".into(),
            flags: vec![],
            amx_permitted: true,
            amx_self_test: AmxCheck::Failed("the tile instructions killed the check with signal 4".into()),
            detected: Level::Avx512Bf16,
            level: Level::Avx512Bf16,
            threads: 2,
        };
        let line = report.summary();
        assert!(line.contains("level avx512bf16 (AMX self-test FAILED (the tile instructions killed the check with signal 4)"), "{line}");
        assert!(report.to_string().contains("AMX self-test  FAILED"), "{report}");
        let passed = SystemReport { amx_self_test: AmxCheck::Passed, level: Level::AmxBf16, detected: Level::AmxBf16, ..report };
        assert!(!passed.summary().contains("self-test"), "{}", passed.summary());
    }

    #[test]
    fn override_lowers_and_refuses_to_raise() {
        assert_eq!(resolve(None, Level::Avx512Bf16).unwrap(), Level::Avx512Bf16);
        assert_eq!(resolve(Some(" "), Level::Avx2).unwrap(), Level::Avx2);
        assert_eq!(resolve(Some("avx2"), Level::AmxBf16).unwrap(), Level::Avx2);
        assert_eq!(resolve(Some("Portable"), Level::Portable).unwrap(), Level::Portable);
        let err = resolve(Some("amx"), Level::Avx512Bf16).unwrap_err().to_string();
        assert!(
            err.contains("DLM_KERNEL_LEVEL=amx") && err.contains("best level here is avx512bf16"),
            "{err}"
        );
        assert!(matches!(
            resolve(Some("fast"), Level::AmxBf16),
            Err(KernelError::UnknownLevel { .. })
        ));
    }

    #[test]
    fn report_names_the_level() {
        let r = system_report();
        assert!(r.level <= r.detected);
        assert!(r.summary().contains(r.level.name()));
        assert!(r.to_string().contains(&r.cpu));
    }
}
