//! Worker thread count for the numeric kernels.
//!
//! candle sizes its thread pools from `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` the first time
//! it computes anything, so the count must be set before any tensor work, once per process.
//!
//! All the work runs on rayon's pool of `threads` threads: the products, the head's vocabulary
//! parts, and the parts of a batch ([`crate::learn::micro_batch`]), each part's element-wise ops on the
//! thread that runs the part. candle 0.11 also splits large element-wise ops over a pool of its
//! own (`CANDLE_NUM_THREADS − 1` spinning threads beside rayon's, one caller at a time behind a
//! lock); with parts running side by side, those threads spin on cores rayon's threads need and
//! one part waits on the other's lock. That pool is kept empty. On Gemma 3 270M, 2 threads:
//! training 106–115 tok/s as one graph with candle's pool, 132–143 in two parts without it.

/// Sets the thread count of every pool the numeric work will use. Call before any tensor
/// operation, while the process is still single-threaded.
pub fn configure(threads: usize) {
    let n = threads.max(1).to_string();
    // Setting the environment is sound here: the caller runs this before spawning any thread.
    std::env::set_var("RAYON_NUM_THREADS", &n);
    // candle's own element-wise pool gets no threads of its own (see the module doc).
    std::env::set_var("CANDLE_NUM_THREADS", "1");
}

/// Cores this process may use.
pub fn available() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
