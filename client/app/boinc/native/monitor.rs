//! The thread that keeps the app and the client in touch, as the library's timer thread does
//! with `direct_process_action = 0`: every 0.1 s it takes the client's heartbeat and process
//! control messages and records what they ask in a status the app polls; every second it sends
//! the app's CPU time, checkpoint CPU time and fraction done, and checks that the client lives.

use super::shared_memory::{SharedMemory, Slot};
use crate::app::boinc::api::Status;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The library's timer period.
pub const TICK: Duration = Duration::from_millis(100);
/// Ticks per status message and liveness check.
const TICKS_PER_SECOND: u64 = 10;
/// Without a client pid: seconds without a heartbeat after which the client counts as gone.
const HEARTBEAT_GIVEUP_SECONDS: u64 = 30;
/// With a client pid: seconds between checks that the process exists.
const PID_CHECK_SECONDS: u64 = 10;
/// How long a finishing app waits for the client to take its last status message.
const FINAL_STATUS_WAIT: Duration = Duration::from_secs(2);

/// What the monitor needs from `init_data.xml`.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// The client's pid (0: unknown).
    pub client_pid: u32,
    /// Start of this task's share of the client's progress scale.
    pub fraction_done_start: f64,
    /// End of it.
    pub fraction_done_end: f64,
    /// CPU seconds of earlier runs of the task.
    pub wu_cpu_time: f64,
}

/// State shared between the app's thread and the monitor.
#[derive(Debug)]
struct State {
    status: Status,
    /// The app's progress in [0, 1]; negative until it first reports.
    fraction_done: f64,
    /// Total CPU seconds at the last checkpoint (earlier runs included).
    checkpoint_cpu_time: f64,
}

/// A running monitor thread.
pub struct Monitor {
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<SharedMemory>>,
    /// Dropping it wakes and stops the thread at once.
    stop: Option<Sender<()>>,
    link: Link,
}

