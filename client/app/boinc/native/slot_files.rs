//! The slot directory's small files: `<soft_link>` name files, the slot lock, the finish and
//! temporary-exit files the client reads after the app exits, and `stderr.txt`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The slot lock (BOINC's `LOCKFILE`).
pub const LOCK_FILE: &str = "boinc_lockfile";
/// Written by a finishing app (BOINC's `BOINC_FINISH_CALLED_FILE`).
pub const FINISH_FILE: &str = "boinc_finish_called";
/// Written by an app that asks to be restarted later (BOINC's `TEMPORARY_EXIT_FILE`).
pub const TEMPORARY_EXIT_FILE: &str = "boinc_temporary_exit";
/// Where stderr goes, appended (the client keeps its tail with the result).
pub const STDERR_FILE: &str = "stderr.txt";

/// The longest first line read from a name file (the client's soft links are one short line).
const LINK_LINE_MAX: u64 = 4096;

/// The physical path of `logical` in `slot`: the target of its `<soft_link>` file (relative to
/// the slot, as the client writes it), else the name itself (standalone, or a real file or
/// symlink).
pub fn resolve(slot: &Path, logical: &str) -> io::Result<PathBuf> {
    let path = slot.join(logical);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(path),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() || !meta.is_file() {
        return Ok(path);
    }
    let mut line = Vec::new();
    BufReader::new(File::open(&path)?.take(LINK_LINE_MAX)).read_until(b'\n', &mut line)?;
    let line = String::from_utf8_lossy(&line);
    match soft_link_target(&line) {
        Some(target) => Ok(slot.join(target)),
        None => Ok(path),
    }
}

