//! A skill's queue of accepted deltas, `skills/<skill>/queue/`: per delta, named by its sha256,
//! the delta as the volunteer returned it (`.delta`), their report (`.report`, kept for audit)
//! and the server's own entry (`.entry`), written last by `assimilate`.
//!
//! Aggregation reads only the entry and the delta: the entry holds what the server established
//! itself (the delta's L2 norm from validation, its start version, the tokens trained capped by
//! what the work unit allowed), so nothing a volunteer claims sets a delta's weight.

use aginet::format::files::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The server's record of one queued delta.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The global version the volunteer started from.
    pub adapter_version: u64,
    /// Tokens trained, capped at `steps · batch_size · max_seq_len` of the work unit.
    pub tokens: u64,
    /// The delta's L2 norm as the validator measured it.
    pub norm: f64,
}

/// The file of `sha`'s delta in `queue`.
pub fn delta_path(queue: &Path, sha: &str) -> PathBuf {
    queue.join(format!("{sha}.delta"))
}

fn entry_path(queue: &Path, sha: &str) -> PathBuf {
    queue.join(format!("{sha}.entry"))
}

/// Queues the delta `bytes` with sha256 `sha`, its volunteer's `report` and the server's `entry`.
/// Idempotent; the entry is written last, so a delta is queued once its entry exists.
pub fn put(queue: &Path, sha: &str, bytes: &[u8], report: &[u8], entry: &Entry) -> Result<()> {
    std::fs::create_dir_all(queue).with_context(|| format!("{}", queue.display()))?;
    write_atomic(&delta_path(queue, sha), bytes)?;
    write_atomic(&queue.join(format!("{sha}.report")), report)?;
    write_atomic(
        &entry_path(queue, sha),
        serde_json::to_string(entry)?.as_bytes(),
    )?;
    Ok(())
}

/// The sha256s of the queued deltas (those with an entry), sorted.
pub fn list(queue: &Path) -> Result<Vec<String>> {
    let mut shas = Vec::new();
    for e in std::fs::read_dir(queue).with_context(|| format!("{}", queue.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(sha) = name.strip_suffix(".entry") {
            shas.push(sha.to_string());
        }
    }
    shas.sort();
    Ok(shas)
}

/// Reads the entry of queued delta `sha`.
pub fn entry(queue: &Path, sha: &str) -> Result<Entry> {
    let path = entry_path(queue, sha);
    let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))
}

/// Removes `sha` from the queue: the entry first, so a crash midway leaves no half-queued delta.
pub fn remove(queue: &Path, sha: &str) -> Result<()> {
    for ext in ["entry", "delta", "report"] {
        let f = queue.join(format!("{sha}.{ext}"));
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}", f.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_list_entry_remove() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("queue");
        let e = Entry {
            adapter_version: 2,
            tokens: 100,
            norm: 0.5,
        };
        put(&q, "bb", b"d", b"{}", &e).unwrap();
        put(&q, "aa", b"d", b"{}", &e).unwrap();
        // A delta whose entry was never written is not queued.
        std::fs::write(q.join("cc.delta"), b"d").unwrap();
        assert_eq!(list(&q).unwrap(), ["aa", "bb"]);
        assert_eq!(entry(&q, "aa").unwrap(), e);
        remove(&q, "aa").unwrap();
        remove(&q, "aa").unwrap();
        assert_eq!(list(&q).unwrap(), ["bb"]);
        assert!(!delta_path(&q, "aa").exists());
    }
}
