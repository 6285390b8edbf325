//! The app side of BOINC's client-app protocol in Rust, with no C or C++ behind it: what the
//! static build of the app uses instead of `libboinc_api` (feature `boinc-native`).
//!
//! It does what the library does for an app initialised with `direct_process_action = 0`:
//! stderr appended to `stderr.txt`, the slot lock, `init_data.xml`, the shared segment
//! `boinc_mmap_file` with a [`monitor`] thread, `<soft_link>` names, and the finish and
//! temporary-exit files. Without `init_data.xml` (or with a segment it cannot attach) it runs
//! standalone, as the library does. `docs/boinc-native.md` records the protocol facts and where
//! the behaviour differs from the library's.

pub mod channel;
pub mod init_data;
mod log;
pub mod monitor;
pub mod shared_memory;
pub mod slot_files;

use crate::app::boinc::api::{BoincError, InitData, Status};
use init_data::{ClientInitData, INIT_DATA_FILE};
use log::log;
use monitor::{Link, Monitor};
use shared_memory::{SharedMemory, MMAP_FILE};
use slot_files::SlotLock;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait before the one retry of a held slot lock (the library's 35 s).
const LOCK_RETRY_WAIT: Duration = Duration::from_secs(35);
/// The restart delay asked for when the slot stays locked (the library's 600 s).
const LOCKED_SLOT_DELAY_S: u32 = 600;

/// An initialised native BOINC runtime for the app in slot directory `slot`.
pub struct NativeSession {
    slot: PathBuf,
    lock: Option<SlotLock>,
    init: Option<ClientInitData>,
    monitor: Option<Monitor>,
    checkpoint_period: Duration,
    last_checkpoint: Cell<Instant>,
}

impl NativeSession {
    /// Initialises the runtime in the working directory, sending stderr to `stderr.txt` first.
    pub fn init() -> Result<Self, BoincError> {
        let slot = PathBuf::new();
        slot_files::redirect_stderr(&slot)
            .map_err(|e| BoincError::file(&slot.join(slot_files::STDERR_FILE), e))?;
        Self::init_in(slot)
    }

    /// Initialises the runtime for the slot `slot` (stderr untouched): takes the lock, reads
    /// `init_data.xml` and attaches the client's segment when there is one.
    pub fn init_in(slot: PathBuf) -> Result<Self, BoincError> {
        let lock = take_lock(&slot)?;
        let init = read_init_data(&slot);
        let monitor = match &init {
            Some(data) => attach(&slot, data),
            None => None,
        };
        let period = init
            .as_ref()
            .map_or(init_data::DEFAULT_CHECKPOINT_PERIOD, |d| {
                d.checkpoint_period
            });
        Ok(Self {
            slot,
            lock: Some(lock),
            init: init.filter(|_| monitor.is_some()),
            monitor,
            checkpoint_period: Duration::from_secs_f64(period.max(0.0)),
            last_checkpoint: Cell::new(Instant::now()),
        })
    }

    /// Whether the app runs without a client (no `init_data.xml` or no segment).
    pub fn is_standalone(&self) -> bool {
        self.monitor.is_none()
    }

    /// The physical path of a logical file name (following the slot's `<soft_link>` files).
    pub fn resolve(&self, logical: &str) -> Result<PathBuf, BoincError> {
        slot_files::resolve(&self.slot, logical)
            .map_err(|e| BoincError::file(&self.slot.join(logical), e))
    }

    /// The client's `init_data.xml` fields (defaults when standalone).
    pub fn init_data(&self) -> Result<InitData, BoincError> {
        let d = self.init.clone().unwrap_or_default();
        Ok(InitData {
            ncpus: d.ncpus,
            checkpoint_period: d.checkpoint_period,
            wu_name: d.wu_name,
            result_name: d.result_name,
            gpu_device_num: d.gpu_device_num,
        })
    }

    /// The client's current requests.
    pub fn status(&self) -> Result<Status, BoincError> {
        Ok(self
            .monitor
            .as_ref()
            .map(Monitor::status)
            .unwrap_or_default())
    }

    /// Tells the client how far the task is, in [0, 1].
    pub fn fraction_done(&self, fraction: f64) {
        if let Some(m) = &self.monitor {
            m.set_fraction_done(fraction);
        }
    }

    /// Whether the volunteer's checkpoint period has passed since the last checkpoint.
    pub fn time_to_checkpoint(&self) -> bool {
        self.last_checkpoint.get().elapsed() >= self.checkpoint_period
    }

    /// Tells the client a checkpoint has been written.
    pub fn checkpoint_completed(&self) {
        self.last_checkpoint.set(Instant::now());
        if let Some(m) = &self.monitor {
            m.checkpoint_completed();
        }
    }

    /// Ends the task with `code` (0: success), writing the finish file. Never returns.
    pub fn finish(self, code: i32) -> ! {
        self.finish_inner(code, None)
    }

    /// Ends the task with `code` and a message the client shows (with `notice`, as a notice).
    /// Never returns.
    pub fn finish_with_message(self, code: i32, message: &str, notice: bool) -> ! {
        self.finish_inner(code, Some((message, notice)))
    }

    fn finish_inner(mut self, code: i32, message: Option<(&str, bool)>) -> ! {
        log(&format!("called boinc_finish({code})"));
        if let Some(m) = self.monitor.take() {
            m.finish(Some(1.0));
        }
        if let Err(e) = slot_files::write_finish_file(&self.slot, code, message) {
            eprintln!(
                "error: cannot write {}: {e}",
                self.slot.join(slot_files::FINISH_FILE).display()
            );
        }
        self.exit(code)
    }

    /// Exits now and asks the client to restart the task after `delay_s` seconds, showing
    /// `reason`. Never returns.
    pub fn temporary_exit(mut self, delay_s: u32, reason: &str) -> ! {
        if let Some(m) = self.monitor.take() {
            m.finish(None);
        }
        if let Err(e) = slot_files::write_temporary_exit_file(&self.slot, delay_s, reason, false) {
            eprintln!(
                "error: cannot write {}: {e}",
                self.slot.join(slot_files::TEMPORARY_EXIT_FILE).display()
            );
        }
        self.exit(0)
    }

    /// Releases the lock and exits the process with `code`.
    fn exit(mut self, code: i32) -> ! {
        if let Some(lock) = self.lock.take() {
            lock.release();
        }
        std::process::exit(code)
    }
}

impl Drop for NativeSession {
    /// An app that returns without finishing (quit, abort, a lost client) stops the monitor and
    /// frees the slot, as the library's exit does.
    fn drop(&mut self) {
        self.monitor.take();
        if let Some(lock) = self.lock.take() {
            lock.release();
        }
    }
}

/// Takes the slot lock; if another process holds it, waits once (35 s), then asks the client
/// to restart the task in 10 minutes.
fn take_lock(slot: &Path) -> Result<SlotLock, BoincError> {
    let path = slot.join(slot_files::LOCK_FILE);
    for attempt in 0..2 {
        match SlotLock::try_take(slot).map_err(|e| BoincError::file(&path, e))? {
            Some(lock) => return Ok(lock),
            None if attempt == 0 => {
                log(&format!(
                    "cannot take {}: another process holds it; waiting 35 s",
                    path.display()
                ));
                std::thread::sleep(LOCK_RETRY_WAIT);
            }
            None => {}
        }
    }
    log(&format!("cannot take {}; exiting", path.display()));
    let reason = "Waiting to acquire slot directory lock.  Another instance may be running.";
    if let Err(e) = slot_files::write_temporary_exit_file(slot, LOCKED_SLOT_DELAY_S, reason, false)
    {
        eprintln!("error: cannot write the temporary exit file: {e}");
    }
    std::process::exit(0)
}

/// `init_data.xml` of the slot, or `None` (standalone) when it is absent or unusable, saying
/// why on stderr as the library does.
fn read_init_data(slot: &Path) -> Option<ClientInitData> {
    let path = slot.join(INIT_DATA_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log("Can't open init data file - running in standalone mode");
            return None;
        }
        Err(e) => {
            log(&format!(
                "cannot read {}: {e}; running standalone",
                path.display()
            ));
            return None;
        }
    };
    match init_data::parse(&text, &path) {
        Ok(d) => Some(d),
        Err(e) => {
            log(&format!("{e}; running standalone"));
            None
        }
    }
}

/// Maps the client's segment and starts the monitor, or `None` (standalone) with the reason.
fn attach(slot: &Path, data: &ClientInitData) -> Option<Monitor> {
    if data.shm_key != -1 {
        log(&format!(
            "init_data.xml asks for System V shared memory (key {}), which only clients older \
             than 6.0 use; running standalone",
            data.shm_key
        ));
        return None;
    }
    let path = slot.join(MMAP_FILE);
    let link = Link {
        client_pid: data.client_pid,
        fraction_done_start: data.fraction_done_start,
        fraction_done_end: data.fraction_done_end,
        wu_cpu_time: data.wu_cpu_time,
    };
    match SharedMemory::open(&path).and_then(|shm| Monitor::start(shm, link)) {
        Ok(m) => Some(m),
        Err(e) => {
            log(&format!(
                "cannot attach {}: {e}; running standalone",
                path.display()
            ));
            None
        }
    }
}
