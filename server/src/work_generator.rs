//! `work-generator`: the BOINC daemon that keeps the feeder supplied. Every `interval` it counts
//! the results of app `aginet` that wait to be sent (BOINC's database, as BOINC's own sample
//! work generator counts them, plus work units still waiting for their first result); when fewer than `min_unsent` wait, it asks `route` which skill
//! gets new work and makes `batch` work units of it with `make-work --boinc`. It stops when
//! BOINC's `bin/stop` asks daemons to (the project's `stop_daemons` file, or SIGHUP, whose default
//! action ends the process between two steps of a work unit at worst: `make-work` stages its
//! inputs before `create_work` makes the work unit, so a stop never leaves a work unit that
//! names a missing file).
//!
//! A pass that fails (the database restarting, a full disk) is logged and tried again on the
//! next tick, as BOINC's daemons do; the daemon never exits on a transient error.

use crate::boinc_db::BoincDb;
use crate::project::Project;
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// The BOINC app whose results are counted and made.
const APP: &str = "aginet";

/// When and how much work to make.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Make work when fewer results than this wait to be sent.
    pub min_unsent: u64,
    /// Work units made per pass.
    pub batch: u64,
    /// Time between passes.
    pub interval: Duration,
    /// Make one pass and return.
    pub once: bool,
}

/// What one pass did.
#[derive(Debug)]
pub enum Pass {
    /// Enough results waited; nothing made.
    Enough(u64),
    /// These work units of this skill were made.
    Made(String, Vec<String>),
}

/// Runs the daemon (or one pass, with `once`) for `project` in the BOINC project `boinc`.
pub fn run(project_dir: &Path, boinc: &Path, settings: &Settings) -> Result<()> {
    let db = BoincDb::from_project(boinc)?;
    loop {
        if boinc.join("stop_daemons").exists() {
            tracing::info!("stop_daemons present: stopping");
            return Ok(());
        }
        match pass(project_dir, boinc, &db, settings) {
            Ok(Pass::Enough(unsent)) => tracing::debug!("{unsent} unsent: enough"),
            Ok(Pass::Made(skill, names)) => {
                tracing::info!(
                    "made {} work units of {skill}: {}",
                    names.len(),
                    names.join(" ")
                )
            }
            Err(e) if settings.once => return Err(e),
            Err(e) => tracing::error!("{e:#} (trying again in {:?})", settings.interval),
        }
        if settings.once {
            return Ok(());
        }
        std::thread::sleep(settings.interval);
    }
}

/// One pass: count, and make work if too little waits. The project is opened afresh each time,
/// so settings and versions that changed since the last pass are seen.
fn pass(project_dir: &Path, boinc: &Path, db: &BoincDb, settings: &Settings) -> Result<Pass> {
    let unsent = db.unsent(APP)?;
    if unsent >= settings.min_unsent {
        return Ok(Pass::Enough(unsent));
    }
    let project = Project::open(project_dir)?;
    let decision = crate::route::decide(&project)?;
    tracing::info!(
        "{unsent} unsent, fewer than {}: route picks {} ({})",
        settings.min_unsent,
        decision.skill,
        decision.reason
    );
    let names =
        crate::boinc_work::make_work_boinc(&project, &decision.skill, settings.batch, boinc)?;
    Ok(Pass::Made(decision.skill, names))
}
