//! BOINC's project database, as the server tools need it: who returned a work unit's canonical
//! result and what BOINC credited, and how many results of an app wait to be sent.
//!
//! The connection comes from the BOINC project's own `config.xml` (`db_name`, `db_host` with an
//! optional `:port`, `db_user`, `db_passwd`), the settings its daemons use. Queries go through the
//! `mysql` command-line client, which every BOINC server has (BOINC's own tools need it); the
//! password reaches it through the environment, never the command line. This module only reads:
//! BOINC's daemons own the database.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// BOINC's `server_state` of a result that waits for a host (`RESULT_SERVER_STATE_UNSENT`).
const SERVER_STATE_UNSENT: u32 = 2;

/// A BOINC project's database settings.
#[derive(Clone, Debug, PartialEq)]
pub struct BoincDb {
    name: String,
    host: String,
    port: Option<u16>,
    user: String,
    passwd: String,
}

/// Who returned a work unit's canonical result, and the credit BOINC granted it.
#[derive(Clone, Debug, PartialEq)]
pub struct Canonical {
    /// The work unit's name.
    pub workunit: String,
    /// The canonical result's name.
    pub result: String,
    /// BOINC's host id.
    pub host: u64,
    /// BOINC's user id.
    pub user: u64,
    /// `result.granted_credit`, set by the validator.
    pub granted_credit: f64,
}

impl BoincDb {
    /// Reads the database settings from `<boinc>/config.xml`.
    pub fn from_project(boinc: &Path) -> Result<Self> {
        let path = boinc.join("config.xml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses the `<config>` section of a BOINC `config.xml`.
    fn parse(text: &str) -> Result<Self> {
        let doc = roxmltree::Document::parse(text).context("not XML")?;
        let config = doc
            .descendants()
            .find(|n| n.has_tag_name("config"))
            .context("no <config> element")?;
        let field = |tag: &str| {
            config
                .children()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string())
        };
        let name = field("db_name").context("no <db_name>")?;
        let (host, port) = match field("db_host").unwrap_or_default() {
            h if h.is_empty() => ("localhost".to_string(), None),
            h => match h.rsplit_once(':') {
                Some((host, port)) => {
                    let port = port
                        .parse()
                        .with_context(|| format!("<db_host> {h:?}: port {port:?}"))?;
                    (host.to_string(), Some(port))
                }
                None => (h, None),
            },
        };
        Ok(Self {
            name,
            host,
            port,
            user: field("db_user").context("no <db_user>")?,
            passwd: field("db_passwd").unwrap_or_default(),
        })
    }

    /// Runs one query; returns its rows, each a list of fields.
    fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        let mut cmd = Command::new("mysql");
        cmd.args(["--batch", "--skip-column-names", "--host", &self.host])
            .args(["--user", &self.user, "--database", &self.name])
            .args(["--execute", sql])
            .env("MYSQL_PWD", &self.passwd);
        if let Some(port) = self.port {
            cmd.args(["--port", &port.to_string(), "--protocol", "tcp"]);
        }
        let out = cmd
            .output()
            .context("running the mysql client (Debian: mariadb-client)")?;
        if !out.status.success() {
            bail!(
                "BOINC database {} on {}: {sql}: {}",
                self.name,
                self.host,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// How much work of `app` waits to be sent to a host: its unsent results, plus its work
    /// units the transitioner has not yet given a result (just made by `create_work`), so a
    /// work generator that looks again at once does not make the same work twice.
    pub fn unsent(&self, app: &str) -> Result<u64> {
        if app.is_empty() || !app.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("app name {app:?}: letters, digits and _ only");
        }
        let rows = self.query(&format!(
            "SELECT (SELECT COUNT(*) FROM result JOIN app ON result.appid = app.id \
             WHERE app.name = '{app}' AND result.server_state = {SERVER_STATE_UNSENT}) + \
             (SELECT COUNT(*) FROM workunit JOIN app ON workunit.appid = app.id \
             WHERE app.name = '{app}' AND NOT EXISTS \
             (SELECT 1 FROM result WHERE result.workunitid = workunit.id))"
        ))?;
        let count = rows.first().and_then(|r| r.first()).context("no count")?;
        count
            .parse()
            .with_context(|| format!("count of unsent results: {count:?}"))
    }

    /// The canonical result of work unit `wu_id`, with its host, user and granted credit.
    pub fn canonical(&self, wu_id: u64) -> Result<Canonical> {
        let rows = self.query(&format!(
            "SELECT workunit.name, result.name, result.hostid, result.userid, \
             result.granted_credit FROM workunit \
             JOIN result ON result.id = workunit.canonical_resultid WHERE workunit.id = {wu_id}"
        ))?;
        let [row] = rows.as_slice() else {
            bail!("work unit {wu_id}: no canonical result in BOINC's database");
        };
        let [workunit, result, host, user, credit] = row.as_slice() else {
            bail!("work unit {wu_id}: unexpected row {row:?}");
        };
        let number = |what: &str, v: &str| -> Result<u64> {
            v.parse()
                .with_context(|| format!("work unit {wu_id}: {what} {v:?}"))
        };
        Ok(Canonical {
            workunit: workunit.clone(),
            result: result.clone(),
            host: number("host id", host)?,
            user: number("user id", user)?,
            granted_credit: credit
                .parse()
                .with_context(|| format!("work unit {wu_id}: granted credit {credit:?}"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_settings_make_project_writes() {
        let db = BoincDb::parse(
            "<boinc><config>\n<db_name>aginet</db_name>\n<db_host>127.0.0.1:3307</db_host>\n\
             <db_user>boincadm</db_user>\n<db_passwd>pw</db_passwd>\n</config>\n\
             <daemons></daemons></boinc>",
        )
        .unwrap();
        assert_eq!(
            db,
            BoincDb {
                name: "aginet".into(),
                host: "127.0.0.1".into(),
                port: Some(3307),
                user: "boincadm".into(),
                passwd: "pw".into(),
            }
        );
        let db = BoincDb::parse(
            "<boinc><config><db_name>p</db_name><db_host/><db_user>u</db_user></config></boinc>",
        )
        .unwrap();
        assert_eq!((db.host.as_str(), db.port), ("localhost", None));
    }

    #[test]
    fn refuses_settings_it_cannot_use() {
        for (xml, message) in [
            ("<boinc><config><db_user>u</db_user></config></boinc>", "no <db_name>"),
            (
                "<boinc><config><db_name>p</db_name><db_host>h:x</db_host><db_user>u</db_user></config></boinc>",
                "port \"x\"",
            ),
            ("<boinc><daemons/></boinc>", "no <config>"),
            ("<boinc>", "not XML"),
        ] {
            let e = format!("{:#}", BoincDb::parse(xml).unwrap_err());
            assert!(e.contains(message), "{xml}: {e}");
        }
    }

    #[test]
    fn refuses_an_app_name_that_is_not_a_name() {
        let db = BoincDb::parse(
            "<boinc><config><db_name>p</db_name><db_user>u</db_user></config></boinc>",
        )
        .unwrap();
        let e = db.unsent("x' OR '1'='1").unwrap_err().to_string();
        assert!(e.contains("letters, digits and _ only"), "{e}");
    }
}
