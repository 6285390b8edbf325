//! The server's integration tests, one module per part of the round, linked into one test
//! binary: each binary carries the whole of candle and the app, so one instead of eleven keeps
//! the build's disk and link time small.

mod common;

mod boinc_work;
mod cli;
mod convert;
mod demo;
mod init_all;
mod language;
mod memory;
mod planner;
mod platforms;
mod resident;
mod result;
mod round;
mod snapshot;
mod vision;
