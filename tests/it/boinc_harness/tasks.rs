//! The tasks as `boinccmd --get_tasks` shows them: [`TaskStatus`] and its parser.

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
