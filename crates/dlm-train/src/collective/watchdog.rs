//! A deadline on every collective of a multi-rank run. A collective waits for every rank;
//! when a peer has died without the launcher ending the job (a launcher that does not
//! watch its ranks, a rank stopped or hung, a host that froze), the others would wait
//! forever. [`Watchdog`] turns that wait into an error: a collective that has not
//! completed after [`TIMEOUT_ENV`] seconds (default [`DEFAULT_TIMEOUT_S`]) makes this rank
//! print which collective of which update it waited in, and exit with status 1, which
//! `mpirun` answers by ending every rank.
//!
//! The timeout must exceed the longest stretch one rank works while the others wait in a
//! collective: rank 0 alone validates and writes the model of a checkpoint.

#![cfg_attr(not(feature = "mpi"), allow(dead_code))]

use crate::error::{Result, TrainError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Seconds a collective may take before its rank gives up (0: wait forever).
pub const TIMEOUT_ENV: &str = "DLM_COLLECTIVE_TIMEOUT";
/// The default of [`TIMEOUT_ENV`]: 30 minutes.
pub const DEFAULT_TIMEOUT_S: f64 = 1800.0;

/// The update the collectives belong to (0: start-up, before the first update).
static UPDATE: AtomicU64 = AtomicU64::new(0);

/// Records that the collectives from now on belong to update `step` (1-based), for the
/// watchdog's message.
pub fn note_update(step: u64) {
    UPDATE.store(step, Ordering::Relaxed);
}

fn update_label() -> String {
    match UPDATE.load(Ordering::Relaxed) {
        0 => "start-up (before the first update)".into(),
        n => format!("update {n}"),
    }
}

/// The timeout [`TIMEOUT_ENV`] asks for: `None` when it is 0 (no watchdog).
pub fn timeout_from_env() -> Result<Option<Duration>> {
    let text = std::env::var(TIMEOUT_ENV).ok();
    parse_timeout(text.as_deref())
}

fn parse_timeout(text: Option<&str>) -> Result<Option<Duration>> {
    let secs = match text.map(str::trim) {
        None | Some("") => DEFAULT_TIMEOUT_S,
        Some(t) => t
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                TrainError::Collective(format!(
                    "{TIMEOUT_ENV}={t:?}: expected seconds (a number ≥ 0; 0 disables the timeout)"
                ))
            })?,
    };
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

struct Armed {
    op: &'static str,
    since: Instant,
}

#[derive(Default)]
struct State {
    armed: Option<Armed>,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// A thread that ends the process when a collective outlives the timeout.
pub struct Watchdog {
    shared: Arc<Shared>,
}

/// What the watchdog does when a collective has timed out: it receives the message.
pub type OnExpiry = Box<dyn FnOnce(String) + Send>;

impl Watchdog {
    /// The watchdog of rank `rank` of `world`: prints the message and exits with status 1.
    pub fn exiting(timeout: Duration, rank: usize, world: usize) -> Watchdog {
        Watchdog::new(
            timeout,
            rank,
            world,
            Box::new(|message| {
                eprintln!("{message}");
                exit_now(1)
            }),
        )
    }

    /// A watchdog that calls `on_expiry` (once) with its message when a collective takes
    /// longer than `timeout`.
    pub fn new(timeout: Duration, rank: usize, world: usize, on_expiry: OnExpiry) -> Watchdog {
        let shared = Arc::new(Shared::default());
        let watched = shared.clone();
        std::thread::Builder::new()
            .name("dlm-collective-watchdog".into())
            .spawn(move || watch(&watched, timeout, rank, world, on_expiry))
            .expect("cannot start the collective watchdog thread");
        Watchdog { shared }
    }

    /// Runs the collective `op` under the deadline.
    pub fn guard<T>(&self, op: &'static str, f: impl FnOnce() -> T) -> T {
        self.set(Some(Armed {
            op,
            since: Instant::now(),
        }));
        let out = f();
        self.set(None);
        out
    }

    fn set(&self, armed: Option<Armed>) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let arming = armed.is_some();
        state.armed = armed;
        drop(state);
        if arming {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        state.armed = None;
        drop(state);
        self.shared.wake.notify_one();
    }
}

fn watch(shared: &Shared, timeout: Duration, rank: usize, world: usize, on_expiry: OnExpiry) {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if state.closed {
            return;
        }
        let Some(armed) = &state.armed else {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let waited = armed.since.elapsed();
        if waited < timeout {
            state = shared
                .wake
                .wait_timeout(state, timeout - waited)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        let message = format!(
            "error: rank {rank} of {world}: {op} in {update} has not completed after {secs} s \
             ({TIMEOUT_ENV}); another rank has probably died or hangs. Ending this rank; resume \
             from the last checkpoint with `dlm train --resume RUN_DIR`",
            op = armed.op,
            update = update_label(),
            secs = fmt_secs(timeout),
        );
        drop(state);
        on_expiry(message);
        return;
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

/// Ends the process at once with `code`: no destructors or `atexit` handlers, which could
/// wait for the MPI library the main thread is blocked in.
fn exit_now(code: i32) -> ! {
    unsafe extern "C" {
        fn _exit(status: std::ffi::c_int) -> !;
    }
    // SAFETY: `_exit` takes any status and never returns.
    unsafe { _exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn watchdog(timeout_ms: u64) -> (Watchdog, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        let w = Watchdog::new(
            Duration::from_millis(timeout_ms),
            1,
            2,
            Box::new(move |m| tx.send(m).unwrap()),
        );
        (w, rx)
    }

    #[test]
    fn a_collective_that_completes_in_time_is_not_reported() {
        let (w, rx) = watchdog(200);
        for _ in 0..5 {
            w.guard("all_reduce", || {
                std::thread::sleep(Duration::from_millis(50))
            });
        }
        // Idle time between collectives does not count.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(w.guard("barrier", || 7), 7);
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    }

    #[test]
    fn a_collective_that_hangs_is_reported_with_its_name_update_and_timeout() {
        let (w, rx) = watchdog(300);
        let start = Instant::now();
        let message = w.guard("reduce_scatter", || {
            rx.recv_timeout(Duration::from_secs(10)).unwrap()
        });
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(
            message.starts_with("error: rank 1 of 2: reduce_scatter in ")
                && message.contains("has not completed after 0.3 s (DLM_COLLECTIVE_TIMEOUT)"),
            "{message}"
        );
    }

    #[test]
    fn the_timeout_is_read_from_seconds() {
        assert_eq!(
            parse_timeout(None).unwrap(),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(parse_timeout(Some("0")).unwrap(), None);
        assert_eq!(
            parse_timeout(Some(" 2.5 ")).unwrap(),
            Some(Duration::from_millis(2500))
        );
        for bad in ["-1", "soon", "inf"] {
            let e = parse_timeout(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(TIMEOUT_ENV), "{e}");
        }
    }
}
