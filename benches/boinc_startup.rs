//! Start-up of the volunteer app under a BOINC client, for each build: the time from starting
//! the process in a slot to its first status message on the shared segment, to its first
//! progress report (`<fraction_done>`), and from a `<quit/>` to its exit. This program plays the
//! client's side of the protocol (init_data.xml, `boinc_mmap_file`, a heartbeat every second),
//! so the figures hold the app alone, not the client's own start-up and polling.
//!
//! `cargo bench --bench boinc_startup -- [APP...]` (default: `target/release/aginet`, the FFI
//! build from `cargo build --release`, the static build from `ci/build-static.sh`, and the
//! static FFI build from `ci/build-static.sh --ffi`).

use aginet::app::boinc::native::shared_memory::{SharedMemory, Slot, MMAP_FILE, SEGMENT_SIZE};
use aginet::format::manifest::Manifest;
use aginet::nn::model::tiny::{tiny_model_bytes, TinyQuant};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const STEPS: u32 = 2000;

/// One start of the app: seconds to the first status message, the first progress report, and
/// from the quit request to the exit.
struct Timing {
    first_status: f64,
    first_progress: f64,
    quit_to_exit: f64,
}

fn write_slot(slot: &Path) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut config = Manifest::load(&models, "tiny")
        .expect("models/tiny/manifest.toml")
        .work_config(11, 0);
    config.steps = STEPS;
    std::fs::write(slot.join("config"), config.to_json()).unwrap();
    std::fs::write(
        slot.join("model"),
        tiny_model_bytes(0, TinyQuant::Q8_0).unwrap(),
    )
    .unwrap();
    std::fs::write(slot.join("data"), aginet::task::reverse_jsonl(5, 64, 8)).unwrap();
    std::fs::write(
        slot.join("init_data.xml"),
        format!(
            "<app_init_data>\n<wu_name>bench</wu_name>\n<result_name>bench_0</result_name>\n\
             <ncpus>1.000000</ncpus>\n<checkpoint_period>60.000000</checkpoint_period>\n\
             <shm_key>-1</shm_key>\n<client_pid>{}</client_pid>\n\
             <fraction_done_start>0.000000</fraction_done_start>\n\
             <fraction_done_end>1.000000</fraction_done_end>\n</app_init_data>\n",
            std::process::id()
        ),
    )
    .unwrap();
    std::fs::write(slot.join(MMAP_FILE), vec![0u8; SEGMENT_SIZE]).unwrap();
}

fn run_once(app: &Path) -> Timing {
    let slot = tempfile::tempdir().unwrap();
    write_slot(slot.path());
    let mut shm = SharedMemory::open(&slot.path().join(MMAP_FILE)).unwrap();
    let status = shm.channel(Slot::AppStatus);
    let heartbeat = shm.channel(Slot::Heartbeat);
    let control = shm.channel(Slot::ProcessControlRequest);
    let started = Instant::now();
    let mut child = Command::new(app)
        .current_dir(slot.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", app.display()));
    let mut first_status = None;
    let mut first_progress = None;
    let mut next_heartbeat = started;
    let deadline = started + Duration::from_secs(60);
    while first_progress.is_none() {
        assert!(
            Instant::now() < deadline,
            "{}: no progress within 60 s",
            app.display()
        );
        if Instant::now() >= next_heartbeat {
            heartbeat.send("<heartbeat/><wss>0</wss><max_wss>1e9</max_wss>");
            next_heartbeat += Duration::from_secs(1);
        }
        if let Some(msg) = status.receive() {
            let t = started.elapsed().as_secs_f64();
            first_status.get_or_insert(t);
            if msg.contains("<fraction_done>") {
                first_progress = Some(t);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    control.send("<quit/>");
    let quit_at = Instant::now();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{}: {exit}", app.display());
    Timing {
        first_status: first_status.unwrap(),
        first_progress: first_progress.unwrap(),
        quit_to_exit: quit_at.elapsed().as_secs_f64(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut apps: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    if apps.is_empty() {
        apps = vec![
            root.join("target/release/aginet"),
            root.join("target/static/x86_64-unknown-linux-gnu/release/aginet-native"),
            root.join("target/static/x86_64-unknown-linux-gnu/release/aginet-ffi"),
        ];
    }
    println!("| app | size (bytes) | first status (s) | first progress (s) | quit to exit (s) |");
    println!("|---|---|---|---|---|");
    for app in &apps {
        let size = std::fs::metadata(app)
            .unwrap_or_else(|e| panic!("{}: {e} (build it first)", app.display()))
            .len();
        let runs: Vec<Timing> = (0..RUNS).map(|_| run_once(app)).collect();
        println!(
            "| {} | {size} | {:.3} | {:.3} | {:.3} |",
            app.display(),
            median(runs.iter().map(|t| t.first_status).collect()),
            median(runs.iter().map(|t| t.first_progress).collect()),
            median(runs.iter().map(|t| t.quit_to_exit).collect()),
        );
    }
    println!("(medians of {RUNS} starts each; this program plays the client)");
}
