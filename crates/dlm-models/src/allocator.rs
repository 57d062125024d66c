//! Keeping freed memory in the process. A training step allocates and frees many large
//! activation buffers; with glibc's defaults each one above the dynamic mmap threshold is
//! mapped fresh and unmapped on free, so the kernel zeroes its pages again on every step
//! (17% of a BERT-base training step in ../shared/notes/PROFILE.md), and every unmap
//! interrupts the other cores to flush their TLBs. Two measures:
//! - [`keep_freed_pages`] raises glibc's mmap threshold to its maximum (32 MiB) and never
//!   trims the heap, so freed buffers up to 32 MiB are reused without page faults;
//! - [`KeepLarge`], the global allocator of dlm's binaries, keeps freed blocks of 32 MiB
//!   and more (vocabulary logits and their gradients: `[rows, V]`) for the next request
//!   of the same size class (8 per octave), up to [`KEPT_BYTES`] and 64 blocks, the
//!   oldest released first, once `keep_freed_pages`
//!   has switched it on.
//!
//! [`KeepLarge`] also starts every block of [`ALIGNED_FROM`] bytes and more on a 64-byte
//! cache line. glibc's malloc returns 16 bytes past a line, so every 64-byte row that an
//! AMX tile load or an AVX-512 load reads from a tensor or a packed operand straddled two
//! lines: on an AMX Xeon VM a 32 x 32 x 768 tile block ran at half the rate on such rows
//! (docs/performance.md).

/// Tells glibc's malloc to keep freed pages (a no-op on other C libraries, and when
/// `DLM_KEEP_PAGES=0`, for before/after measurements). Call once, early in `main`,
/// before large allocations.
pub fn keep_freed_pages() {
    if std::env::var("DLM_KEEP_PAGES").is_ok_and(|v| v == "0") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    if let Ok(mut free) = FREE.lock() {
        free.0.reserve(KEPT_BLOCKS); // the list never allocates while the allocator runs
    }
    KEEP.store(true, Ordering::Relaxed);
}

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Smallest block [`KeepLarge`] starts on a cache line.
pub const ALIGNED_FROM: usize = 4096;
/// A cache line, and AMX's tile row.
const LINE: usize = 64;

/// Smallest block [`KeepLarge`] keeps (glibc's largest mmap threshold).
const LARGE: usize = 32 << 20;
/// Size classes per octave: a large block is rounded up to the next of 8 steps per power
/// of two (≤ 12.5% more), so the `[rows, V]` buffers of steps whose row counts differ a
/// little (the masked positions of a training batch) share blocks.
const CLASSES_PER_OCTAVE: usize = 8;
/// Most blocks [`KeepLarge`] keeps unused (the list never grows while the allocator runs).
const KEPT_BLOCKS: usize = 64;
/// Most bytes [`KeepLarge`] keeps unused.
pub const KEPT_BYTES: usize = 4 << 30;

static KEEP: AtomicBool = AtomicBool::new(false);
/// Free blocks (class layout, address), oldest first, and their total size.
static FREE: Mutex<(Vec<(Layout, usize)>, usize)> = Mutex::new((Vec::new(), 0));

/// The system allocator, except that freed blocks of 32 MiB and more are kept for reuse
/// (see the module docs). Install it with `#[global_allocator]` in a binary.
pub struct KeepLarge;

impl KeepLarge {
    /// The layout a request is served with: a block of [`ALIGNED_FROM`] bytes and more at
    /// least line-aligned (the same for a block's allocation and its release).
    fn lined(layout: Layout) -> Layout {
        if layout.size() >= ALIGNED_FROM { layout.align_to(LINE).unwrap_or(layout) } else { layout }
    }

    /// The block layout of a large request: its size rounded up to the size class (large
    /// blocks always have it, kept or not, so any large block may serve its class).
    fn class(layout: Layout) -> Option<Layout> {
        let size = layout.size();
        let step = size.next_power_of_two() / (2 * CLASSES_PER_OCTAVE);
        (size >= LARGE && layout.align() <= 4096).then(|| Layout::from_size_align(size.div_ceil(step) * step, layout.align()).ok()).flatten()
    }

    /// A kept block of `class`'s size whose address meets `class`'s alignment (blocks
    /// are kept whatever alignment they were allocated with).
    fn take(class: Layout) -> Option<*mut u8> {
        let (size, align) = (class.size(), class.align());
        let mut free = FREE.lock().ok()?;
        let i = free.0.iter().position(|&(kept, addr)| kept.size() == size && addr % align == 0)?;
        let (_, addr) = free.0.swap_remove(i);
        free.1 -= size;
        Some(addr as *mut u8)
    }
}

