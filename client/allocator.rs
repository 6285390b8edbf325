//! The C allocator's settings for this workload.
//!
//! Training and evaluation allocate and free buffers of a few MiB to 16 MiB many times a step
//! (a slice of dequantized weights, a slice of logits, activations). glibc serves blocks above
//! its mmap threshold (128 KiB at start, raised only as large blocks are freed) with fresh
//! `mmap`s, and gives the top of the heap back to the kernel whenever 128 KiB are free there, so
//! the same memory was faulted in and zeroed by the kernel again and again: about 8% of an
//! evaluation in page faults. With the threshold at glibc's maximum (32 MiB) and the heap kept
//! up to 256 MiB past its top, those buffers are reused. Gemma evaluation went from 139 to 191
//! tokens/s and training from 92 to 100 on 2 threads here, with the same peak RSS
//! (`benches/gemma_train.rs`).

/// glibc's largest mmap threshold on 64-bit targets (`DEFAULT_MMAP_THRESHOLD_MAX`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Free memory kept at the top of the heap before it is returned to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;

/// Applies the settings (glibc only; elsewhere a no-op). Call once, at start-up, before the
/// numeric work. Returns whether every setting was accepted.
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocator parameters; it is called before the
        // numeric threads start and has no memory-safety preconditions.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_settings() {
        assert!(super::tune());
    }
}
