//! `DLM_NUM_THREADS`: one thread count for every pool dlm's CPU work runs on.
//!
//! There are two pools, and both get the same count:
//! - rayon's global pool runs the bf16 GEMM kernels, the custom ops and candle's f32 GEMM
//!   (the `gemm` crate spreads its work over the current rayon pool);
//! - candle 0.11 runs its elementwise, unary and reduction maps on a private "barrier
//!   pool" of its own OS threads, sized from `CANDLE_NUM_THREADS`, else
//!   `RAYON_NUM_THREADS`, else the number of physical cores; its workers spin up to
//!   `CANDLE_BARRIER_POOL_SPIN_LIMIT` (25,000) iterations after each map before parking.
//!   That pool cannot be merged into rayon's from outside candle; the count is set
//!   through its environment variables before candle reads them.
//!
//! Without `DLM_NUM_THREADS`, rayon's pool takes candle's count (physical cores, or
//! `RAYON_NUM_THREADS`), rather than rayon's own default of every logical CPU.

use super::dispatch::KernelError;

/// The environment variable that sets the thread count.
pub const THREADS_VAR: &str = "DLM_NUM_THREADS";

/// Sizes rayon's global pool and candle's elementwise pool from `DLM_NUM_THREADS` (or
/// candle's default count), and returns the count. Call it once, before anything uses
/// rayon: its global pool cannot be rebuilt, and a second call is an error.
///
/// # Safety
/// It sets environment variables, so no other thread may read or write the environment
/// meanwhile: call it first thing in `main`, before any thread starts.
pub unsafe fn configure_threads() -> Result<usize, KernelError> {
    let wanted = match std::env::var(THREADS_VAR) {
        Ok(v) => parse_threads(&v)?,
        Err(_) => candle_core::utils::get_num_threads(),
    };
    // Set even when the count is candle's default: unset, candle counts the physical
    // cores by reading /proc/cpuinfo again on every matrix product (2% of a training step).
    // SAFETY: the caller guarantees that no other thread touches the environment.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", wanted.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", wanted.to_string());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(wanted)
        .build_global()
        .map_err(|e| KernelError::ThreadPool(e.to_string()))?;
    Ok(wanted)
}

/// What a program computing with dlm's kernels does first in `main` (`dlm` itself and the
/// benchmark examples, so both run alike): the allocator keeps its freed pages
/// ([`crate::allocator::keep_freed_pages`]), the AMX kernel is checked on the machine
/// where the CPU offers AMX (`amx/self_test.rs`), every pool gets one thread count
/// ([`configure_threads`]), and the kernel level is decided ([`super::init`]).
///
/// # Safety
/// As [`configure_threads`]: first thing in `main`, before any thread starts.
pub unsafe fn start() -> Result<super::Level, KernelError> {
    crate::allocator::keep_freed_pages();
    // SAFETY (both): the caller's promise; the AMX check forks, so it runs before the
    // pools start their threads.
    unsafe { super::dispatch::check_amx() };
    unsafe { configure_threads() }?;
    super::init()
}

fn parse_threads(value: &str) -> Result<usize, KernelError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| KernelError::BadThreads { value: value.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_parse_or_are_refused() {
        assert_eq!(parse_threads(" 3 ").unwrap(), 3);
        for bad in ["0", "-1", "two", ""] {
            let err = parse_threads(bad).unwrap_err().to_string();
            assert!(
                err.contains("DLM_NUM_THREADS") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }
}
