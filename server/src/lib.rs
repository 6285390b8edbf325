//! agiNet's project tools as a library: one module per step of a round (route, make-work,
//! validate, assimilate, aggregate, snapshot) and the project folder they share. The
//! `aginet-server` binary is its command line; the fuzz targets (`fuzz/`) drive `validate`
//! through it on a volunteer's untrusted bytes.

pub mod accumulate;
pub mod aggregate;
pub mod assimilate;
pub mod boinc_assimilate;
pub mod boinc_db;
pub mod boinc_work;
pub mod convert;
pub mod convert_bert;
pub mod cut_base;
pub mod delta_diff;
pub mod demo;
pub mod digits_base;
pub mod fault;
pub mod init;
pub mod make_work;
pub mod project;
pub mod queue;
pub mod resident;
pub mod route;
pub mod scoreboard;
pub mod scorers;
pub mod sealed;
pub mod snapshot;
pub mod strategy;
pub mod validate;
pub mod work_generator;
