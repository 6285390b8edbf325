//! The app's side of BOINC: one owner type, [`Session`], for an initialised BOINC runtime, with
//! two backends behind the same methods.
//!
//! - `ffi` (feature `boinc`, the default): BOINC's own app API, `libboinc_api`, through
//!   `boinc-api-sys`.
//! - [`native`] (feature `boinc-native`, which wins when both are on): the client-app protocol
//!   written in Rust, for the fully static build. It is always compiled and tested (on Unix).
//!
//! Either way the runtime behaves as the library initialised with `direct_process_action = 0`:
//! suspend, quit and abort requests (and a lost client) are recorded in a status the app polls
//! at safe points, instead of signals suspending the process or `exit()` called from another
//! thread, both unsafe in a multi-threaded app.

pub mod api;
#[cfg(feature = "boinc")]
mod ffi;
#[cfg(any(feature = "boinc", feature = "boinc-native"))]
mod host;
#[cfg(unix)]
pub mod native;

pub use api::{BoincError, InitData, Status};
#[cfg(any(feature = "boinc", feature = "boinc-native"))]
pub use host::{BoincHost, StopReason};

#[cfg(all(feature = "boinc", not(feature = "boinc-native")))]
pub use ffi::FfiSession as Session;
#[cfg(all(feature = "boinc-native", unix))]
pub use native::NativeSession as Session;
#[cfg(all(feature = "boinc-native", not(unix)))]
compile_error!(
    "feature `boinc-native` speaks the protocol over Unix shared memory only; \
     docs/boinc-native.md lists what Windows needs (use feature `boinc` there)"
);
