//! `assimilate --boinc BOINC_PROJECT_DIR ARGS...`: the arguments exactly as BOINC's
//! `script_assimilator --script NAME` passes them to a one-word script, `WU_ID FILES...` for a
//! work unit with a canonical result and `--error N WU_NAME WU_ID BATCH` for one BOINC gave up
//! on. The work unit's name, the canonical result's host and user, and the credit BOINC's
//! validator granted come from the project's database, so the scoreboard records what BOINC
//! recorded. (A one-word script is what works: in BOINC server 1.6.2 a script command with
//! arguments reaches the script as nothing; `docs/boinc-server.md`.)

use crate::assimilate::{self, Outcome, Source};
use crate::boinc_db::BoincDb;
use crate::project::Project;
use crate::scorers::Scorers;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Assimilates what BOINC's `script_assimilator` handed over; returns the line to print.
pub fn assimilate_boinc(
    project: &Project,
    boinc: &Path,
    error: Option<i32>,
    args: &[String],
) -> Result<String> {
    if let Some(code) = error {
        let [wu, _wu_id, _batch] = args else {
            bail!("with --boinc --error N, expected WU_NAME WU_ID BATCH, got {args:?}");
        };
        assimilate::record_error(project, code, wu)?;
        return Ok(format!("logged error {code} of {wu}"));
    }
    let [wu_id, files @ ..] = args else {
        bail!("with --boinc, expected WU_ID FILES..., got nothing");
    };
    if files.is_empty() {
        bail!("with --boinc, expected WU_ID FILES..., got no files in {args:?}");
    }
    let wu_id: u64 = wu_id
        .parse()
        .with_context(|| format!("work unit id {wu_id:?} (expected WU_ID FILES...)"))?;
    let canonical = BoincDb::from_project(boinc)?.canonical(wu_id)?;
    let source = Source {
        host: canonical.host.to_string(),
        user: canonical.user.to_string(),
        granted_credit: Some(canonical.granted_credit),
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    let wu = &canonical.workunit;
    Ok(
        match assimilate::assimilate(project, &mut Scorers::new(), &files, wu, &source)? {
            Outcome::Accepted { credit } => format!(
                "accepted {wu} (result {}, host {}, user {}): credit {credit:.6}",
                canonical.result, canonical.host, canonical.user
            ),
            Outcome::Rejected(reason) => format!("rejected {wu}: {reason}"),
            Outcome::AlreadyDone => format!("{wu} already assimilated"),
        },
    )
}
