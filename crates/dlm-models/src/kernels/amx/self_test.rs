//! The AMX kernel checked on the machine before the process trusts it. CPUID and Linux's
//! permission say the tiles exist; they cannot say that this kernel computes the right
//! numbers on them, nor that the instructions do not fault (a hypervisor that reports AMX
//! but does not save tile state, say). So [`kernels::start`](super::super::start) runs two
//! small products on the real tiles in a forked child process (A in place and packed, bias,
//! partial row and column blocks) and compares them with an f64 reference: a wrong result or a child
//! killed by a signal keeps the process at `avx512bf16`, and `dlm inspect --system` says
//! why. The child is forked while the process has one thread (`start` runs first in
//! `main`), and computes on that thread only.

use super::super::bf16_gemm::{Dst, Operand, View};
use super::super::dispatch::AmxCheck;
use half::bf16;

/// A bf16 product `C[m, n] = A · Bᵀ + bias` (views as in `bf16_gemm::gemm`), on one thread.
pub(crate) type Product = unsafe fn(View, Operand, (usize, usize, usize), Dst, Option<&[bf16]>, bool);

/// `Ok` when `product` gives the f64 reference rounded to bf16, within one bf16 rounding
/// of the f32 sums, on two shapes: A read in place (K = 96, a multiple of 32) and A packed
/// (K = 70); neither M nor N fills its last block.
///
/// # Safety
/// `product` must be safe to call on this CPU.
pub(crate) unsafe fn products_agree(product: Product) -> Result<(), String> {
    for (m, k, n) in [(67, 96, 80), (33, 70, 17)] {
        let value = |i: usize, seed: usize| bf16::from_f32(((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0);
        let a: Vec<bf16> = (0..m * k).map(|i| value(i, 1)).collect(); // [m, k]
        let b: Vec<bf16> = (0..n * k).map(|i| value(i, 2)).collect(); // [n, k]
        let bias: Vec<bf16> = (0..n).map(|i| value(i, 3)).collect();
        let mut c = vec![bf16::NAN; m * n];
        // SAFETY: the views address m x k and n x k elements of `a` and `b`; `c` holds m x n;
        // the caller vouches for `product`.
        unsafe {
            let (av, bv) = (View { ptr: a.as_ptr(), rs: k, cs: 1 }, View { ptr: b.as_ptr(), rs: k, cs: 1 });
            product(av, Operand::View(bv), (m, n, k), Dst::Bf16(c.as_mut_ptr()), Some(&bias), false);
        }
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = bias[j].to_f64() + (0..k).map(|l| a[i * k + l].to_f64() * b[j * k + l].to_f64()).sum::<f64>();
                let got = c[i * n + j].to_f64();
                // One bf16 rounding (2^-8 relative) plus the f32 sums' order; NaN fails.
                let close = (got - exact).abs() <= exact.abs() / 128.0 + 1e-3;
                if !close {
                    return Err(format!("{m}x{k}x{n} product: C[{i}, {j}] = {got}, expected {exact:.6}"));
                }
            }
        }
    }
    Ok(())
}

/// Runs [`products_agree`] in a forked child and reports what it found: passed, a wrong
/// product, or the signal that killed the child.
///
/// # Safety
/// The process must have one thread (the child may allocate and must not wait on others);
/// `product` must be one the CPU claims to run.
#[cfg(target_os = "linux")]
pub(crate) unsafe fn in_child(product: Product) -> AmxCheck {
    // SAFETY: one thread (the caller's promise), so the child's copy of the process is
    // consistent; the child only computes, writes a line to a pipe and exits.
    unsafe {
        let mut fds = [0i32; 2];
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            return AmxCheck::Failed(format!("could not start the check: pipe: {}", std::io::Error::last_os_error()));
        }
        match libc::fork() {
            -1 => {
                let err = std::io::Error::last_os_error();
                libc::close(fds[0]);
                libc::close(fds[1]);
                AmxCheck::Failed(format!("could not start the check: fork: {err}"))
            }
            0 => {
                libc::close(fds[0]);
                // A fault must not leave a core file behind.
                libc::setrlimit(libc::RLIMIT_CORE, &libc::rlimit { rlim_cur: 0, rlim_max: 0 });
                let message = products_agree(product).err().unwrap_or_default();
                libc::write(fds[1], message.as_ptr().cast(), message.len());
                libc::_exit(if message.is_empty() { 0 } else { 1 })
            }
            child => {
                libc::close(fds[1]);
                let mut message = Vec::new();
                let mut buf = [0u8; 256];
                loop {
                    let got = libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len());
                    if got <= 0 {
                        break;
                    }
                    message.extend_from_slice(&buf[..got as usize]);
                }
                libc::close(fds[0]);
                let mut status = 0;
                if libc::waitpid(child, &mut status, 0) != child {
                    return AmxCheck::Failed(format!("could not wait for the check: {}", std::io::Error::last_os_error()));
                }
                if libc::WIFSIGNALED(status) {
                    let signal = libc::WTERMSIG(status);
                    AmxCheck::Failed(format!("the tile instructions killed the check with signal {signal}"))
                } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                    AmxCheck::Passed
                } else {
                    AmxCheck::Failed(String::from_utf8_lossy(&message).into_owned())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tile_model::TileModel;
    use super::*;

    /// The AMX driver on the tile model: right.
    unsafe fn model(a: View, b: Operand, dims: (usize, usize, usize), c: Dst, bias: Option<&[bf16]>, parallel: bool) {
        unsafe { super::super::gemm_on(|| TileModel::new(&super::super::CONFIG), None, a, b, dims, c, bias, parallel) }
    }

    /// The model, with the last column of every row wrong.
    unsafe fn wrong(a: View, b: Operand, (m, n, k): (usize, usize, usize), c: Dst, bias: Option<&[bf16]>, parallel: bool) {
        unsafe {
            model(a, b, (m, n, k), c, bias, parallel);
            let Dst::Bf16(c) = c else { unreachable!("the check's products are bf16") };
            for i in 0..m {
                *c.add(i * n + n - 1) = bf16::from_f32(100.0);
            }
        }
    }

    /// A kernel whose instructions fault.
    unsafe fn faults(_: View, _: Operand, _: (usize, usize, usize), _: Dst, _: Option<&[bf16]>, _: bool) {
        unsafe { std::arch::asm!("ud2", options(nostack, nomem, noreturn)) }
    }

    #[test]
    fn a_right_kernel_passes_and_a_wrong_one_is_named() {
        // SAFETY: the model and `wrong` run on any CPU.
        unsafe {
            assert_eq!(products_agree(model), Ok(()));
            let err = products_agree(wrong).unwrap_err();
            assert!(err.contains("C[0, 79]") && err.contains("= 100"), "{err}");
        }
    }

    /// The child reports a pass, a wrong product (with its message) and a fault (SIGILL)
    /// to the parent, which lives on. (The test harness has other threads; glibc's fork
    /// leaves the child's allocator usable, and the child starts no threads.)
    #[test]
    #[cfg(target_os = "linux")]
    fn the_child_reports_passes_wrong_products_and_faults() {
        // SAFETY: the functions run on any x86-64 CPU (`faults` kills only the child).
        unsafe {
            assert_eq!(in_child(model), AmxCheck::Passed);
            match in_child(wrong) {
                AmxCheck::Failed(why) => assert!(why.contains("C[0, 79]"), "{why}"),
                other => panic!("{other:?}"),
            }
            match in_child(faults) {
                AmxCheck::Failed(why) => assert!(why.contains(&format!("signal {}", libc::SIGILL)), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
