//! Runs apps under Debian's real BOINC client (7.20) with no server: a fresh data directory whose
//! `client_state.xml` already holds the tasks, a `boinc` child process on a private loopback GUI
//! RPC port, and `boinccmd` to watch and steer it. See `shared/BOINC-NOTES.md` for the facts.
//!
//! Every [`Client`] has its own data dir, project URL, port and password. Dropping it kills the
//! client's process group and any process still working inside its data dir; while panicking it
//! first prints a dump (tasks, client log, slot stderr, the `<result>`s of `client_state.xml`).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Client settings (`cc_config.xml`, `global_prefs_override.xml`) and app version extras.
#[derive(Clone, Debug)]
pub struct Prefs {
    /// True: suspend pauses the app in memory; false: suspend asks the app to quit.
    pub leave_apps_in_memory: bool,
    /// `<disk_interval>`: the least time between the app's checkpoints, seconds.
    pub checkpoint_interval_s: u32,
    /// CPUs the client may use; each task takes one.
    pub ncpus: u32,
    /// Files copied beside the app into the project dir and listed in its app version (e.g.
    /// [`boinc_api_libs`], found through the client's `LD_LIBRARY_PATH`).
    pub extra_app_files: Vec<PathBuf>,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            leave_apps_in_memory: false,
            checkpoint_interval_s: 60,
            ncpus: 1,
            extra_app_files: Vec::new(),
        }
    }
}

/// Debian's shared BOINC API libraries, which an app linked against them needs at run time.
pub fn boinc_api_libs() -> Vec<PathBuf> {
    ["libboinc_api.so.7", "libboinc.so.7"]
        .iter()
        .map(|n| Path::new("/usr/lib/x86_64-linux-gnu").join(n))
        .collect()
}

/// One task (a workunit with one result) to put in `client_state.xml`.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// Workunit and result name; also prefixes the physical file names (`<name>_<logical>`).
    pub name: String,
    /// Folder holding the inputs under their logical names.
    pub wu_dir: PathBuf,
    /// Logical names of the inputs (e.g. `config`, `model`, `data`).
    pub inputs: Vec<String>,
    /// Logical names of the outputs (e.g. `delta`, `report`).
    pub outputs: Vec<String>,
}

