//! What the CPU and the operating system offer the kernels, probed once per process.
//!
//! AVX-512 and AVX2 come from `is_x86_feature_detected!`. AMX cannot: its names are
//! unstable in `std_detect` on stable Rust, so it is read from CPUID leaf 7 (EDX bit 22
//! AMX-BF16, bit 24 AMX-TILE) and XCR0 (bits 17 XTILECFG and 18 XTILEDATA: the OS saves
//! tile state). On Linux a process must also ask for the 8 KiB tile state before its first
//! tile instruction: `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, which the probe
//! does; without that permission the first tile instruction kills the process (SIGILL).

use serde::Serialize;
use std::sync::OnceLock;

/// Instruction-set extensions found on this CPU (all false off x86-64).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Features {
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512dq: bool,
    pub avx512vl: bool,
    pub avx512bf16: bool,
    /// CPUID says AMX-TILE.
    pub amx_tile: bool,
    /// CPUID says AMX-BF16.
    pub amx_bf16: bool,
    /// The OS saves tile state (XCR0) and, on Linux, granted this process the tile data
    /// permission. `false` when the CPU has no AMX.
    pub amx_permitted: bool,
    /// The vendor is AMD (CPUID leaf 0 "AuthenticAMD"). AMD's AVX512-BF16 (Zen 4 on)
    /// retires a 512-bit `vdpbf16ps` per cycle per core, twice the f32 FMA rate; Intel's
    /// (without AMX) runs it at half the f32 FMA rate.
    pub amd: bool,
}

impl Features {
    /// The names of the extensions present, as `/proc/cpuinfo` spells them.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.avx2, "avx2"),
            (self.fma, "fma"),
            (self.avx512f, "avx512f"),
            (self.avx512bw, "avx512bw"),
            (self.avx512dq, "avx512dq"),
            (self.avx512vl, "avx512vl"),
            (self.avx512bf16, "avx512_bf16"),
            (self.amx_tile, "amx_tile"),
            (self.amx_bf16, "amx_bf16"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect()
    }
}

/// The features of this CPU. The first call asks Linux for AMX permission when the CPU
/// has AMX (a process-wide setting that every thread then shares).
pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(probe)
}

#[cfg(target_arch = "x86_64")]
fn probe() -> Features {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 7 reads as zeros where unsupported.
    let leaf7 = __cpuid_count(7, 0);
    let amx_tile = leaf7.edx >> 24 & 1 == 1;
    let amx_bf16 = leaf7.edx >> 22 & 1 == 1;
    let leaf0 = __cpuid_count(0, 0);
    let vendor = [leaf0.ebx, leaf0.edx, leaf0.ecx].map(u32::to_le_bytes).concat();
    Features {
        avx2: is_x86_feature_detected!("avx2"),
        fma: is_x86_feature_detected!("fma"),
        avx512f: is_x86_feature_detected!("avx512f"),
        avx512bw: is_x86_feature_detected!("avx512bw"),
        avx512dq: is_x86_feature_detected!("avx512dq"),
        avx512vl: is_x86_feature_detected!("avx512vl"),
        avx512bf16: is_x86_feature_detected!("avx512bf16"),
        amx_tile,
        amx_bf16,
        amx_permitted: amx_tile && amx_bf16 && os_saves_tiles() && request_tile_permission(),
        amd: vendor == b"AuthenticAMD",
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe() -> Features {
    Features::default()
}

/// XCR0 bits 17 and 18 (XTILECFG, XTILEDATA): the OS context-switches tile state.
#[cfg(target_arch = "x86_64")]
fn os_saves_tiles() -> bool {
    if !is_x86_feature_detected!("xsave") {
        return false;
    }
    let osxsave = std::arch::x86_64::__cpuid_count(1, 0).ecx >> 27 & 1 == 1;
    if !osxsave {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is enabled.
    let xcr0 = unsafe { xcr0() };
    xcr0 >> 17 & 3 == 3
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, then `ARCH_GET_XCOMP_PERM` to
/// read the granted set back. Linux ≥ 5.16; older kernels answer EINVAL (no AMX).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_permission() -> bool {
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes only reads/writes the u64 we pass.
    unsafe {
        if libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0 {
            return false;
        }
        let mut granted: u64 = 0;
        libc::syscall(libc::SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &mut granted as *mut u64) == 0
            && granted >> XFEATURE_XTILEDATA & 1 == 1
    }
}

/// Elsewhere the OS grants tile state through XCR0 alone.
#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
fn request_tile_permission() -> bool {
    true
}

/// The CPU's model name from `/proc/cpuinfo` ("unknown" where there is none).
pub fn model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPUID's AMX bits agree with the kernel's view in /proc/cpuinfo, and the AVX flags
    /// with std's detection (a check that the bit numbers above are right).
    #[test]
    fn features_agree_with_proc_cpuinfo() {
        let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
            println!("skipped: no /proc/cpuinfo");
            return;
        };
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let f = features();
        let names = [
            "avx2",
            "fma",
            "avx512f",
            "avx512bw",
            "avx512dq",
            "avx512vl",
            "avx512_bf16",
            "amx_tile",
            "amx_bf16",
        ];
        for name in names {
            assert_eq!(f.names().contains(&name), flags.contains(&name), "{name}");
        }
        assert!(!f.amx_permitted || (f.amx_tile && f.amx_bf16));
    }
}
