//! The resident validator: `aginet-server validator` keeps each skill's base loaded and serves
//! validations over a Unix socket; the per-result `validate` that BOINC's `script_validator`
//! starts hands its files to it ([`ask`]) and does the work itself when none listens. Both run
//! the same [`crate::validate::validate`], so a verdict has the same bits either way.

pub mod ask;
pub mod serve;

use crate::validate::Verdict;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Longest request line the validator reads (a project path and a result's file paths).
const MAX_REQUEST: u64 = 64 * 1024;

/// One validation asked of the resident validator: a JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    /// The project folder, canonical: a validator serves one project.
    project: PathBuf,
    /// The result's files, canonical.
    files: Vec<PathBuf>,
}

/// The resident validator's answer: a JSON line.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// The result's verdict.
    Verdict(Verdict),
    /// A transient failure (`validate`'s exit 3), with its message.
    Transient(String),
    /// Not served here (another project, a malformed request): validate locally.
    Refused(String),
}