/// The target named by a `<soft_link>` line, XML-unescaped, if the line holds one.
fn soft_link_target(line: &str) -> Option<String> {
    const TAG: &str = "<soft_link>";
    let start = line.find(TAG)? + TAG.len();
    let rest = &line[start..];
    let end = rest.find('<').unwrap_or(rest.len());
    let raw = rest[..end].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A held slot lock: a whole-file POSIX write lock on `boinc_lockfile`, kept for the process's
/// life, released (and the file removed) on [`SlotLock::release`].
pub struct SlotLock {
    file: File,
    path: PathBuf,
}

impl SlotLock {
    /// Takes the lock in `slot` without waiting; `Ok(None)` if another process holds it.
    pub fn try_take(slot: &Path) -> io::Result<Option<Self>> {
        let path = slot.join(LOCK_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o664)
            .open(&path)?;
        // SAFETY: `flock` is a plain C struct for which all-zero is a valid value.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as _;
        lock.l_whence = libc::SEEK_SET as _;
        // SAFETY: a valid open descriptor and a valid, initialised `flock` for the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
        if rc == 0 {
            return Ok(Some(Self { file, path }));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EAGAIN) => Ok(None),
            Some(libc::ENOSYS) => Ok(Some(Self { file, path })),
            _ => Err(err),
        }
    }

    /// Releases the lock and removes the file, as the library does at exit.
    pub fn release(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `boinc_finish_called`: the status, then (with a message) the message and `notice` or
/// an empty line.
pub fn write_finish_file(
    slot: &Path,
    status: i32,
    message: Option<(&str, bool)>,
) -> io::Result<()> {
    let mut text = format!("{status}\n");
    if let Some((msg, notice)) = message {
        text.push_str(&one_line(msg));
        text.push('\n');
        text.push_str(if notice { "notice\n" } else { "\n" });
    }
    write_synced(&slot.join(FINISH_FILE), &text)
}

/// Writes `boinc_temporary_exit`: the delay in seconds, the reason (the 7.20 client ignores the
/// file without one) and, for a notice, `notice`.
pub fn write_temporary_exit_file(
    slot: &Path,
    delay_s: u32,
    reason: &str,
    notice: bool,
) -> io::Result<()> {
    let reason = match one_line(reason) {
        r if r.trim().is_empty() => "temporary exit".to_string(),
        r => r,
    };
    let mut text = format!("{delay_s}\n{reason}\n");
    if notice {
        text.push_str("notice\n");
    }
    write_synced(&slot.join(TEMPORARY_EXIT_FILE), &text)
}

/// `text` with line breaks turned into spaces (the client reads one line).
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn write_synced(path: &Path, text: &str) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Points the process's stderr at `stderr.txt` in `slot`, appending, as the library's
/// diagnostics do at start-up.
pub fn redirect_stderr(slot: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(slot.join(STDERR_FILE))?;
    // SAFETY: both descriptors are valid; dup2 atomically replaces descriptor 2.
    if unsafe { libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_links_resolve_relative_to_the_slot_and_other_names_to_themselves() {
        let slot = tempfile::tempdir().unwrap();
        let s = slot.path();
        fs::write(
            s.join("model"),
            "<soft_link>../../projects/127.0.0.1_9_x/t_model</soft_link>\n",
        )
        .unwrap();
        fs::write(s.join("odd"), "  <soft_link> a&amp;b </soft_link>").unwrap();
        fs::write(s.join("plain"), "just data\n<soft_link>x</soft_link>\n").unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", s.join("sym")).unwrap();
        assert_eq!(
            resolve(s, "model").unwrap(),
            s.join("../../projects/127.0.0.1_9_x/t_model")
        );
        assert_eq!(resolve(s, "odd").unwrap(), s.join("a&b"));
        assert_eq!(
            resolve(s, "plain").unwrap(),
            s.join("plain"),
            "only the first line counts"
        );
        assert_eq!(resolve(s, "sym").unwrap(), s.join("sym"));
        assert_eq!(resolve(s, "absent").unwrap(), s.join("absent"));
    }

    #[test]
    fn finish_and_temporary_exit_files_have_the_client_s_line_format() {
        let slot = tempfile::tempdir().unwrap();
        let s = slot.path();
        write_finish_file(s, 0, None).unwrap();
        assert_eq!(fs::read_to_string(s.join(FINISH_FILE)).unwrap(), "0\n");
        write_finish_file(s, 3, Some(("bad\nmodel", false))).unwrap();
        assert_eq!(
            fs::read_to_string(s.join(FINISH_FILE)).unwrap(),
            "3\nbad model\n\n"
        );
        write_finish_file(s, 1, Some(("see this", true))).unwrap();
        assert_eq!(
            fs::read_to_string(s.join(FINISH_FILE)).unwrap(),
            "1\nsee this\nnotice\n"
        );
        write_temporary_exit_file(s, 600, "", false).unwrap();
        assert_eq!(
            fs::read_to_string(s.join(TEMPORARY_EXIT_FILE)).unwrap(),
            "600\ntemporary exit\n",
            "7.20 ignores the file without a reason line"
        );
    }

    /// Whether the kernel reports a write lock on `path` held by someone else, asked through an
    /// open-file-description lock query, which sees process-associated locks even of this
    /// process (as another instance of the app would).
    fn locked_by_another(path: &Path) -> bool {
        let f = File::open(path).unwrap();
        // SAFETY: all-zero is a valid `flock`.
        let mut q: libc::flock = unsafe { std::mem::zeroed() };
        q.l_type = libc::F_WRLCK as _;
        q.l_whence = libc::SEEK_SET as _;
        // SAFETY: a valid descriptor and `flock` for the query.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut q) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        q.l_type != libc::F_UNLCK as libc::c_short
    }

    #[test]
    fn the_lock_is_held_until_released_and_release_removes_the_file() {
        let slot = tempfile::tempdir().unwrap();
        let path = slot.path().join(LOCK_FILE);
        let lock = SlotLock::try_take(slot.path()).unwrap().expect("free slot");
        assert!(locked_by_another(&path));
        lock.release();
        assert!(!path.exists());
        let again = SlotLock::try_take(slot.path())
            .unwrap()
            .expect("free again");
        assert!(locked_by_another(&path));
        again.release();
    }
}
