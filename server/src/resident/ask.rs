//! `validate`'s side: hand a result to the resident validator when one listens.

use super::{Reply, Request};
use crate::validate::Verdict;
use anyhow::{anyhow, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The resident validator's verdict on result `files` of the project in `project_dir`, asked on
/// `socket` and waited for at most `timeout`: `None` when none answers there (no socket, a dead
/// validator, another project, a timeout), and the caller validates the result itself;
/// `Some(Err)` is a transient failure the validator reported.
pub fn ask(
    project_dir: &Path,
    socket: &Path,
    files: &[PathBuf],
    timeout: Duration,
) -> Option<Result<Verdict>> {
    let canonical = |p: &Path| p.canonicalize().ok();
    // A file that cannot be resolved is for the local validation to reject, with its name.
    let request = Request {
        project: canonical(project_dir)?,
        files: files.iter().map(|f| canonical(f)).collect::<Option<_>>()?,
    };
    let mut stream = UnixStream::connect(socket).ok()?;
    match exchange(&mut stream, &request, timeout) {
        Ok(Reply::Verdict(v)) => Some(Ok(v)),
        Ok(Reply::Transient(message)) => Some(Err(anyhow!("{message}"))),
        Ok(Reply::Refused(why)) => {
            tracing::warn!("{}: {why}; validating here instead", socket.display());
            None
        }
        Err(e) => {
            tracing::warn!("{}: {e:#}; validating here instead", socket.display());
            None
        }
    }
}

/// Sends `request` and reads the reply line.
fn exchange(stream: &mut UnixStream, request: &Request, timeout: Duration) -> Result<Reply> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .context("sending the request")?;
    let mut reply = String::new();
    BufReader::new(&*stream)
        .read_line(&mut reply)
        .context("waiting for the verdict")?;
    serde_json::from_str(&reply).with_context(|| format!("unreadable reply {reply:?}"))
}
