//! The BOINC data directory of one client: writing it (`client_state.xml` with the project, app
//! and tasks, `cc_config.xml`, prefs, GUI RPC password), reading back what the client recorded
//! (outputs, results, slot stderr) and the dump printed when a test fails.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::process::{kill_pids_in, pids_in};
use super::xml::{xml_blocks, xml_text};
use super::{Prefs, TaskSpec};

/// A BOINC data directory with one project; shared by [`Client`](super::Client) and
/// [`StoppedClient`](super::StoppedClient).
pub struct DataDir {
    dir: tempfile::TempDir,
    pub(super) url: String,
    pub(super) escaped: String,
    pub(super) password: String,
    pub(super) dumped: Cell<bool>,
}

impl DataDir {
    pub(super) fn create(app: &Path, tasks: &[TaskSpec], prefs: &Prefs) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let url = format!("http://127.0.0.1:9/aginet-test-{}-{n}/", std::process::id());
        let escaped = escape_url(&url);
        let password = format!("{:016x}", RandomState::new().hash_one(n));
        let data = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            url,
            escaped,
            password,
            dumped: Cell::new(false),
        };
        fs::create_dir_all(data.project_dir()).unwrap();
        data.write_files(app, tasks, prefs);
        data
    }

    fn write_files(&self, app: &Path, tasks: &[TaskSpec], prefs: &Prefs) {
        let (url, d, proj) = (&self.url, self.path(), self.project_dir());
        let write = |name: &str, text: String| fs::write(d.join(name), text).unwrap();
        write("gui_rpc_auth.cfg", format!("{}\n", self.password));
        write(
            &format!("account_{}.xml", self.escaped),
            format!(
                "<account>\n<master_url>{url}</master_url>\n<authenticator>0</authenticator>\n</account>\n"
            ),
        );
        // The app at the client's priority, not idle (`no_priority_change`): the tests time it
        // (a killed client noticed within 30 s), and at idle priority it would get only the CPU
        // that every other process leaves, the other tests' and CI's builds among them.
        write(
            "cc_config.xml",
            format!(
                "<cc_config><options>\n<unsigned_apps_ok>1</unsigned_apps_ok>\n\
                 <skip_cpu_benchmarks>1</skip_cpu_benchmarks>\n<no_gpus>1</no_gpus>\n\
                 <no_priority_change>1</no_priority_change>\n<ncpus>{}</ncpus>\n</options></cc_config>\n",
                prefs.ncpus
            ),
        );
        write(
            "global_prefs_override.xml",
            format!(
                "<global_preferences>\n<run_on_batteries>1</run_on_batteries>\n\
                 <run_if_user_active>1</run_if_user_active>\n<suspend_cpu_usage>0</suspend_cpu_usage>\n\
                 <cpu_usage_limit>100</cpu_usage_limit>\n<max_ncpus_pct>100</max_ncpus_pct>\n\
                 <disk_interval>{}</disk_interval>\n<leave_apps_in_memory>{}</leave_apps_in_memory>\n\
                 <ram_max_used_busy_pct>90</ram_max_used_busy_pct>\n\
                 <ram_max_used_idle_pct>90</ram_max_used_idle_pct>\n</global_preferences>\n",
                prefs.checkpoint_interval_s, prefs.leave_apps_in_memory as u8
            ),
        );

        let mut files = String::new();
        let mut file_refs = String::new();
        let app_files =
            std::iter::once(app).chain(prefs.extra_app_files.iter().map(|p| p.as_path()));
        for (i, src) in app_files.enumerate() {
            let name = src.file_name().unwrap().to_string_lossy().into_owned();
            let dst = proj.join(&name);
            fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
            files += &file_xml(&name, &dst, "<executable/>");
            let main = if i == 0 { "<main_program/>" } else { "" };
            file_refs += &format!("<file_ref><file_name>{name}</file_name>{main}</file_ref>\n");
        }
        let mut state = format!(
            "<client_state>\n<project>\n<master_url>{url}</master_url>\n\
             <project_name>aginet-test</project_name>\n<dont_request_more_work/>\n</project>\n\
             <app>\n<name>aginet</name>\n<user_friendly_name>aginet</user_friendly_name>\n</app>\n\
             {files}<app_version>\n<app_name>aginet</app_name>\n<version_num>1</version_num>\n\
             <platform>x86_64-pc-linux-gnu</platform>\n<avg_ncpus>1</avg_ncpus>\n\
             <max_ncpus>1</max_ncpus>\n<api_version>7.20.0</api_version>\n{file_refs}</app_version>\n"
        );
        for t in tasks {
            let mut wu_refs = String::new();
            for logical in &t.inputs {
                let (src, name) = (t.wu_dir.join(logical), format!("{}_{logical}", t.name));
                let dst = proj.join(&name);
                fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
                state += &file_xml(&name, &dst, "");
                wu_refs += &format!(
                    "<file_ref><file_name>{name}</file_name><open_name>{logical}</open_name></file_ref>\n"
                );
            }
            let mut result_refs = String::new();
            for logical in &t.outputs {
                let name = format!("{}_{logical}", t.name);
                state += &format!(
                    "<file>\n<name>{name}</name>\n<nbytes>0</nbytes>\n<max_nbytes>1e9</max_nbytes>\n\
                     <status>0</status>\n<sticky/>\n</file>\n"
                );
                result_refs += &format!(
                    "<file_ref><file_name>{name}</file_name><open_name>{logical}</open_name></file_ref>\n"
                );
            }
            let n = &t.name;
            state += &format!(
                "<workunit>\n<name>{n}</name>\n<app_name>aginet</app_name>\n<version_num>1</version_num>\n\
                 <rsc_fpops_est>1e10</rsc_fpops_est>\n<rsc_fpops_bound>1e16</rsc_fpops_bound>\n\
                 <rsc_memory_bound>4e9</rsc_memory_bound>\n<rsc_disk_bound>1e10</rsc_disk_bound>\n\
                 {wu_refs}</workunit>\n\
                 <result>\n<name>{n}</name>\n<wu_name>{n}</wu_name>\n<version_num>1</version_num>\n\
                 <platform>x86_64-pc-linux-gnu</platform>\n<state>2</state>\n\
                 <report_deadline>4000000000</report_deadline>\n{result_refs}</result>\n"
            );
        }
        state += "</client_state>\n";
        write("client_state.xml", state);
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The project's URL (unique to this data dir).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `D/projects/<escaped url>/`: app, inputs and outputs under their physical names.
    pub fn project_dir(&self) -> PathBuf {
        self.path().join("projects").join(&self.escaped)
    }

    /// Where the client keeps output `logical` of `task`.
    pub fn output(&self, task: &str, logical: &str) -> PathBuf {
        self.project_dir().join(format!("{task}_{logical}"))
    }

    /// The current `client_state.xml`.
    pub fn client_state(&self) -> String {
        fs::read_to_string(self.path().join("client_state.xml")).unwrap_or_default()
    }

    /// The `<result>` element of `task` in `client_state.xml`.
    pub fn result_xml(&self, task: &str) -> Option<String> {
        let state = self.client_state();
        let want = format!("<name>{task}</name>");
        xml_blocks(&state, "result")
            .into_iter()
            .find(|r| r.contains(&want))
            .map(str::to_string)
    }

    /// The app's stderr: the result's `<stderr_out>` once the client recorded it, otherwise the
    /// `stderr.txt` of the slot running the task; empty if neither exists.
    pub fn task_stderr(&self, task: &str) -> String {
        let recorded = self.result_xml(task).and_then(|r| {
            let s = xml_text(&r, "stderr_out")?;
            let s = s.trim();
            let s = s.strip_prefix("<![CDATA[").unwrap_or(s);
            let s = s.strip_suffix("]]>").unwrap_or(s).trim();
            let s = s.strip_prefix("<stderr_txt>").unwrap_or(s);
            Some(
                s.strip_suffix("</stderr_txt>")
                    .unwrap_or(s)
                    .trim_start()
                    .to_string(),
            )
        });
        recorded
            .or_else(|| {
                let slot = self.slot_of(task)?;
                fs::read_to_string(slot.join("stderr.txt")).ok()
            })
            .unwrap_or_default()
    }

    /// `<exit_status>` of the task's result, once recorded.
    pub fn result_exit_status(&self, task: &str) -> Option<i32> {
        xml_text(&self.result_xml(task)?, "exit_status")?
            .trim()
            .parse()
            .ok()
    }

    /// The slot dir whose `init_data.xml` names `task`.
    pub fn slot_of(&self, task: &str) -> Option<PathBuf> {
        let want = format!("<result_name>{task}</result_name>");
        self.slots()
            .into_iter()
            .find(|s| fs::read_to_string(s.join("init_data.xml")).is_ok_and(|t| t.contains(&want)))
    }

    /// Ids of the processes (apps and their children) whose working dir is a slot of this dir.
    pub fn app_pids(&self) -> Vec<u32> {
        pids_in(&self.path().join("slots"))
    }

    /// Waits up to `timeout` for [`app_pids`](Self::app_pids) to be empty; true if it became so.
    pub fn wait_apps_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.app_pids().is_empty() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        true
    }

    fn slots(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.path().join("slots"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Client log, slot stderr and result states, for a failing test.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "==== BOINC data dir {} ({})\n",
            self.path().display(),
            self.url
        );
        for (name, label) in [
            ("client_stdout.txt", "client stdout"),
            ("client_stderr.txt", "client stderr"),
        ] {
            let text = fs::read_to_string(self.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            s += &format!("---- {label} (last 40 lines)\n{tail}\n");
        }
        for slot in self.slots() {
            let err = fs::read_to_string(slot.join("stderr.txt")).unwrap_or_default();
            s += &format!("---- {}/stderr.txt\n{err}\n", slot.display());
        }
        let mut listing: Vec<String> = fs::read_dir(self.project_dir())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        format!("{} ({len} B)", e.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default();
        listing.sort();
        s += &format!("---- project dir: {}\n", listing.join(", "));
        for r in xml_blocks(&self.client_state(), "result") {
            s += &format!("---- client_state.xml\n{r}\n");
        }
        s
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        kill_pids_in(self.path());
        if std::thread::panicking() && !self.dumped.get() {
            eprintln!("{}", self.dump());
        }
    }
}

/// The folder name BOINC derives from a master URL.
fn escape_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let s: String = rest
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_end_matches('_').to_string()
}

/// A `<file>` element for a present file, with its true size.
fn file_xml(name: &str, path: &Path, extra: &str) -> String {
    let nbytes = fs::metadata(path).unwrap().len();
    format!(
        "<file>\n<name>{name}</name>\n<nbytes>{nbytes}</nbytes>\n<max_nbytes>0</max_nbytes>\n\
         <status>1</status>\n{extra}\n</file>\n"
    )
}
