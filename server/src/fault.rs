//! Fault injection for the crash tests: with `AGINET_KILL_AT=<point>` in its environment, the
//! process sends itself SIGKILL when it reaches the named point, exactly as an operator's
//! `kill -9` or a power cut would stop it there: no destructor, no flush, no clean-up.
//!
//! The points are named where they are placed; a name nobody placed simply never fires.

/// The environment variable naming the point to die at.
pub const KILL_AT: &str = "AGINET_KILL_AT";

/// Dies by SIGKILL if `point` is the one named in [`KILL_AT`].
pub fn point(point: &str) {
    if std::env::var_os(KILL_AT).is_some_and(|p| p == point) {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        // SIGKILL cannot be caught, so this is never reached; wait for it rather than go on.
        loop {
            std::thread::park();
        }
    }
}
