//! The app's life under the BOINC client: initialise the API, resolve the work unit's files
//! through it, train with the client steering, and end the way the client expects.
//!
//! - success: `boinc_finish(0)`;
//! - a failure: one line `error: …` on stderr, then `boinc_finish_message(code, reason)` with the
//!   code from `docs/exit-codes.md` (the client marks a compute error and uploads stderr);
//! - quit request or a lost client: exit 0 without finishing (the client restarts the task,
//!   which resumes from its last checkpoint);
//! - abort: exit with 194 (`EXIT_ABORTED_BY_CLIENT`), as the API itself would.

use crate::config_threads;
use aginet::app::boinc::{BoincHost, Session, StopReason};
use aginet::app::exit;
use aginet::app::workunit::{self, RunOutcome, WorkFiles};
use aginet::nn::device::DeviceRequest;
use aginet::nn::threads;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status of an aborted task (BOINC's `EXIT_ABORTED_BY_CLIENT`).
const EXIT_ABORTED_BY_CLIENT: u8 = 194;

/// Runs the task the client started this process for. `legacy_device` is the `--device N` an
/// older client appends for a GPU app version.
pub fn run(legacy_device: Option<usize>) -> ExitCode {
    let session = match Session::init() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot initialise the BOINC API: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let files = match resolve_files(&session) {
        Ok(f) => f,
        Err(e) => fail(
            session,
            exit::IO,
            &format!("resolving the work unit's files: {e}"),
        ),
    };
    let n = config_threads(&files)
        .or_else(|| client_cpus(&session))
        .unwrap_or_else(threads::available);
    threads::configure(n);
    aginet::nn::allocator::tune();
    let request = assigned_device(&session, legacy_device);
    eprintln!(
        "aginet {} under BOINC, {n} threads, device {request}{}",
        aginet::app::build_info::VERSION,
        crate::huge_pages_note()
    );
    let device = match request.open() {
        Ok(d) => d,
        Err(e) => fail(session, exit::code(&e), &e.to_string()),
    };

    let mut host = BoincHost::new(&session);
    match workunit::run_on(&files, n, &device, &mut host) {
        Ok(RunOutcome::Finished(report)) => {
            eprintln!(
                "done: {} steps, reward {:.6} -> {:.6}",
                report.steps, report.reward_before, report.reward_after
            );
            session.finish(0)
        }
        Ok(RunOutcome::Stopped { step }) => match host.stop_reason() {
            Some(StopReason::Abort) => {
                eprintln!("aborted by the client after step {step}");
                ExitCode::from(EXIT_ABORTED_BY_CLIENT)
            }
            reason => {
                eprintln!(
                    "stopping after step {step} ({reason:?}); the client will restart the task"
                );
                ExitCode::from(exit::OK)
            }
        },
        Err(e) => fail(session, exit::code(&e), &format!("{e:#}")),
    }
}

/// Prints the reason and ends the task as a compute error with `code`.
fn fail(session: Session, code: u8, reason: &str) -> ! {
    eprintln!("error: {reason}");
    session.finish_with_message(i32::from(code), reason, false)
}

/// The work unit's files by logical name, resolved through the slot's links.
fn resolve_files(session: &Session) -> Result<WorkFiles, aginet::app::boinc::BoincError> {
    Ok(WorkFiles {
        config: session.resolve("config")?,
        model: session.resolve("model")?,
        adapter: session.resolve("adapter")?,
        data: session.resolve("data")?,
        project_key: session.resolve("project_key")?,
        delta: session.resolve("delta")?,
        report: session.resolve("report")?,
        checkpoint: PathBuf::from("checkpoint"),
    })
}

/// Where the client says to compute: the GPU of `init_data.xml`'s `gpu_device_num`, else the one
/// of an older client's `--device N`, else the CPU (a CPU app version: BOINC assigns no GPU).
fn assigned_device(session: &Session, legacy_device: Option<usize>) -> DeviceRequest {
    let from_init_data = session.init_data().ok().and_then(|d| d.gpu());
    match from_init_data.or(legacy_device) {
        Some(n) => DeviceRequest::Gpu(n),
        None => DeviceRequest::Cpu,
    }
}

/// The CPUs the client gives this task, when it says.
fn client_cpus(session: &Session) -> Option<usize> {
    let data = session.init_data().ok()?;
    (data.ncpus >= 1.0).then_some(data.ncpus as usize)
}
