//! The FFI backend: BOINC's own app API through `boinc-api-sys`. Every C return code goes
//! through [`check`]; all `unsafe` of this backend lives here and in `boinc-api-sys`.

use crate::app::boinc::api::{BoincError, InitData, Status};
use boinc_api_sys as sys;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::path::PathBuf;

/// Turns a BOINC return code into a `Result`.
fn check(call: &'static str, code: c_int) -> Result<(), BoincError> {
    if code == 0 {
        Ok(())
    } else {
        Err(BoincError::Call { call, code })
    }
}

fn c_string(s: &str) -> Result<CString, BoincError> {
    CString::new(s).map_err(|_| BoincError::Nul(s.to_string()))
}

/// An initialised BOINC runtime. Not `Send`: the API's state belongs to the thread that
/// initialised it.
pub struct FfiSession {
    _not_send: PhantomData<*const ()>,
}

impl FfiSession {
    /// Initialises the API as the main program of a multi-threaded app that polls for process
    /// control itself.
    pub fn init() -> Result<Self, BoincError> {
        let mut options = sys::BOINC_OPTIONS::default();
        // SAFETY: `options` is a valid, exclusively borrowed BOINC_OPTIONS for the call.
        unsafe { sys::aginet_boinc_options_defaults(&mut options) };
        options.direct_process_action = 0;
        options.multi_thread = 1;
        // SAFETY: `options` is fully initialised; the API copies it during the call.
        check("boinc_init_options", unsafe {
            sys::boinc_init_options(&mut options)
        })?;
        Ok(Self {
            _not_send: PhantomData,
        })
    }

    /// Whether the app runs without a BOINC client (names resolve to themselves).
    pub fn is_standalone(&self) -> bool {
        // SAFETY: no arguments; reads state set up by `init`.
        unsafe { sys::boinc_is_standalone() != 0 }
    }

    /// The physical path of a logical file name (following the slot's `<soft_link>` files).
    pub fn resolve(&self, logical: &str) -> Result<PathBuf, BoincError> {
        let name = c_string(logical)?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes, which is
        // the length passed, and the API NUL-terminates within it.
        let code = unsafe {
            sys::boinc_resolve_filename(name.as_ptr(), buf.as_mut_ptr().cast(), buf.len() as c_int)
        };
        check("boinc_resolve_filename", code)?;
        let path =
            CStr::from_bytes_until_nul(&buf).map_err(|_| BoincError::Nul(logical.to_string()))?;
        Ok(PathBuf::from(path.to_string_lossy().into_owned()))
    }

    /// Reads the client's `init_data.xml` fields.
    pub fn init_data(&self) -> Result<InitData, BoincError> {
        let mut raw = sys::AGINET_INIT_DATA::default();
        // SAFETY: `raw` is a valid, exclusively borrowed AGINET_INIT_DATA; the shim fills it and
        // NUL-terminates its strings.
        check("boinc_get_init_data", unsafe {
            sys::aginet_boinc_init_data(&mut raw)
        })?;
        let text = |chars: &[std::os::raw::c_char]| {
            let bytes: Vec<u8> = chars
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok(InitData {
            ncpus: raw.ncpus,
            checkpoint_period: raw.checkpoint_period,
            wu_name: text(&raw.wu_name),
            result_name: text(&raw.result_name),
            gpu_device_num: raw.gpu_device_num,
        })
    }

    /// The client's current requests.
    pub fn status(&self) -> Result<Status, BoincError> {
        let mut raw = sys::BOINC_STATUS::default();
        // SAFETY: `raw` is a valid, exclusively borrowed BOINC_STATUS the API copies into.
        check("boinc_get_status", unsafe {
            sys::boinc_get_status(&mut raw)
        })?;
        Ok(Status {
            suspended: raw.suspended != 0,
            quit_request: raw.quit_request != 0,
            abort_request: raw.abort_request != 0,
            no_heartbeat: raw.no_heartbeat != 0,
        })
    }

    /// Tells the client how far the task is, in [0, 1].
    pub fn fraction_done(&self, fraction: f64) {
        // SAFETY: plain value argument; the API stores it for its timer thread. Its return code
        // is always 0.
        unsafe { sys::boinc_fraction_done(fraction.clamp(0.0, 1.0)) };
    }

    /// Whether the volunteer's preferences allow a checkpoint now.
    pub fn time_to_checkpoint(&self) -> bool {
        // SAFETY: no arguments.
        unsafe { sys::boinc_time_to_checkpoint() != 0 }
    }

    /// Tells the client a checkpoint has been written.
    pub fn checkpoint_completed(&self) {
        // SAFETY: no arguments; always returns 0.
        unsafe { sys::boinc_checkpoint_completed() };
    }

    /// Ends the task with `code` (0: success), writing the finish file. Never returns.
    pub fn finish(self, code: i32) -> ! {
        // SAFETY: `boinc_finish` flushes the API's state and exits the process.
        unsafe { sys::boinc_finish(code) };
        unreachable!("boinc_finish returned");
    }

    /// Ends the task with `code` and a message the client shows (with `notice`, as a notice).
    /// Never returns.
    pub fn finish_with_message(self, code: i32, message: &str, notice: bool) -> ! {
        let msg = c_string(message)
            .unwrap_or_else(|_| CString::new("(message had a NUL byte)").expect("no NUL"));
        // SAFETY: `msg` is NUL-terminated and outlives the call, which exits the process.
        unsafe { sys::aginet_boinc_finish_message(code, msg.as_ptr(), c_int::from(notice)) };
        unreachable!("boinc_finish_message returned");
    }

    /// Exits now and asks the client to restart the task after `delay_s` seconds, showing
    /// `reason`. Never returns.
    pub fn temporary_exit(self, delay_s: u32, reason: &str) -> ! {
        let msg =
            c_string(reason).unwrap_or_else(|_| CString::new("temporary exit").expect("no NUL"));
        // SAFETY: `msg` is NUL-terminated and outlives the call, which exits the process.
        unsafe { sys::aginet_boinc_temporary_exit(delay_s as c_int, msg.as_ptr(), 0) };
        unreachable!("boinc_temporary_exit returned");
    }
}