impl TaskSpec {
    /// A task named `name` reading `inputs` from `wu_dir` and writing `outputs`.
    pub fn new(name: &str, wu_dir: &Path, inputs: &[&str], outputs: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            wu_dir: wu_dir.to_path_buf(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One task as `boinccmd --get_tasks` shows it.
#[derive(Clone, Debug, Default)]
pub struct TaskStatus {
    /// Result name.
    pub name: String,
    /// Result state: `downloaded` (runnable), `uploaded` (succeeded), `compute error`, `aborted`.
    pub state: String,
    /// Scheduler state: `uninitialized`, `scheduled`, `preempted`.
    pub scheduler_state: String,
    /// `EXECUTING`, `SUSPENDED`, `UNINITIALIZED`, ... when the line is shown.
    pub active_task_state: Option<String>,
    /// Finished (successfully or not) and waiting to be reported.
    pub ready_to_report: bool,
    /// Suspended with `--task URL NAME suspend`.
    pub suspended_via_gui: bool,
    /// Fraction done as the app last reported it (0 when not running).
    pub fraction_done: f64,
    /// The app's process id while it has one.
    pub pid: Option<u32>,
    /// The app's exit status once the task has ended.
    pub exit_status: Option<i32>,
    /// Every `key: value` line of the task, in order.
    pub fields: Vec<(String, String)>,
}

impl TaskStatus {
    /// The value of a `key: value` line, if shown.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The app process is running (not suspended, not ended).
    pub fn executing(&self) -> bool {
        self.active_task_state.as_deref() == Some("EXECUTING")
    }

    /// Ended successfully: outputs present and ready to report.
    pub fn succeeded(&self) -> bool {
        self.ready_to_report && self.state == "uploaded"
    }
}

/// Parses `boinccmd --get_tasks` output.
pub fn parse_tasks(text: &str) -> Vec<TaskStatus> {
    let mut tasks: Vec<TaskStatus> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.ends_with(") -----------") {
            tasks.push(TaskStatus::default());
            continue;
        }
        let (Some(task), Some((k, v))) = (tasks.last_mut(), t.split_once(": ")) else {
            continue;
        };
        let v = v.trim().to_string();
        match k {
            "name" => task.name = v.clone(),
            "state" => task.state = v.clone(),
            "scheduler state" => task.scheduler_state = v.clone(),
            "active_task_state" => task.active_task_state = Some(v.clone()),
            "ready to report" => task.ready_to_report = v == "yes",
            "suspended via GUI" => task.suspended_via_gui = v == "yes",
            "fraction done" => task.fraction_done = v.parse().unwrap_or(0.0),
            "PID" => task.pid = v.parse().ok(),
            "exit_status" => task.exit_status = v.parse().ok(),
            _ => {}
        }
        task.fields.push((k.to_string(), v));
    }
    tasks
}

/// A BOINC data directory with one project; shared by [`Client`] and [`StoppedClient`].
pub struct DataDir {
    dir: tempfile::TempDir,
    url: String,
    escaped: String,
    password: String,
    dumped: Cell<bool>,
}

impl DataDir {
    fn create(app: &Path, tasks: &[TaskSpec], prefs: &Prefs) -> Self {
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
        write(
            "cc_config.xml",
            format!(
                "<cc_config><options>\n<unsigned_apps_ok>1</unsigned_apps_ok>\n\
                 <skip_cpu_benchmarks>1</skip_cpu_benchmarks>\n<no_gpus>1</no_gpus>\n\
                 <ncpus>{}</ncpus>\n</options></cc_config>\n",
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

/// A running `boinc` process on its own data dir. Derefs to its [`DataDir`].
pub struct Client {
    data: Option<DataDir>,
    child: Option<Child>,
    port: u16,
}

impl Deref for Client {
    type Target = DataDir;
    fn deref(&self) -> &DataDir {
        self.data.as_ref().expect("client has its data dir")
    }
}

impl Client {
    /// Writes a fresh data dir running `app` (copied with mode 0755) on `tasks`, starts the
    /// client on it and waits until it answers GUI RPCs.
    pub fn start(app: &Path, tasks: &[TaskSpec], prefs: &Prefs) -> Client {
        Self::launch(DataDir::create(app, tasks, prefs))
    }

    /// Starts `boinc` on `data` (which it may have written before), on a new free port.
    fn launch(mut data: DataDir) -> Client {
        for attempt in 0..3 {
            let port = free_port();
            let log = |name: &str| {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.path().join(name))
                    .unwrap()
            };
            let child = Command::new("boinc")
                .arg("--dir")
                .arg(data.path())
                .arg("--gui_rpc_port")
                .arg(port.to_string())
                .env_remove("LD_LIBRARY_PATH") // as on a volunteer's machine, not cargo's
                .stdin(Stdio::null())
                .stdout(log("client_stdout.txt"))
                .stderr(log("client_stderr.txt"))
                .process_group(0)
                .spawn()
                .expect("boinc starts (apt-get install boinc-client)");
            let mut client = Client {
                data: Some(data),
                child: Some(child),
                port,
            };
            if client.wait_ready() {
                return client;
            }
            if attempt == 2 {
                client.fail("boinc did not answer on 3 ports in turn");
            }
            // Someone else answers on this port: try another.
            client.kill_group();
            data = client.data.take().unwrap();
        }
        unreachable!()
    }

    /// Waits until our own client answers; false when another client owns the port.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(40);
        let want = format!("master URL: {}", self.url);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.fail(&format!("boinc exited at start-up with {status}"));
            }
            let out = self.boinccmd(&["--get_project_status"]);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            if out.status.success() {
                return stdout.contains(&want);
            }
            if stderr.contains("Authorization failure") || stdout.contains("Authorization failure")
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Runs `boinccmd` against this client.
    pub fn boinccmd(&self, args: &[&str]) -> Output {
        Command::new("boinccmd")
            .arg("--host")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--passwd")
            .arg(&self.password)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("boinccmd runs")
    }

    /// The client's tasks; panics if the client is not ours or does not answer.
    pub fn tasks(&self) -> Vec<TaskStatus> {
        let out = self.boinccmd(&["--get_tasks"]);
        let stdout = text(&out.stdout);
        if !out.status.success() {
            self.fail(&format!(
                "boinccmd --get_tasks failed: {}{stdout}",
                text(&out.stderr)
            ));
        }
        let tasks = parse_tasks(&stdout);
        for t in &tasks {
            if t.field("project URL") != Some(self.url()) {
                self.fail(&format!("task of another client:\n{stdout}"));
            }
        }
        tasks
    }

    /// The status of one task; panics if it is missing.
    pub fn task(&self, name: &str) -> TaskStatus {
        let tasks = self.tasks();
        match tasks.iter().find(|t| t.name == name) {
            Some(t) => t.clone(),
            None => self.fail(&format!("no task {name} in {tasks:#?}")),
        }
    }

    fn task_op(&self, task: &str, op: &str) {
        let out = self.boinccmd(&["--task", self.url(), task, op]);
        if !out.status.success() {
            self.fail(&format!(
                "boinccmd --task {task} {op}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            ));
        }
    }

    /// Suspends a task (`leave_apps_in_memory` decides whether its app pauses or quits).
    pub fn suspend(&self, task: &str) {
        self.task_op(task, "suspend");
    }

    /// Resumes a suspended task.
    pub fn resume(&self, task: &str) {
        self.task_op(task, "resume");
    }

    /// Aborts a task.
    pub fn abort(&self, task: &str) {
        self.task_op(task, "abort");
    }

    /// Polls the tasks every 200 ms until `cond` holds and returns them; after `timeout` prints
    /// a dump and panics, naming `what`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&[TaskStatus]) -> bool,
    ) -> Vec<TaskStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let tasks = self.tasks();
            if cond(&tasks) {
                return tasks;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asks the client to quit (`boinccmd --quit`) and waits up to 70 s for it to exit (it gives
    /// a running app 60 s to quit).
    pub fn quit(mut self) -> StoppedClient {
        let out = self.boinccmd(&["--quit"]);
        if !out.status.success() {
            self.fail(&format!("boinccmd --quit: {}", text(&out.stderr)));
        }
        let deadline = Instant::now() + Duration::from_secs(70);
        while self.child.as_mut().unwrap().try_wait().unwrap().is_none() {
            if Instant::now() >= deadline {
                self.fail("client still running 70 s after --quit");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = None;
        StoppedClient {
            data: self.data.take().unwrap(),
        }
    }

    /// Kills the client process alone with SIGKILL; its apps keep running (a BOINC API app
    /// notices the lost client in about 10 s and exits).
    pub fn kill9(mut self) -> StoppedClient {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        StoppedClient {
            data: self.data.take().unwrap(),
        }
    }

    /// Prints the dump (tasks too) once, then panics with `msg`.
    fn fail(&self, msg: &str) -> ! {
        self.print_dump();
        panic!("{msg}");
    }

    fn print_dump(&self) {
        if self.dumped.replace(true) {
            return;
        }
        let tasks = self.boinccmd(&["--get_tasks"]);
        eprintln!(
            "{}---- boinccmd --get_tasks (port {})\n{}{}",
            self.dump(),
            self.port,
            text(&tasks.stdout),
            text(&tasks.stderr)
        );
    }

    /// SIGKILLs the client's process group (the client and the apps it started) and reaps it.
    fn kill_group(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            self.print_dump();
        }
        self.kill_group();
    }
}

/// A client that has exited; its data dir lives on for inspection or [`StoppedClient::restart`].
pub struct StoppedClient {
    data: DataDir,
}

impl StoppedClient {
    /// Starts a new `boinc` on this data dir, on a new port, keeping the `client_state.xml` that
    /// the old one wrote.
    pub fn restart(self) -> Client {
        Client::launch(self.data)
    }
}

impl Deref for StoppedClient {
    type Target = DataDir;
    fn deref(&self) -> &DataDir {
        &self.data
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

/// The `<tag>...</tag>` elements of `xml`, in order.
fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let Some(j) = rest[i..].find(&close) else {
            break;
        };
        out.push(&rest[i..i + j + close.len()]);
        rest = &rest[i + j + close.len()..];
    }
    out
}

/// The text inside the first `<tag>...</tag>` of `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let block = *xml_blocks(xml, tag).first()?;
    Some(&block[tag.len() + 2..block.len() - tag.len() - 3])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Processes whose working dir lies under `dir`.
fn pids_in(dir: &Path) -> Vec<u32> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

/// SIGKILLs every process working under `dir` (a client or app outliving its test).
fn kill_pids_in(dir: &Path) {
    for _ in 0..3 {
        let pids = pids_in(dir);
        if pids.is_empty() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(|p| p.to_string()))
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A POSIX shell "app": sleeps as many seconds as its `config` input says, writes
/// `<logical>:<config>` to each output it has (`delta`, `report`) and finishes the BOINC way.
const SCRIPT_APP: &str = r#"#!/bin/sh
resolve() { sed -n 's:.*<soft_link>\(.*\)</soft_link>.*:\1:p' "$1"; }
cfg=$(cat "$(resolve config)")
echo "script app in $(pwd), config $cfg, LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
sleep "$cfg"
for out in delta report; do
  [ -f "$out" ] && printf '%s:%s' "$out" "$cfg" > "$(resolve $out)"
done
touch boinc_finish_called
"#;

/// Writes the script app and, per task, a work-unit folder whose `config` holds `sleep_s`.
fn script_setup(tasks: &[&str], sleep_s: u32) -> (tempfile::TempDir, PathBuf, Vec<TaskSpec>) {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("script-app");
    fs::write(&app, SCRIPT_APP).unwrap();
    let specs = tasks
        .iter()
        .map(|name| {
            let wu = tmp.path().join(name);
            fs::create_dir(&wu).unwrap();
            fs::write(wu.join("config"), sleep_s.to_string()).unwrap();
            TaskSpec::new(name, &wu, &["config"], &["delta", "report"])
        })
        .collect();
    (tmp, app, specs)
}

#[test]
fn harness_runs_a_script_app_to_completion() {
    let t0 = Instant::now();
    let (_tmp, app, specs) = script_setup(&["t1"], 2);
    let prefs = Prefs {
        extra_app_files: boinc_api_libs(),
        ..Prefs::default()
    };
    let client = Client::start(&app, &specs, &prefs);
    client.wait_for("t1 executing", Duration::from_secs(10), |ts| {
        ts.iter()
            .any(|t| t.name == "t1" && t.executing() && t.pid.is_some())
    });
    let done = client.wait_for("t1 done", Duration::from_secs(15), |ts| {
        ts[0].ready_to_report
    });
    assert!(done[0].succeeded(), "{done:#?}");
    assert_eq!(done[0].exit_status, Some(0));
    assert_eq!(client.result_exit_status("t1"), Some(0));
    // The client puts the project dir, holding the BOINC libraries, first in LD_LIBRARY_PATH.
    let stderr = client.task_stderr("t1");
    let libs = format!(
        "LD_LIBRARY_PATH=../../projects/{}:.:../..\n",
        client.escaped
    );
    assert!(stderr.contains(&libs), "{stderr}");
    assert!(client.project_dir().join("libboinc_api.so.7").is_file());
    for out in ["delta", "report"] {
        assert_eq!(
            fs::read_to_string(client.output("t1", out)).unwrap(),
            format!("{out}:2")
        );
    }
    let stopped = client.quit();
    assert!(stopped.app_pids().is_empty());
    eprintln!("one script task: {:?}", t0.elapsed());
}

#[test]
fn harness_runs_two_tasks_at_once() {
    let t0 = Instant::now();
    let (_tmp, app, specs) = script_setup(&["a", "b"], 5);
    let prefs = Prefs {
        ncpus: 2,
        ..Prefs::default()
    };
    let client = Client::start(&app, &specs, &prefs);
    client.wait_for(
        "a and b executing together",
        Duration::from_secs(10),
        |ts| ts.len() == 2 && ts.iter().all(|t| t.executing()),
    );
    let done = client.wait_for("a and b done", Duration::from_secs(20), |ts| {
        ts.iter().all(|t| t.ready_to_report)
    });
    assert!(done.iter().all(|t| t.succeeded()), "{done:#?}");
    assert_eq!(
        fs::read_to_string(client.output("b", "delta")).unwrap(),
        "delta:5"
    );
    eprintln!("two script tasks: {:?}", t0.elapsed());
}

#[test]
fn harness_aborts_suspends_kills_and_restarts() {
    let t0 = Instant::now();
    let (_tmp, app, specs) = script_setup(&["s", "x"], 3);
    let prefs = Prefs {
        ncpus: 2,
        ..Prefs::default()
    };
    let client = Client::start(&app, &specs, &prefs);
    client.wait_for("s and x executing", Duration::from_secs(10), |ts| {
        ts.iter().all(|t| t.executing())
    });
    client.abort("x");
    client.wait_for("x aborted", Duration::from_secs(5), |_| {
        let x = client.task("x");
        x.state == "aborted" && x.ready_to_report
    });
    // boinccmd shows the abort at once; client_state.xml only once the client next writes it.
    assert_eq!(client.task("x").exit_status, Some(203));
    client.suspend("s");
    client.wait_for("s suspended", Duration::from_secs(5), |ts| {
        ts[0].suspended_via_gui && ts[0].active_task_state.as_deref() == Some("SUSPENDED")
    });
    client.resume("s");
    client.wait_for("s resumed", Duration::from_secs(5), |ts| {
        !ts[0].suspended_via_gui
    });

    // A script ignores the client's messages, so it outlives a killed client.
    let stopped = client.kill9();
    assert!(!stopped.app_pids().is_empty());
    assert!(stopped.wait_apps_exit(Duration::from_secs(10)));
    // The orphan of s finished; the new client finds its `boinc_finish_called` at start-up
    // and counts s done without running it again.
    let client = stopped.restart();
    let done = client.wait_for("s done", Duration::from_secs(15), |ts| {
        ts.iter().all(|t| t.ready_to_report)
    });
    assert!(client.task("s").succeeded(), "{done:#?}");
    assert_eq!(
        fs::read_to_string(client.output("s", "report")).unwrap(),
        "report:3"
    );
    let stopped = client.quit();
    assert_eq!(stopped.result_exit_status("s"), Some(0));
    assert_eq!(stopped.result_exit_status("x"), Some(203));
    assert_eq!(stopped.task_stderr("s").matches("script app in").count(), 1);
    assert!(stopped.task_stderr("x").contains("aborted by user"));
    eprintln!("abort, suspend, kill -9, restart: {:?}", t0.elapsed());
}
