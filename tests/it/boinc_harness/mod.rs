//! Runs apps under Debian's real BOINC client (7.20) with no server: a fresh data directory whose
//! `client_state.xml` already holds the tasks, a `boinc` child process on a private loopback GUI
//! RPC port, and `boinccmd` to watch and steer it. See `shared/BOINC-NOTES.md` for the facts.
//!
//! Every [`Client`] has its own data dir, project URL, port and password. Dropping it kills the
//! client's process group and any process still working inside its data dir; while panicking it
//! first prints a dump (tasks, client log, slot stderr, the `<result>`s of `client_state.xml`).

mod apps;
mod data_dir;
mod process;
mod tasks;
mod tests;
mod xml;

use std::fs;
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use apps::{ffi_build, static_build, static_ffi_build, AppBuild};
pub use data_dir::DataDir;
pub use tasks::{parse_tasks, TaskStatus};

use process::{free_port, text};

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
