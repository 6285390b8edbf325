//! Every input that ever found a bug, replayed through its target's body in the normal test
//! suite (`fuzz/regressions/<target>/`): none may panic, and none may make one allocation
//! larger than the fuzz job's limit allows for its size (the allocator below measures it).
//! Also checks that the fuzz crate builds a binary for every target body and no other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, remembering the largest single allocation since the last reset.
struct Measured;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Measured = Measured;

/// `ci/fuzz.sh`'s `-malloc_limit_mb`: every allocation must be smaller.
const MALLOC_LIMIT: usize = 512 << 20;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn every_input_that_found_a_bug_passes_its_target() {
    let root = fuzz_dir().join("regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (_, run) = aginet_fuzz_targets::TARGETS
            .iter()
            .find(|(t, _)| *t == name)
            .unwrap_or_else(|| panic!("{}: no fuzz target is called {name}", dir.display()));
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            LARGEST.store(0, Ordering::Relaxed);
            run(&bytes);
            let largest = LARGEST.load(Ordering::Relaxed);
            assert!(
                largest < MALLOC_LIMIT,
                "{}: one allocation of {largest} bytes, over the fuzz job's {MALLOC_LIMIT}",
                input.display()
            );
            replayed += 1;
        }
    }
    assert!(replayed > 0, "{}: no regression inputs", root.display());
}

#[test]
fn the_fuzz_crate_has_a_binary_for_every_target_and_no_other() {
    let mut targets: Vec<&str> = aginet_fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    targets.sort();
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "aginet-fuzz")
        .collect();
    bins.sort();
    let mut targets: Vec<&str> = aginet_fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    targets.sort();
    assert_eq!(
        bins, targets,
        "fuzz/Cargo.toml's [[bin]]s and TARGETS differ"
    );
    for t in targets {
        assert!(
            fuzz_dir().join(format!("fuzz_targets/{t}.rs")).exists(),
            "fuzz/fuzz_targets/{t}.rs is missing"
        );
    }
    let script = std::fs::read_to_string(fuzz_dir().join("../ci/fuzz.sh")).unwrap();
    let all = script
        .lines()
        .find_map(|l| l.strip_prefix("ALL=("))
        .expect("ci/fuzz.sh lists ALL targets");
    let mut listed: Vec<&str> = all.trim_end_matches(')').split(' ').collect();
    listed.sort();
    let mut targets: Vec<&str> = aginet_fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    targets.sort();
    assert_eq!(listed, targets, "ci/fuzz.sh's ALL and TARGETS differ");
}

/// The `name version` pairs of a Cargo.lock.
fn locked(path: &Path) -> std::collections::BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = std::collections::BTreeSet::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            out.insert((n, v.trim_matches('"').to_string()));
        }
    }
    out
}

/// `ci/fuzz.sh` takes every dependency from the tests' build, which it can only when the fuzz
/// crate's lock file pins the versions the workspace's does (`cp Cargo.lock fuzz/` and a
/// `cargo metadata` in `fuzz/` bring it back in line).
#[test]
fn the_fuzz_crate_locks_the_workspace_s_versions() {
    let workspace = locked(&fuzz_dir().join("../Cargo.lock"));
    let names: std::collections::BTreeSet<&str> =
        workspace.iter().map(|(n, _)| n.as_str()).collect();
    let differing: Vec<_> = locked(&fuzz_dir().join("Cargo.lock"))
        .into_iter()
        .filter(|(n, _)| names.contains(n.as_str()))
        .filter(|p| !workspace.contains(p))
        .collect();
    assert!(
        differing.is_empty(),
        "fuzz/Cargo.lock pins versions the workspace does not: {differing:?}"
    );
}
