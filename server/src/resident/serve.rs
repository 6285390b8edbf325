//! `aginet-server validator`: listens on the project's validator socket and validates the
//! results `validate` hands it, one at a time, with each skill's base loaded once. A request
//! that crashes the validation is answered as a transient failure and the loaded bases are
//! dropped, so one bad result never takes the daemon down. It stops when BOINC's `bin/stop`
//! asks daemons to (the project's `stop_daemons` file) and removes its socket; a socket left by
//! a killed validator is replaced on the next start.

use super::{Reply, Request, MAX_REQUEST};
use crate::project::Project;
use crate::scorers::Scorers;
use crate::validate::{self, Verdict};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the listener looks for a stop request while no result arrives.
const POLL: Duration = Duration::from_millis(100);

/// How long a connected `validate` may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves validations of `project_dir`'s results on `socket` until `boinc`'s `stop_daemons`
/// file appears (never, without `boinc`).
pub fn serve(project_dir: &Path, socket: &Path, boinc: Option<&Path>) -> Result<()> {
    let root = project_dir
        .canonicalize()
        .with_context(|| format!("{}", project_dir.display()))?;
    Project::open(&root)?;
    let listener = bind(socket)?;
    tracing::info!(
        "validating results of {} on {}",
        root.display(),
        socket.display()
    );
    let mut scorers = Scorers::new();
    let stop = boinc.map(|b| b.join("stop_daemons"));
    loop {
        if let Some(stop) = stop.as_ref().filter(|s| s.exists()) {
            tracing::info!("{} present: stopping", stop.display());
            break;
        }
        if !readable(&listener, POLL).with_context(|| format!("{}", socket.display()))? {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(&root, &mut scorers, stream) {
                    tracing::warn!("a request went unanswered: {e:#}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).with_context(|| format!("accepting on {}", socket.display())),
        }
    }
    drop(listener);
    std::fs::remove_file(socket).with_context(|| format!("removing {}", socket.display()))?;
    Ok(())
}

/// Whether a connection waits on `listener`, waiting at most `timeout` for one.
fn readable(listener: &UnixListener, timeout: Duration) -> std::io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and the listener outlives the call.
    let n = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    match n {
        -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            Ok(false)
        }
        -1 => Err(std::io::Error::last_os_error()),
        n => Ok(n > 0),
    }
}

/// A listener on `socket` (non-blocking: [`readable`] waits, so that stop requests are seen): a socket file that
/// nothing answers on is a killed validator's and is replaced; one that answers is refused.
fn bind(socket: &Path) -> Result<UnixListener> {
    if socket.exists() {
        if UnixStream::connect(socket).is_ok() {
            bail!("{}: a validator already listens there", socket.display());
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("removing the stale {}", socket.display()))?;
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(socket).with_context(|| format!("listening on {}", socket.display()))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("{}", socket.display()))?;
    Ok(listener)
}

/// Reads one request from `stream`, validates, and writes the reply.
fn answer(root: &Path, scorers: &mut Scorers, stream: UnixStream) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(&stream, MAX_REQUEST)).read_line(&mut line)?;
    if line.is_empty() {
        // Connected and gone without a word: a check that the validator listens.
        return Ok(());
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply::Refused(format!("malformed request: {e}")),
        Ok(r) if r.project != root => Reply::Refused(format!(
            "this validator serves {}, not {}",
            root.display(),
            r.project.display()
        )),
        Ok(r) => run(root, scorers, &r.files),
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    (&stream).write_all(text.as_bytes())?;
    Ok(())
}

/// Validates `files`, the project opened afresh (settings and versions may have changed).
fn run(root: &Path, scorers: &mut Scorers, files: &[PathBuf]) -> Reply {
    let start = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Project::open(root).and_then(|p| validate::validate(&p, scorers, files))
    }));
    let seconds = start.elapsed().as_secs_f64();
    match outcome {
        Ok(Ok(verdict)) => {
            match &verdict {
                Verdict::Valid { reward_after, .. } => {
                    tracing::info!("{files:?}: valid ({reward_after:.6}) in {seconds:.2} s")
                }
                Verdict::Invalid(reason) => {
                    tracing::info!("{files:?}: invalid ({reason}) in {seconds:.2} s")
                }
            }
            Reply::Verdict(verdict)
        }
        Ok(Err(e)) => {
            tracing::warn!("{files:?}: {e:#}");
            Reply::Transient(format!("{e:#}"))
        }
        Err(_) => {
            // The panic's message went to stderr; the loaded bases may be half-written.
            scorers.clear();
            Reply::Transient(format!(
                "validating {files:?} crashed the resident validator"
            ))
        }
    }
}
