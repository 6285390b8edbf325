//! The training loop's [`Host`] under the BOINC client: checkpoints only when the client allows,
//! reports progress, pauses while suspended, and stops on quit, abort or a lost client.

#[cfg(all(feature = "boinc", not(feature = "boinc-native")))]
use crate::app::boinc::ffi::FfiSession as Session;
#[cfg(all(feature = "boinc-native", unix))]
use crate::app::boinc::native::NativeSession as Session;
use crate::learn::train::{Control, Host};
use std::time::Duration;

/// How often the status is re-read while suspended.
const SUSPENDED_POLL: Duration = Duration::from_millis(100);

/// Why the client stopped the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The client asked the app to quit (it restarts the task later from its checkpoint).
    Quit,
    /// The task was aborted.
    Abort,
    /// The client stopped sending heartbeats.
    ClientGone,
}

/// A [`Host`] backed by a BOINC [`Session`].
pub struct BoincHost<'a> {
    session: &'a Session,
    stop: Option<StopReason>,
}

impl<'a> BoincHost<'a> {
    /// A host over an initialised session.
    pub fn new(session: &'a Session) -> Self {
        Self {
            session,
            stop: None,
        }
    }

    /// Why the last [`Control::Stop`] was returned.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Reads the status, waiting out a suspension; `None` means go on.
    fn check_status(&mut self) -> Option<StopReason> {
        loop {
            let status = match self.session.status() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("boinc: {e}; treating the client as gone");
                    return Some(StopReason::ClientGone);
                }
            };
            if status.abort_request {
                return Some(StopReason::Abort);
            }
            if status.quit_request {
                return Some(StopReason::Quit);
            }
            if status.no_heartbeat {
                return Some(StopReason::ClientGone);
            }
            if !status.suspended {
                return None;
            }
            std::thread::sleep(SUSPENDED_POLL);
        }
    }
}

impl Host for BoincHost<'_> {
    fn poll(&mut self) -> Control {
        self.stop = self.check_status();
        match self.stop {
            None => Control::Continue,
            Some(_) => Control::Stop,
        }
    }

    fn time_to_checkpoint(&mut self, _step: u32) -> bool {
        self.session.time_to_checkpoint()
    }

    fn checkpoint_done(&mut self) {
        self.session.checkpoint_completed();
    }

    fn progress(&mut self, fraction: f64) {
        self.session.fraction_done(fraction);
    }
}
