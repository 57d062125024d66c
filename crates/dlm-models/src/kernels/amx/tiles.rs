//! The five AMX tile instructions the GEMM uses, behind a trait so that the driver runs
//! on the real registers ([`AmxTiles`], inline `asm!`: stable Rust has no AMX intrinsics)
//! or on a scalar model of them (`tile_model`, for tests on CPUs without AMX).
//!
//! Tile numbers are const generics because the instructions encode them in the opcode.

use std::arch::asm;

/// Bytes in one tile row (16 f32, or 16 pairs of bf16).
pub(super) const ROW_BYTES: usize = 64;
/// Rows in one tile.
pub(super) const ROWS: usize = 16;

/// The tile configuration `LDTILECFG` loads: palette 1, all eight tiles 16 rows x 64
/// bytes. Layout (Intel SDM vol. 1, 18.2): byte 0 palette, byte 1 start row, bytes
/// 16 + 2t colsb of tile t (u16), byte 48 + t rows of tile t.
pub(crate) const CONFIG: [u8; 64] = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = ROW_BYTES as u8;
        c[48 + t] = ROWS as u8;
        t += 1;
    }
    c
};

/// Tile registers configured with [`CONFIG`].
pub(crate) trait Tiles {
    /// `TILEZERO tmm{T}`.
    ///
    /// # Safety
    /// The tiles must be usable on this thread (see the implementor).
    unsafe fn zero<const T: u8>(&mut self);

    /// `TILELOADD tmm{T}, [src + stride]`: row `r` from `src + r * stride` bytes.
    ///
    /// # Safety
    /// As [`Tiles::zero`]; `src` must be readable for 16 rows of 64 bytes at `stride`.
    unsafe fn load<const T: u8>(&mut self, src: *const u8, stride: usize);

    /// `TDPBF16PS tmm{C}, tmm{A}, tmm{B}`: `C[16 x 16 f32] += A[16 x 16 bf16 pairs] ·
    /// B[16 pairs x 16 columns]`, each pair's two products summed into the f32 lane.
    ///
    /// # Safety
    /// As [`Tiles::zero`]; C, A and B must be distinct.
    unsafe fn dot_bf16<const C: u8, const A: u8, const B: u8>(&mut self);

    /// `TILESTORED [dst + stride], tmm{T}`.
    ///
    /// # Safety
    /// As [`Tiles::zero`]; `dst` must be writable for 16 rows of 64 bytes at `stride`.
    unsafe fn store<const T: u8>(&mut self, dst: *mut u8, stride: usize);
}

/// The real tile registers of the calling thread, configured on creation and released
/// (`TILERELEASE`) on drop. Not `Send`: the configuration belongs to one thread.
pub(super) struct AmxTiles(std::marker::PhantomData<*const ()>);

impl AmxTiles {
    /// # Safety
    /// The CPU must have AMX-TILE and AMX-BF16 and the OS must have granted this process
    /// tile state (kernel level `amx`); nothing else on this thread may use tiles until
    /// the value is dropped.
    pub(super) unsafe fn new() -> Self {
        // SAFETY: as the caller promised; CONFIG is a valid palette-1 configuration.
        unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.as_ptr(), options(nostack, readonly)) };
        AmxTiles(std::marker::PhantomData)
    }
}

impl Drop for AmxTiles {
    fn drop(&mut self) {
        // SAFETY: `new` succeeded on this thread, so the CPU has AMX.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

impl Tiles for AmxTiles {
    unsafe fn zero<const T: u8>(&mut self) {
        unsafe { asm!("tilezero tmm{t}", t = const T, options(nostack, nomem)) };
    }

    unsafe fn load<const T: u8>(&mut self, src: *const u8, stride: usize) {
        unsafe {
            asm!("tileloadd tmm{t}, [{p} + {s}*1]", t = const T, p = in(reg) src, s = in(reg) stride,
                options(nostack, readonly))
        };
    }

    unsafe fn dot_bf16<const C: u8, const A: u8, const B: u8>(&mut self) {
        unsafe {
            asm!("tdpbf16ps tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B, options(nostack, nomem))
        };
    }

    unsafe fn store<const T: u8>(&mut self, dst: *mut u8, stride: usize) {
        unsafe {
            asm!("tilestored [{p} + {s}*1], tmm{t}", t = const T, p = in(reg) dst, s = in(reg) stride,
                options(nostack))
        };
    }
}
