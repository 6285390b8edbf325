//! One work unit of the tiny skill on each platform's app version, run on this machine: the
//! Linux x86_64 build natively, the Windows build under Wine, the Linux aarch64 build under
//! qemu's user mode (the static FFI builds of `ci/build-static.sh --ffi --target …`, made on
//! first use). Prints, per platform, the file's size and what it links, the median wall time of
//! a whole run (start to exit) against the native one, and its delta against the native delta:
//! byte-identical, or the relative L2 distance (`aginet-server delta-diff`).
//!
//! `cargo bench -p aginet-server --bench platforms [-- --steps 20 --runs 3 --threads 1]`

#[path = "../tests/rounds/platforms/emulated.rs"]
mod emulated;

use clap::Parser;
use emulated::Platform;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// What is measured.
#[derive(Parser, Debug)]
struct Options {
    /// Optimizer steps of the work unit.
    #[arg(long, default_value_t = 20)]
    steps: u32,
    /// Runs per platform (the median is shown).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Threads of each run.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// cargo bench's own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let options = Options::parse();
    let work = tempfile::tempdir().unwrap();
    let wu = work.path().join("wu");
    write_work_unit(&wu, options.steps);
    println!(
        "tiny work unit, {} steps, {} thread(s), median of {} runs",
        options.steps, options.threads, options.runs
    );
    println!("platform\tfile MB\tlinks\tseconds\t× native\tdelta against x86_64's");
    let mut native: Option<(f64, Vec<u8>)> = None;
    for platform in [
        Platform::LinuxX86_64,
        Platform::Windows,
        Platform::LinuxAarch64,
    ] {
        let binary = platform.binary();
        let mut times = Vec::new();
        let mut delta = Vec::new();
        for run in 0..options.runs {
            let dir = work.path().join(format!("{platform:?}-{run}"));
            copy_dir(&wu, &dir);
            let args: Vec<OsString> = vec![
                "run".into(),
                "--threads".into(),
                options.threads.to_string().into(),
                "--dir".into(),
                platform.path(&dir),
            ];
            let started = Instant::now();
            let out = platform.command(&args).output().unwrap();
            times.push(started.elapsed().as_secs_f64());
            assert!(
                out.status.success(),
                "{platform:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            delta = std::fs::read(dir.join("delta")).unwrap();
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let (native_s, native_delta) = native.get_or_insert_with(|| (median, delta.clone()));
        let compared = if delta == *native_delta {
            "byte-identical".to_string()
        } else {
            relative_l2(work.path(), native_delta, &delta)
        };
        println!(
            "{platform:?}\t{:.1}\t{}\t{median:.2}\t{:.1}\t{compared}",
            std::fs::metadata(&binary).unwrap().len() as f64 / 1e6,
            links(platform, &binary),
            median / *native_s,
        );
    }
}

/// A work unit of the tiny skill (the base, data and config `aginet-server` writes).
fn write_work_unit(wu: &Path, steps: u32) {
    std::fs::create_dir_all(wu).unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let (model, data, config) = (wu.join("model"), wu.join("data"), wu.join("config"));
    let steps = steps.to_string();
    let commands: [Vec<&std::ffi::OsStr>; 3] = [
        vec!["tiny-model".as_ref(), "--out".as_ref(), model.as_ref()],
        vec![
            "tiny-data".as_ref(),
            "--count".as_ref(),
            "64".as_ref(),
            "--eval".as_ref(),
            "8".as_ref(),
            "--out".as_ref(),
            data.as_ref(),
        ],
        vec![
            "work-config".as_ref(),
            "--skill".as_ref(),
            "tiny".as_ref(),
            "--models".as_ref(),
            models.as_ref(),
            "--steps".as_ref(),
            steps.as_ref(),
            "--out".as_ref(),
            config.as_ref(),
        ],
    ];
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// `aginet-server delta-diff`'s overall line for two deltas.
fn relative_l2(work: &Path, a: &[u8], b: &[u8]) -> String {
    let (pa, pb) = (work.join("a.delta"), work.join("b.delta"));
    std::fs::write(&pa, a).unwrap();
    std::fs::write(&pb, b).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .arg("delta-diff")
        .args([&pa, &pb])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("all factors"))
        .map(|l| {
            l.trim_start_matches("all factors")
                .trim()
                .replace('\t', " ")
        })
        .unwrap_or_else(|| format!("delta-diff said: {text}"))
}

/// "static" for an ELF file without a dynamic section; the DLLs a Windows file imports.
fn links(platform: Platform, binary: &Path) -> String {
    let (tool, flag) = match platform {
        Platform::Windows => ("x86_64-w64-mingw32-objdump", "-p"),
        Platform::LinuxX86_64 | Platform::LinuxAarch64 => ("readelf", "-d"),
    };
    let out = Command::new(tool).arg(flag).arg(binary).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match platform {
        Platform::Windows => {
            let mut dlls: Vec<String> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("DLL Name: "))
                .map(str::to_lowercase)
                .collect();
            dlls.sort();
            dlls.dedup();
            dlls.join(",")
        }
        _ if text.contains("Dynamic section") => "dynamic".into(),
        _ => "static".into(),
    }
}
