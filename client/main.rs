//! `aginet`: the agiNet volunteer app. With no arguments it runs one task under the BOINC client;
//! `aginet run --dir WU_DIR` runs one work unit standalone.

#[cfg(any(feature = "boinc", feature = "boinc-native"))]
mod under_boinc;

use aginet::app::workunit::{self, RunOutcome, WorkFiles};
use aginet::format::config::WorkConfig;
use aginet::learn::train::{Control, Host};
use aginet::nn::device::DeviceRequest;
use aginet::{app::exit, nn::threads};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// agiNet volunteer app: fine-tunes a LoRA adapter over a quantized GGUF skill model.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Without a command, run the task the BOINC client started this process for.
    #[command(subcommand)]
    command: Option<Command>,
    /// The GPU the BOINC client assigns, in the form older clients pass it (`--device N`);
    /// `init_data.xml`'s `gpu_device_num` wins when the client writes it.
    #[arg(long, hide = true, value_name = "N")]
    device: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one work unit standalone: reads config, model, adapter, data from the folder and
    /// writes delta and report there. Rerunning after an interruption resumes from the checkpoint.
    Run {
        /// The work-unit folder, files under their logical names.
        #[arg(long)]
        dir: PathBuf,
        /// Worker threads (default: the config's `threads`, else all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Checkpoint after every N steps (default: every 60 seconds).
        #[arg(long)]
        checkpoint_every: Option<u32>,
        /// Where to train: cpu, or cuda[:N] / metal[:N] in a build with that feature
        /// (default: the build's GPU 0 if it has one, else the CPU).
        #[arg(long)]
        device: Option<DeviceRequest>,
    },
}

/// Standalone host: never stops early, checkpoints by step count or time.
struct Standalone {
    every_steps: Option<u32>,
    interval: Duration,
    last: Instant,
}

impl Host for Standalone {
    fn poll(&mut self) -> Control {
        Control::Continue
    }
    fn time_to_checkpoint(&mut self, step: u32) -> bool {
        match self.every_steps {
            Some(n) => step.is_multiple_of(n.max(1)),
            None => self.last.elapsed() >= self.interval,
        }
    }
    fn checkpoint_done(&mut self) {
        self.last = Instant::now();
    }
}

fn main() -> ExitCode {
    aginet::nn::allocator::restart_with_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Run {
            dir,
            threads,
            checkpoint_every,
            device,
        }) => run(
            dir,
            threads,
            checkpoint_every,
            device.unwrap_or_else(DeviceRequest::preferred),
        ),
        #[cfg(any(feature = "boinc", feature = "boinc-native"))]
        None => under_boinc::run(cli.device),
        #[cfg(not(any(feature = "boinc", feature = "boinc-native")))]
        None => {
            eprintln!("error: this build has no BOINC support (feature `boinc` or `boinc-native`); use `aginet run --dir WU_DIR`");
            ExitCode::from(exit::USAGE)
        }
    }
}

/// What the start line says of the allocator's huge pages.
fn huge_pages_note() -> &'static str {
    if aginet::nn::allocator::huge_pages_requested() {
        ", transparent huge pages requested"
    } else {
        ""
    }
}

fn run(
    dir: PathBuf,
    threads: Option<usize>,
    checkpoint_every: Option<u32>,
    device: DeviceRequest,
) -> ExitCode {
    let files = WorkFiles::in_dir(&dir);
    // The config is read twice (here for the thread count, then by the run) because the
    // thread pools must be sized before any tensor work.
    let n = threads
        .or_else(|| config_threads(&files))
        .unwrap_or_else(threads::available);
    threads::configure(n);
    aginet::nn::allocator::tune();
    eprintln!(
        "aginet {}, {n} threads, device {device}{}",
        aginet::app::build_info::VERSION,
        huge_pages_note()
    );
    let device = match device.open() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e} (`--device cpu` trains on the CPU)");
            return ExitCode::from(exit::code(&e));
        }
    };
    let mut host = Standalone {
        every_steps: checkpoint_every,
        interval: Duration::from_secs(60),
        last: Instant::now(),
    };
    match workunit::run_on(&files, n, &device, &mut host) {
        Ok(RunOutcome::Finished(report)) => {
            eprintln!(
                "done: {} steps, reward {:.6} -> {:.6}, delta sha256 {}",
                report.steps, report.reward_before, report.reward_after, report.delta_sha256
            );
            ExitCode::from(exit::OK)
        }
        Ok(RunOutcome::Stopped { step }) => {
            eprintln!("stopped after step {step}; run again to resume");
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code(&e))
        }
    }
}

/// The thread count a work unit's config pins, if it reads and pins one.
fn config_threads(files: &WorkFiles) -> Option<usize> {
    WorkConfig::read(&files.config).ok().and_then(|c| c.threads)
}