impl Monitor {
    /// Starts the thread over the client's segment.
    pub fn start(shm: SharedMemory, link: Link) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State {
            status: Status::default(),
            fraction_done: -1.0,
            checkpoint_cpu_time: link.wu_cpu_time,
        }));
        let shared = Arc::clone(&state);
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("boinc-monitor".into())
            .stack_size(256 * 1024)
            .spawn(move || run(shm, shared, link, stopped))?;
        Ok(Self {
            state,
            thread: Some(thread),
            stop: Some(stop),
            link,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client's requests as of the last tick. Should the thread have ended on its own (it
    /// does not, short of a bug), the client counts as gone: nothing watches it any more.
    pub fn status(&self) -> Status {
        let mut status = self.lock().status;
        if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            status.no_heartbeat = true;
        }
        status
    }

    /// Records the app's progress, sent with the next status message.
    pub fn set_fraction_done(&self, fraction: f64) {
        self.lock().fraction_done = fraction.clamp(0.0, 1.0);
    }

    /// Records a checkpoint: the CPU time now becomes the checkpoint CPU time the client sees.
    pub fn checkpoint_completed(&self) {
        let now = process_cpu_seconds() + self.link.wu_cpu_time;
        self.lock().checkpoint_cpu_time = now;
    }

    /// Stops the thread and sends one last status with `fraction` done, waiting up to 2 s for
    /// the client to take it.
    pub fn finish(mut self, fraction: Option<f64>) {
        if let Some(f) = fraction {
            self.set_fraction_done(f);
        }
        let Some(mut shm) = self.stop_thread() else {
            return;
        };
        let message = status_message(&self.lock(), &self.link);
        let channel = shm.channel(Slot::AppStatus);
        let deadline = Instant::now() + FINAL_STATUS_WAIT;
        while channel.has_message() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        channel.overwrite(&message);
        // Give the client (which polls once a second) the chance to read it before the exit.
        while channel.has_message() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_thread(&mut self) -> Option<SharedMemory> {
        self.stop.take();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The thread's loop; returns the segment when told to stop.
fn run(
    mut shm: SharedMemory,
    state: Arc<Mutex<State>>,
    link: Link,
    stopped: mpsc::Receiver<()>,
) -> SharedMemory {
    let heartbeat = shm.channel(Slot::Heartbeat);
    let control = shm.channel(Slot::ProcessControlRequest);
    let app_status = shm.channel(Slot::AppStatus);
    let mut tick: u64 = 0;
    let mut last_heartbeat: u64 = 0;
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
        tick += 1;
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if heartbeat
            .receive()
            .is_some_and(|m| m.contains("<heartbeat/>"))
        {
            last_heartbeat = tick;
        }
        if let Some(message) = control.receive() {
            apply_control(&mut st.status, &message);
        }
        if !tick.is_multiple_of(TICKS_PER_SECOND) {
            continue;
        }
        if !st.status.no_heartbeat {
            if let Some(why) = client_gone(&link, tick, last_heartbeat) {
                crate::app::boinc::native::log::log(&format!("{why} - exiting"));
                st.status.no_heartbeat = true;
            }
        }
        if !st.status.suspended {
            app_status.send(&status_message(&st, &link));
        }
    }
    shm
}

/// Applies one process-control message; quit and abort stay set once seen.
fn apply_control(status: &mut Status, message: &str) {
    if message.contains("<suspend/>") {
        status.suspended = true;
    }
    if message.contains("<resume/>") {
        status.suspended = false;
    }
    if message.contains("<quit/>") {
        status.quit_request = true;
    }
    if message.contains("<abort/>") {
        status.abort_request = true;
    }
}

/// Why the client counts as gone at `tick`, if it does: its process no longer exists (checked
/// every 10 s when its pid is known), or 30 s passed without a heartbeat (when it is not).
fn client_gone(link: &Link, tick: u64, last_heartbeat: u64) -> Option<&'static str> {
    if link.client_pid != 0 {
        if tick.is_multiple_of(PID_CHECK_SECONDS * TICKS_PER_SECOND)
            && !process_exists(link.client_pid)
        {
            return Some("BOINC client no longer exists");
        }
        return None;
    }
    (tick - last_heartbeat > HEARTBEAT_GIVEUP_SECONDS * TICKS_PER_SECOND)
        .then_some("no heartbeat from the client for 30 s")
}

/// Whether a process with `pid` exists (a permission error still means it does).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The app-status message: both CPU times always, the fraction done once the app reported one,
/// mapped onto the client's scale; numbers as C's `%e` writes them.
fn status_message(st: &State, link: &Link) -> String {
    let mut text = format!(
        "<current_cpu_time>{}</current_cpu_time>\n<checkpoint_cpu_time>{}</checkpoint_cpu_time>\n",
        c_exp(process_cpu_seconds() + link.wu_cpu_time),
        c_exp(st.checkpoint_cpu_time)
    );
    if st.fraction_done >= 0.0 {
        let f = link.fraction_done_start
            + st.fraction_done * (link.fraction_done_end - link.fraction_done_start);
        text.push_str(&format!("<fraction_done>{}</fraction_done>\n", c_exp(f)));
    }
    text
}

/// `x` as C's `printf("%e")`: six decimals, an exponent with sign and at least two digits.
fn c_exp(x: f64) -> String {
    let s = format!("{x:.6e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let e: i32 = exp.parse().unwrap_or(0);
            format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
        None => s,
    }
}

/// CPU seconds of the whole process (all threads, user and system).
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: all-zero is a valid `rusage`; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to an `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::super::channel::CHANNEL_SIZE;
    use super::super::shared_memory::SEGMENT_SIZE;
    use super::*;

    #[test]
    fn numbers_are_written_as_c_does() {
        assert_eq!(c_exp(12.345), "1.234500e+01");
        assert_eq!(c_exp(0.0), "0.000000e+00");
        assert_eq!(c_exp(0.000123), "1.230000e-04");
        assert_eq!(c_exp(1e100), "1.000000e+100");
    }

    #[test]
    fn control_messages_set_the_status_and_quit_and_abort_stay() {
        let mut s = Status::default();
        apply_control(&mut s, "<suspend/>");
        assert!(s.suspended);
        apply_control(&mut s, "<resume/>");
        assert!(!s.suspended);
        apply_control(&mut s, "<quit/>");
        apply_control(&mut s, "<resume/>");
        assert!(s.quit_request && !s.abort_request);
        apply_control(&mut s, "<abort/>");
        assert!(s.abort_request);
    }

    #[test]
    fn a_client_without_pid_is_gone_after_30_s_without_heartbeats() {
        let link = Link {
            client_pid: 0,
            fraction_done_start: 0.0,
            fraction_done_end: 1.0,
            wu_cpu_time: 0.0,
        };
        assert!(client_gone(&link, 300, 0).is_none());
        assert!(client_gone(&link, 310, 0).is_some());
        assert!(client_gone(&link, 310, 300).is_none());
        let alive = Link {
            client_pid: std::process::id(),
            ..link
        };
        assert!(
            client_gone(&alive, 10_000, 0).is_none(),
            "a live pid beats heartbeats"
        );
        assert!(!process_exists(i32::MAX as u32));
    }

    /// Plays the client's side of the segment in a file, as the real client's mapping would.
    struct FakeClient {
        _dir: tempfile::TempDir,
        shm: SharedMemory,
    }

    impl FakeClient {
        fn new() -> (Self, SharedMemory) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("boinc_mmap_file");
            std::fs::write(&path, vec![0u8; SEGMENT_SIZE]).unwrap();
            let client = SharedMemory::open(&path).unwrap();
            let app = SharedMemory::open(&path).unwrap();
            (
                Self {
                    _dir: dir,
                    shm: client,
                },
                app,
            )
        }

        fn send(&mut self, slot: Slot, msg: &str) {
            assert!(self.shm.channel(slot).send(msg));
        }

        fn receive(&mut self, slot: Slot, within: Duration) -> Option<String> {
            let deadline = Instant::now() + within;
            loop {
                if let Some(m) = self.shm.channel(slot).receive() {
                    return Some(m);
                }
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn wait_for(monitor: &Monitor, want: impl Fn(&Status) -> bool) -> Status {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let s = monitor.status();
            if want(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_monitor_talks_the_protocol_over_a_shared_segment() {
        assert_eq!(SEGMENT_SIZE, 8 * CHANNEL_SIZE);
        let (mut client, app) = FakeClient::new();
        let link = Link {
            client_pid: std::process::id(),
            fraction_done_start: 0.5,
            fraction_done_end: 1.0,
            wu_cpu_time: 100.0,
        };
        let monitor = Monitor::start(app, link).unwrap();

        let first = client
            .receive(Slot::AppStatus, Duration::from_secs(3))
            .expect("status within 1 s");
        assert!(first.starts_with("<current_cpu_time>1.0"), "{first}");
        assert!(
            first.contains("<checkpoint_cpu_time>1.000000e+02</checkpoint_cpu_time>\n"),
            "{first}"
        );
        assert!(
            !first.contains("fraction_done"),
            "no fraction before the app reports one: {first}"
        );

        monitor.set_fraction_done(0.5);
        let second = client
            .receive(Slot::AppStatus, Duration::from_secs(3))
            .unwrap();
        assert!(
            second.ends_with("<fraction_done>7.500000e-01</fraction_done>\n"),
            "{second}"
        );

        client.send(Slot::ProcessControlRequest, "<suspend/>");
        assert!(wait_for(&monitor, |s| s.suspended).suspended);
        let _ = client.receive(Slot::AppStatus, Duration::from_millis(0));
        assert!(
            client
                .receive(Slot::AppStatus, Duration::from_millis(1500))
                .is_none(),
            "no status while suspended"
        );
        client.send(Slot::ProcessControlRequest, "<resume/>");
        assert!(!wait_for(&monitor, |s| !s.suspended).suspended);
        client.send(Slot::ProcessControlRequest, "<quit/>");
        assert!(wait_for(&monitor, |s| s.quit_request).quit_request);

        monitor.checkpoint_completed();
        let _ = client.receive(Slot::AppStatus, Duration::from_millis(0));
        let after = client
            .receive(Slot::AppStatus, Duration::from_secs(3))
            .unwrap();
        assert!(
            !after.contains("<checkpoint_cpu_time>1.000000e+02<"),
            "checkpoint time moves: {after}"
        );

        let reader = std::thread::spawn(move || {
            // The final message must arrive even though the thread has stopped.
            let mut last = String::new();
            while let Some(m) = client.receive(Slot::AppStatus, Duration::from_secs(3)) {
                last = m;
                if last.contains("<fraction_done>1.000000e+00<") {
                    break;
                }
            }
            last
        });
        monitor.finish(Some(1.0));
        let last = reader.join().unwrap();
        assert!(
            last.contains("<fraction_done>1.000000e+00</fraction_done>"),
            "{last}"
        );
    }
}
