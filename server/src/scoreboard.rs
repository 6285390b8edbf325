//! `scoreboard.csv`: one line per decided result, appended by the assimilator and read by the
//! router and the snapshot.
//!
//! Columns: `time` (unix seconds), `workunit`, `result`, `host`, `user`, `skill`,
//! `claimed_reward`, `reward_before`, `reward_after` (both recomputed by the server),
//! `verdict` (`valid` or `invalid`), `reason`, `credit`. Writers append a whole line with one
//! `write` and fsync it, so a crash can only tear the last line, which readers skip with a
//! warning. A malformed line anywhere else is an error naming its line number.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The header line.
const HEADER: &str =
    "time,workunit,result,host,user,skill,claimed_reward,reward_before,reward_after,verdict,reason,credit\n";

/// One decided result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// When it was decided, unix seconds.
    pub time: u64,
    /// Work unit name.
    pub workunit: String,
    /// Result name.
    pub result: String,
    /// Host id, if known.
    pub host: String,
    /// User id, if known.
    pub user: String,
    /// Skill trained.
    pub skill: String,
    /// Reward the volunteer's report claimed.
    pub claimed_reward: f64,
    /// Server's reward of the adapter the work started from, on held-out data.
    pub reward_before: f64,
    /// Server's reward with the delta applied, on held-out data.
    pub reward_after: f64,
    /// `valid` or `invalid`.
    pub verdict: String,
    /// Why, in a few words.
    pub reason: String,
    /// Credit granted (0 unless valid).
    pub credit: f64,
}

/// Creates an empty scoreboard (header only).
pub fn create(path: &Path) -> Result<()> {
    Ok(aginet::format::files::write_atomic(
        path,
        HEADER.as_bytes(),
    )?)
}

/// Reads every complete row; a torn last line is skipped with a warning.
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let complete = match text.rfind('\n') {
        Some(end) if end + 1 < text.len() => {
            tracing::warn!(
                "{}: ignoring a torn last line (a crash during an append)",
                path.display()
            );
            &text[..end + 1]
        }
        _ => text.as_str(),
    };
    if !complete.starts_with(HEADER) {
        bail!("{}: line 1 is not the scoreboard header", path.display());
    }
    let mut reader = csv::Reader::from_reader(complete.as_bytes());
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        rows.push(row.with_context(|| format!("{}: line {} is malformed", path.display(), i + 2))?);
    }
    Ok(rows)
}

/// Appends one row as a single write, then syncs.
pub fn append(path: &Path, row: &Row) -> Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.serialize(row)?;
    let line = writer.into_inner().context("csv buffer")?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    std::io::Write::write_all(&mut file, &line).with_context(|| format!("{}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("{}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "1700000000,wu1,r1,h1,u1,tiny,0.2,0.1,0.2,valid,ok,12.5\n";

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scoreboard.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_rows_and_skips_a_torn_last_line() {
        let (_d, path) = write(&format!("{HEADER}{LINE}{LINE}1700000001,wu2,r2,h"));
        let rows = read(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].skill, "tiny");
        assert_eq!(rows[0].credit, 12.5);
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_it() {
        let (_d, path) = write(&format!(
            "{HEADER}{LINE}1700000001,wu2,r2,h,u,tiny,oops,0.1,0.2,valid,ok,1\n{LINE}"
        ));
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(err.contains("scoreboard.csv: line 3 is malformed"), "{err}");
    }

    #[test]
    fn a_missing_header_is_an_error() {
        let (_d, path) = write(LINE);
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(err.contains("line 1 is not the scoreboard header"), "{err}");
    }
}