// SAFETY: every block comes from `System` with the class layout it is freed with; kept
// blocks are handed out once (under the lock) and only for requests of their class.
unsafe impl GlobalAlloc for KeepLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let layout = Self::lined(layout);
        match Self::class(layout) {
            // SAFETY: a class layout has a non-zero size.
            Some(class) => Self::take(class).unwrap_or_else(|| unsafe { System.alloc(class) }),
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let layout = Self::lined(layout);
        match Self::class(layout) {
            Some(class) => match Self::take(class) {
                Some(p) => {
                    // SAFETY: the kept block holds at least layout.size() bytes.
                    unsafe { p.write_bytes(0, layout.size()) };
                    p
                }
                // SAFETY: a class layout has a non-zero size.
                None => unsafe { System.alloc_zeroed(class) },
            },
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let layout = Self::lined(layout);
        let Some(class) = Self::class(layout) else {
            // SAFETY: allocated by System with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        if let Some(mut free) = KEEP.load(Ordering::Relaxed).then(|| FREE.lock().ok()).flatten() {
            if class.size() <= KEPT_BYTES {
                // Make room by releasing the oldest kept blocks: recent sizes recur.
                while free.0.len() >= KEPT_BLOCKS || free.1 + class.size() > KEPT_BYTES {
                    let (old, addr) = free.0.remove(0);
                    free.1 -= old.size();
                    // SAFETY: a kept block, allocated by System with this class layout.
                    unsafe { System.dealloc(addr as *mut u8, old) };
                }
                free.0.push((class, ptr as usize));
                free.1 += class.size();
                return;
            }
        }
        // SAFETY: allocated by System with the class layout.
        unsafe { System.dealloc(ptr, class) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept-block list is the process's: tests that free large blocks take turns.
    static TURN: Mutex<()> = Mutex::new(());

    #[test]
    fn large_blocks_are_kept_and_reused_zeroed_on_request() {
        let _turn = TURN.lock();
        keep_freed_pages();
        let (a, b) = (Layout::from_size_align(LARGE + 5, 64).unwrap(), Layout::from_size_align(LARGE + 1000, 64).unwrap());
        // SAFETY: layouts are non-zero; every block is freed with the layout it was
        // allocated with; writes stay inside the blocks.
        unsafe {
            let p = KeepLarge.alloc(a);
            p.write_bytes(7, a.size());
            KeepLarge.dealloc(p, a);
            // Same size class (36 MiB): the kept block comes back, zeroed when asked.
            let q = KeepLarge.alloc_zeroed(b);
            assert_eq!(p, q);
            assert!(std::slice::from_raw_parts(q, b.size()).iter().all(|&x| x == 0));
            KeepLarge.dealloc(q, b);
            // Another class: a fresh block.
            let c = Layout::from_size_align(LARGE + (4 << 20) + 1, 64).unwrap();
            let r = KeepLarge.alloc(c);
            assert_ne!(r, p);
            KeepLarge.dealloc(r, c);
            // A kept block is only reused where its address meets the request's alignment.
            let (plain, aligned) = (Layout::from_size_align(LARGE, 4).unwrap(), Layout::from_size_align(LARGE, 4096).unwrap());
            let u = KeepLarge.alloc(plain);
            KeepLarge.dealloc(u, plain);
            let v = KeepLarge.alloc(aligned);
            assert_eq!(v as usize % 4096, 0, "a block for a 4096-aligned request is 4096-aligned");
            assert!(u as usize % 4096 == 0 || v != u);
            KeepLarge.dealloc(v, aligned);
            // A full list releases its oldest blocks first (never touched: no memory used).
            let blocks: Vec<*mut u8> = (0..66).map(|_| KeepLarge.alloc(plain)).collect();
            for &p in &blocks {
                KeepLarge.dealloc(p, plain);
            }
            let kept: Vec<usize> = FREE.lock().unwrap().0.iter().map(|&(_, addr)| addr).collect();
            assert_eq!(kept.len(), KEPT_BLOCKS);
            assert!(kept.contains(&(blocks[65] as usize)) && !kept.contains(&(blocks[0] as usize)));
            // Small blocks are the system's.
            let s = Layout::from_size_align(64, 8).unwrap();
            let t = KeepLarge.alloc(s);
            KeepLarge.dealloc(t, s);
        }
    }

    /// Blocks of 4 KiB and more start on a 64-byte line, however they are allocated, and
    /// one grown past 4 KiB (`realloc`) moves to a line with its contents.
    #[test]
    fn blocks_of_a_page_and_more_start_on_a_line() {
        let _turn = TURN.lock();
        // SAFETY: every block is freed (or grown) with the layout it was allocated with.
        unsafe {
            for size in [ALIGNED_FROM, ALIGNED_FROM + 16, 1 << 20, LARGE + 3] {
                let l = Layout::from_size_align(size, 2).unwrap();
                let (p, q) = (KeepLarge.alloc(l), KeepLarge.alloc_zeroed(l));
                assert_eq!((p as usize % LINE, q as usize % LINE), (0, 0), "{size} bytes");
                KeepLarge.dealloc(p, l);
                KeepLarge.dealloc(q, l);
            }
            let small = Layout::from_size_align(100, 2).unwrap();
            let p = KeepLarge.alloc(small);
            p.write_bytes(9, 100);
            let q = KeepLarge.realloc(p, small, 3 * ALIGNED_FROM);
            assert_eq!(q as usize % LINE, 0);
            assert!(std::slice::from_raw_parts(q, 100).iter().all(|&x| x == 9));
            KeepLarge.dealloc(q, Layout::from_size_align(3 * ALIGNED_FROM, 2).unwrap());
        }
    }
}
