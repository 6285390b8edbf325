//! The runtime's messages on the task's stderr, in the form BOINC's own library writes them.

/// Writes `message` to stderr with the library's prefix, `HH:MM:SS (pid):` in local time.
pub(crate) fn log(message: &str) {
    let now = local_hms();
    eprintln!("{now} ({}): {message}", std::process::id());
}

/// The local wall-clock time as `HH:MM:SS`.
fn local_hms() -> String {
    // SAFETY: `time(NULL)` only reads the clock.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: all-zero is a valid `tm`, which `localtime_r` fills from a valid `time_t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; `localtime_r` is thread-safe.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return "??:??:??".to_string();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}
