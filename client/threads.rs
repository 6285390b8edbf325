//! Worker thread count for the numeric kernels.
//!
//! candle sizes its thread pools from `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` the first time
//! it computes anything, so the count must be set before any tensor work, once per process.

/// Sets the thread count of every pool candle will create. Call before any tensor operation,
/// while the process is still single-threaded.
pub fn configure(threads: usize) {
    let n = threads.max(1).to_string();
    // Setting the environment is sound here: the caller runs this before spawning any thread.
    std::env::set_var("RAYON_NUM_THREADS", &n);
    std::env::set_var("CANDLE_NUM_THREADS", &n);
}

/// Cores this process may use.
pub fn available() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
