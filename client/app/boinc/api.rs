//! What both backends of the BOINC runtime hand the app: their error type, the client's
//! requests as of the last poll, and the fields of `init_data.xml` the app uses.

use std::path::Path;

/// Failures of the BOINC app API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BoincError {
    /// A call returned a non-zero BOINC error code.
    #[error("{call} failed with BOINC error {code}")]
    Call {
        /// The API function.
        call: &'static str,
        /// Its return code (see BOINC's `error_numbers.h`).
        code: i32,
    },
    /// A name or message held an interior NUL byte.
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    /// A file of the slot could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl BoincError {
    /// A [`BoincError::File`] for `path`.
    pub fn file(path: &Path, source: std::io::Error) -> Self {
        Self::File {
            path: path.display().to_string(),
            source,
        }
    }
}

/// What the client has asked of the app, as of the last poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The client wants computation paused.
    pub suspended: bool,
    /// The client wants the app to exit (it will be restarted later).
    pub quit_request: bool,
    /// The task was aborted: exit, no result.
    pub abort_request: bool,
    /// The client has stopped sending heartbeats: it is gone.
    pub no_heartbeat: bool,
}

/// The fields of the client's `init_data.xml` the app uses.
#[derive(Clone, Debug, PartialEq)]
pub struct InitData {
    /// CPUs the client gives this task.
    pub ncpus: f64,
    /// The volunteer's minimum seconds between checkpoints.
    pub checkpoint_period: f64,
    /// Work unit name.
    pub wu_name: String,
    /// Result name.
    pub result_name: String,
    /// The GPU the client assigned to this task (BOINC's device number; negative: none).
    pub gpu_device_num: i32,
}

impl InitData {
    /// The GPU the client assigned, if any.
    pub fn gpu(&self) -> Option<usize> {
        usize::try_from(self.gpu_device_num).ok()
    }
}
