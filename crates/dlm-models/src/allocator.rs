//! Keeping freed memory in the process. A training step allocates and frees many large
//! activation buffers; with glibc's defaults each one above the dynamic mmap threshold is
//! mapped fresh and unmapped on free, so the kernel zeroes its pages again on every step
//! (17% of a BERT-base training step in ../shared/notes/PROFILE.md). Raising the mmap
//! threshold to its maximum (32 MiB) and never trimming the heap makes freed buffers
//! reusable without page faults.

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
}
