//! The integration tests of the volunteer app and its training core, as one test binary.

mod bad_input;
mod fixture;
mod formats;
mod gradcheck;
mod learning;
mod resume;
