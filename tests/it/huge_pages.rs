//! The app starts itself again with glibc's allocator asking for transparent huge pages, where
//! the kernel gives them only on request, and keeps a setting someone chose; the delta's bytes
//! do not depend on it.

use super::fixture::{stderr, WorkDir};
use std::process::{Command, Output};

const STEPS: u32 = 3;
const SAID: &str = "transparent huge pages requested";

/// `aginet run` on a tiny work unit with `GLIBC_TUNABLES` as given (unset for `None`), and the
/// delta it wrote.
fn run(tunables: Option<&str>) -> (Output, Vec<u8>) {
    let wd = WorkDir::tiny(STEPS);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aginet"));
    cmd.args(["run", "--threads", "2", "--dir"])
        .arg(wd.dir.path());
    match tunables {
        Some(t) => cmd.env("GLIBC_TUNABLES", t),
        None => cmd.env_remove("GLIBC_TUNABLES"),
    };
    let out = cmd.output().expect("aginet runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let delta = wd.read("delta");
    (out, delta)
}

#[test]
fn the_app_asks_for_huge_pages_where_the_kernel_wants_to_be_asked() {
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let (asked, with) = run(None);
    assert_eq!(
        stderr(&asked).contains(SAID),
        mode.contains("[madvise]"),
        "kernel mode {mode:?}: {}",
        stderr(&asked)
    );
    // Set to 0 by someone: kept, so nothing is requested.
    let (kept, without) = run(Some("glibc.malloc.hugetlb=0"));
    assert!(!stderr(&kept).contains(SAID), "{}", stderr(&kept));
    assert!(with == without, "the delta depends on the page size");
}
