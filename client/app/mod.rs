//! The volunteer app: one work unit end to end, the BOINC client-app protocol, what a build
//! says it is, and the exit codes.

pub mod boinc;
pub mod build_info;
pub mod exit;
pub mod workunit;
