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

/// Threshold above which [`tune_for_streaming`] has glibc map each block on its own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const STREAMING_MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Settings for a program that streams large buffers through a few threads and keeps little
/// (aggregation): blocks of 1 MiB and more get mappings of their own, returned to the kernel
/// when freed. glibc's default would raise its threshold past them after the first free, and
/// serve them from per-thread arenas that keep what is freed, so memory would grow with the
/// thread count. Call once at start-up instead of [`tune`]; returns whether glibc accepted it.
pub fn tune_for_streaming() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: as in `tune`.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, STREAMING_MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        true
    }
}

/// glibc's tunable that makes malloc ask the kernel for transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`) on the memory it takes for its heaps (glibc 2.35 and later; older
/// versions ignore it).
const HUGE_PAGES_TUNABLE: &str = "glibc.malloc.hugetlb";
/// Where Linux says in which mode it gives transparent huge pages.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THP_MODE_FILE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Starts this program again in place, with glibc's allocator asking for transparent huge
/// pages, when the kernel gives them only to memory that asks (`madvise` mode, Debian's default)
/// and nothing has set the tunable yet. The products' packed panels and the weight slices then
/// sit in 2 MiB pages, and training ran 0–16% faster (median 5%) in six interleaved pairs of
/// Gemma 3 270M runs here, at the same peak RSS (`benches/gemma_train.rs`).
///
/// glibc reads its tunables only when a program starts, so the setting goes into the
/// environment and the program is executed again (`execve` of `/proc/self/exe`): the same
/// process id, arguments, files and working directory, which is all a BOINC client sees. Returns
/// when there is nothing to do or the restart fails; the run then goes on with small pages.
/// Call it first thing in `main`, before any thread starts. Elsewhere than Linux with glibc it
/// does nothing.
pub fn restart_with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mode = std::fs::read_to_string(THP_MODE_FILE).unwrap_or_default();
        if !huge_pages_on_request(&mode) {
            return;
        }
        let current = std::env::var_os("GLIBC_TUNABLES");
        let Some(current) = current.as_ref().map_or(Some(""), |v| v.to_str()) else {
            return;
        };
        let Some(tunables) = with_huge_pages(current) else {
            return;
        };
        // `execve` itself, not `Command::exec`: that goes through `execvp`, which hands a file
        // the kernel cannot run (ENOEXEC: this binary under a user-mode emulator such as
        // qemu-aarch64, whose `/proc/self/exe` is the guest's file) to `/bin/sh` as a script.
        // Here that failure returns, and the run goes on with small pages.
        let _failed = exec_self_with(&tunables);
    }
}

/// Executes `/proc/self/exe` again with the same arguments and environment but
/// `GLIBC_TUNABLES=tunables`. Returns only on failure.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exec_self_with(tunables: &str) -> std::io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |bytes: &[u8]| CString::new(bytes).ok();
    let args: Option<Vec<CString>> = std::env::args_os().map(|a| c(a.as_bytes())).collect();
    let mut env: Option<Vec<CString>> = std::env::vars_os()
        .filter(|(name, _)| name != "GLIBC_TUNABLES")
        .map(|(name, value)| c(&[name.as_bytes(), b"=", value.as_bytes()].concat()))
        .collect();
    if let Some(env) = env.as_mut() {
        env.extend(c(format!("GLIBC_TUNABLES={tunables}").as_bytes()));
    }
    let (Some(args), Some(env)) = (args, env) else {
        return std::io::Error::other("an argument or variable holds a NUL byte");
    };
    let pointers = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv, envp) = (pointers(&args), pointers(&env));
    // The new image starts with no signal blocked and SIGPIPE at its default, as a program
    // started by `Command` does (and as the restart did when it went through `Command::exec`),
    // so the restart changes nothing but the tunable: BOINC's app API, for one, runs its timer
    // on SIGALRM.
    // SAFETY: the path, argv and envp are NUL-terminated strings and NULL-terminated arrays
    // that outlive the call; the signal calls take valid sets. This runs before any other
    // thread exists, and on failure the mask and SIGPIPE's handler are put back as they were.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, &mut before);
        let pipe_handler = libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), envp.as_ptr());
        let error = std::io::Error::last_os_error();
        libc::signal(libc::SIGPIPE, pipe_handler);
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        error
    }
}

/// Whether this process's allocator asks for transparent huge pages (the tunable is set to 1).
pub fn huge_pages_requested() -> bool {
    std::env::var("GLIBC_TUNABLES")
        .is_ok_and(|v| values_of(&v, HUGE_PAGES_TUNABLE).any(|value| value == "1"))
}

/// The values that `tunables` (a `GLIBC_TUNABLES` string: `name=value` entries separated by
/// colons) gives the tunable `name`, in order; an entry without `=` gives an empty value.
fn values_of<'a>(tunables: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    tunables.split(':').filter_map(move |entry| {
        let (n, value) = entry.split_once('=').unwrap_or((entry, ""));
        (n == name).then_some(value)
    })
}

/// Whether the kernel's mode line (`always [madvise] never`) gives huge pages only on request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn huge_pages_on_request(mode: &str) -> bool {
    mode.contains("[madvise]")
}

/// The `GLIBC_TUNABLES` value with the huge-page setting added to `current`, or `None` when
/// `current` already sets it (to any value: a setting someone chose is kept).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn with_huge_pages(current: &str) -> Option<String> {
    if values_of(current, HUGE_PAGES_TUNABLE).next().is_some() {
        return None;
    }
    let setting = format!("{HUGE_PAGES_TUNABLE}=1");
    Some(if current.is_empty() {
        setting
    } else {
        format!("{current}:{setting}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_accepts_the_settings() {
        assert!(tune());
    }

    /// The setting is added beside others, and a value already set (even 0) is left alone.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_huge_page_setting_is_added_once() {
        assert_eq!(
            with_huge_pages("").as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            with_huge_pages("glibc.malloc.arena_max=2").as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
        );
        assert_eq!(with_huge_pages("glibc.malloc.hugetlb=1"), None);
        assert_eq!(with_huge_pages("glibc.malloc.hugetlb=0:glibc.x=1"), None);
        assert_eq!(
            with_huge_pages("glibc.malloc.hugetlbx=1").as_deref(),
            Some("glibc.malloc.hugetlbx=1:glibc.malloc.hugetlb=1")
        );
    }

    /// Only the `madvise` mode needs the request: `always` gives huge pages anyway, `never`
    /// refuses them.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn only_the_madvise_mode_asks_for_the_restart() {
        assert!(huge_pages_on_request("always [madvise] never\n"));
        assert!(!huge_pages_on_request("[always] madvise never\n"));
        assert!(!huge_pages_on_request("always madvise [never]\n"));
        assert!(!huge_pages_on_request(""));
    }
}
