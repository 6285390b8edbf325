//! `demo`: a whole local federation on one machine, no BOINC server. Each round, `make-work`
//! makes a work unit per volunteer, the volunteers run the real `aginet` binary on them (as many
//! at once as there are cores), every result goes through `validate` and `assimilate`, and
//! `aggregate` writes the next global version, whose held-out reward the server computes.
//!
//! With four or more volunteers, three misbehave on purpose: one is killed mid-run and resumes
//! from its checkpoint (its result must still be accepted), one returns a corrupt delta, and one
//! returns a poisoned delta (scaled, then sign-flipped, then with a forged hash, round by round).
//! As BOINC does for a result that fails validation (`max_error_results` in the work unit
//! template), each rejected work unit is issued again, to an honest volunteer, before the round
//! is aggregated; its new result is `<wu>_<n>` on the scoreboard, with the credit.
//!
//! With `--buffer K` the round is not aggregated at its end: `aggregate --min-deltas K` runs
//! after every accepted result (FedBuff), as a project running the aggregate task often would.

use crate::accumulate::Decoding;
use crate::aggregate;
use crate::assimilate::{self, Outcome as AssimilateOutcome};
use crate::project::Project;
use crate::scorers::Scorers;
use crate::strategy::{Choice, Strategy};
use aginet::format::delta::Delta;
use aginet::format::report::Report;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How the demo runs (the `demo` subcommand's flags).
#[derive(clap::Args, Debug)]
pub struct DemoOptions {
    /// Volunteers per round.
    #[arg(long, default_value_t = 4)]
    pub volunteers: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The skill to train.
    #[arg(long, default_value = "tiny")]
    pub skill: String,
    /// The project folder (recreated if it is a demo project).
    #[arg(long, default_value = "target/demo-project")]
    pub project: PathBuf,
    /// Folder holding the skill manifests.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The volunteer app (default: `aginet` beside this binary).
    #[arg(long)]
    pub app: Option<PathBuf>,
    /// Steps per work unit (default: the skill's).
    #[arg(long)]
    pub steps: Option<u32>,
    /// The server optimizer (default: the skill manifest's `[server]` strategy, else fedavg).
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// The server learning rate η (default: the manifest's for its strategy, else the
    /// strategy's, as Flower sets it).
    #[arg(long)]
    pub server_lr: Option<f32>,
    /// Seed mixed into the work units' shard draws (0: the work-unit number alone), to rerun
    /// the federation on other shards of the same pool.
    #[arg(long, default_value_t = 0)]
    pub shard_seed: u64,
    /// How many volunteers (the last ones) poison every result, the rest being honest,
    /// instead of the default mix (one interrupted, one corrupt, one poisoning); 0: all honest.
    #[arg(long)]
    pub hostile: Option<usize>,
    /// Buffered asynchronous aggregation (FedBuff): `aggregate --min-deltas K` after every
    /// accepted result, so a round's volunteers, who all started from one version, make up to
    /// volunteers/K versions and later results arrive stale. 0: one aggregation per round.
    #[arg(long, default_value_t = 0)]
    pub buffer: usize,
    /// The staleness bound (`[validate] max_staleness` in `project.toml`: results and deltas
    /// more versions behind are refused and dropped; default: the project's).
    #[arg(long)]
    pub max_staleness: Option<u64>,
}

/// What a volunteer does with its work unit.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Honest,
    Interrupted,
    Corrupt,
    Poisoned,
}

impl Role {
    /// The role of volunteer `i` of `volunteers`, with `hostile` poisoners or the default mix.
    fn of(i: usize, volunteers: usize, hostile: Option<usize>) -> Self {
        if let Some(k) = hostile {
            return if i + k >= volunteers {
                Self::Poisoned
            } else {
                Self::Honest
            };
        }
        match i {
            0 if volunteers >= 3 => Self::Interrupted,
            1 if volunteers >= 4 => Self::Corrupt,
            2 if volunteers >= 4 => Self::Poisoned,
            _ => Self::Honest,
        }
    }
}

/// Runs the demo and prints a table row per round.
pub fn demo(opts: &DemoOptions) -> Result<Vec<f64>> {
    if opts.project.exists() {
        if !opts.project.join("project.toml").exists() {
            bail!(
                "{}: exists and is not an agiNet project; refusing to replace it",
                opts.project.display()
            );
        }
        std::fs::remove_dir_all(&opts.project)
            .with_context(|| format!("{}", opts.project.display()))?;
    }
    let app = match &opts.app {
        Some(a) => a.clone(),
        None => std::env::current_exe()?.with_file_name("aginet"),
    };
    if !app.exists() {
        bail!(
            "{}: the volunteer app is missing (cargo build --release --workspace)",
            app.display()
        );
    }
    let mut project = crate::init::init(
        &opts.project,
        &opts.models,
        std::slice::from_ref(&opts.skill),
        opts.shard_seed,
    )?;
    if let Some(bound) = opts.max_staleness {
        project.settings.validate.max_staleness = bound;
        project.settings.write(project.root())?;
    }
    let manifest = project.manifest(&opts.skill)?;
    let choice = Choice::resolve(
        &manifest,
        &project.manifest_path(&opts.skill),
        opts.strategy,
        opts.server_lr,
    )?;
    // The validator's models, loaded once for the whole federation.
    let mut scorers = Scorers::new();
    let start = scorers.version_reward(&project, &opts.skill, 0)?;
    let mut rewards = vec![start];
    println!(
        "agiNet local federation: skill {}, {} volunteers, {} rounds, {choice}",
        opts.skill, opts.volunteers, opts.rounds
    );
    println!("global held-out reward at version 0: {start:.6}");
    println!(
        "{:<6} {:>8} {:>8} {:>8}  {:<60} {:>12} {:>10}",
        "round", "accepted", "rejected", "reissued", "reasons", "reward", "credit"
    );

    // Who takes the work units that BOINC issues again.
    let honest: Vec<usize> = (0..opts.volunteers)
        .filter(|&i| {
            matches!(
                Role::of(i, opts.volunteers, opts.hostile),
                Role::Honest | Role::Interrupted
            )
        })
        .collect();
    for round in 1..=opts.rounds {
        let round_start_version = project.adapter_version(&opts.skill)?;
        let dir = opts.project.join("work").join(format!("round-{round}"));
        let wus = crate::make_work::make_work(&project, &opts.skill, opts.volunteers as u64, &dir)?;
        if let Some(steps) = opts.steps {
            for wu in &wus {
                let mut config = aginet::format::config::WorkConfig::read(&wu.join("config"))?;
                config.steps = steps;
                aginet::format::files::write_atomic(
                    &wu.join("config"),
                    config.to_json().as_bytes(),
                )?;
            }
        }
        let interrupted: Vec<bool> = (0..wus.len())
            .map(|i| Role::of(i, opts.volunteers, opts.hostile) == Role::Interrupted)
            .collect();
        run_volunteers(&app, &wus, &interrupted)?;
        let mut tally = Tally::default();
        let mut failed = Vec::new();
        for (i, wu) in wus.iter().enumerate() {
            misbehave(Role::of(i, opts.volunteers, opts.hostile), round, wu)?;
            let files = [wu.join("delta"), wu.join("report")];
            if !tally.assimilate(
                &project,
                &mut scorers,
                &files,
                &wu_name(wu),
                &format!("volunteer-{i}"),
            )? {
                failed.push(wu.clone());
            } else {
                aggregate_buffered(&project, opts)?;
            }
        }
        // BOINC issues another instance of a work unit whose result failed validation (the
        // templates allow MAX_ERROR_RESULTS errors); here the honest volunteers take them.
        let reissue_dir = opts.project.join("reissued").join(format!("round-{round}"));
        let mut instance = 1;
        while !failed.is_empty() && !honest.is_empty() && instance < MAX_ERROR_RESULTS {
            let replicas = failed
                .iter()
                .map(|wu| new_instance(wu, &reissue_dir, instance))
                .collect::<Result<Vec<_>>>()?;
            run_volunteers(&app, &replicas, &vec![false; replicas.len()])?;
            let mut still_failed = Vec::new();
            for (k, (wu, replica)) in failed.iter().zip(&replicas).enumerate() {
                let volunteer = honest[k % honest.len()];
                tally.reissued += 1;
                let files = result_files(replica)?;
                if !tally.assimilate(
                    &project,
                    &mut scorers,
                    &files,
                    &wu_name(wu),
                    &format!("volunteer-{volunteer}"),
                )? {
                    still_failed.push(wu.clone());
                } else {
                    aggregate_buffered(&project, opts)?;
                }
            }
            failed = still_failed;
            instance += 1;
        }
        if opts.buffer == 0 {
            aggregate::aggregate(
                &project,
                &opts.skill,
                opts.strategy,
                opts.server_lr,
                Decoding::threads(2),
                1,
            )?;
        }
        let version = project.adapter_version(&opts.skill)?;
        let reward = if version == round_start_version {
            *rewards.last().expect("start reward")
        } else {
            scorers.version_reward(&project, &opts.skill, version)?
        };
        rewards.push(reward);
        println!(
            "{round:<6} {:>8} {:>8} {:>8}  {:<60} {reward:>12.6} {:>10.4}",
            tally.accepted,
            tally.rejected,
            tally.reissued,
            tally.reasons.join("; "),
            tally.credit
        );
    }
    let (first, last) = (rewards[0], *rewards.last().expect("rewards"));
    // A reward that starts at 0 (no plan accepted yet) has no relative change: say by how much.
    let change = if first > 0.0 {
        format!("{:+.1}%", (last / first - 1.0) * 100.0)
    } else {
        format!("{:+.6}", last - first)
    };
    println!("global held-out reward: {first:.6} -> {last:.6} ({change})");
    println!(
        "project folder: {} (scoreboard.csv, skills/{}/adapters/)",
        opts.project.display(),
        opts.skill
    );
    let page = crate::snapshot::snapshot(&project, &opts.project.join("public"))?;
    let page = page.canonicalize().unwrap_or(page);
    println!("dashboard: file://{}", page.display());
    Ok(rewards)
}

/// Results a work unit may fail validation with before BOINC gives it up (`max_error_results`
/// in `wu/wu_template.xml`).
const MAX_ERROR_RESULTS: usize = 3;

/// One round's results so far.
#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: usize,
    reissued: usize,
    credit: f64,
    reasons: Vec<String>,
}

impl Tally {
    /// Assimilates result `files` (delta and report) of work unit `wu` returned by
    /// `volunteer`, validating with `scorers`; whether it was accepted.
    fn assimilate(
        &mut self,
        project: &Project,
        scorers: &mut Scorers,
        files: &[PathBuf; 2],
        wu: &str,
        volunteer: &str,
    ) -> Result<bool> {
        let source = assimilate::Source {
            host: volunteer.to_string(),
            user: volunteer.to_string(),
            granted_credit: None,
        };
        match assimilate::assimilate(project, scorers, files, wu, &source) {
            Ok(AssimilateOutcome::Accepted { credit }) => {
                self.accepted += 1;
                self.credit += credit;
                Ok(true)
            }
            Ok(AssimilateOutcome::AlreadyDone) => Ok(true),
            Ok(AssimilateOutcome::Rejected(reason)) => {
                self.rejected += 1;
                self.reasons.push(short(&reason));
                Ok(false)
            }
            Err(e) => {
                self.rejected += 1;
                self.reasons.push(short(&format!("{e:#}")));
                Ok(false)
            }
        }
    }
}

/// With `--buffer K`, FedBuff's step after an accepted result: a version once K fresh deltas
/// are queued (`aggregate --min-deltas K`). Without it, nothing: the round is aggregated whole.
fn aggregate_buffered(project: &Project, opts: &DemoOptions) -> Result<()> {
    if opts.buffer > 0 {
        aggregate::aggregate(
            project,
            &opts.skill,
            opts.strategy,
            opts.server_lr,
            Decoding::threads(2),
            opts.buffer,
        )?;
    }
    Ok(())
}

/// The work unit's name: its folder's.
fn wu_name(wu: &Path) -> String {
    wu.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// A fresh folder `<dir>/<wu>_<instance>/` holding work unit `wu`'s input files, for another
/// volunteer to run (BOINC's next result of the same work unit).
fn new_instance(wu: &Path, dir: &Path, instance: usize) -> Result<PathBuf> {
    let replica = dir.join(format!("{}_{instance}", wu_name(wu)));
    if replica.exists() {
        std::fs::remove_dir_all(&replica).with_context(|| format!("{}", replica.display()))?;
    }
    std::fs::create_dir_all(&replica).with_context(|| format!("{}", replica.display()))?;
    for input in ["config", "model", "adapter", "data", "project_key"] {
        let from = wu.join(input);
        if from.exists() {
            crate::make_work::link_or_copy(&from, &replica.join(input))?;
        }
    }
    Ok(replica)
}

/// The output files of the instance in `replica`, renamed as BOINC names a result's uploads
/// (`<result>_0`, `<result>_1`), so that each instance is its own result on the scoreboard.
fn result_files(replica: &Path) -> Result<[PathBuf; 2]> {
    let result = wu_name(replica);
    let mut files = [PathBuf::new(), PathBuf::new()];
    for (k, output) in ["delta", "report"].into_iter().enumerate() {
        let (from, to) = (replica.join(output), replica.join(format!("{result}_{k}")));
        std::fs::rename(&from, &to).with_context(|| format!("{}", from.display()))?;
        files[k] = to;
    }
    Ok(files)
}

/// A reason without its leading file path, cut to fit the table.
fn short(reason: &str) -> String {
    let reason = match reason.split_once(": ") {
        Some((head, rest)) if head.contains('/') => rest,
        _ => reason,
    };
    let cut: String = reason.chars().take(44).collect();
    if reason.chars().count() > 44 {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Runs every work unit with the app, one thread each, as many at once as there are cores.
/// The volunteers marked `interrupted` are killed after step 5 and run again to resume.
/// A progress bar counts finished volunteers when stderr is a terminal.
fn run_volunteers(app: &Path, wus: &[PathBuf], interrupted: &[bool]) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bar = indicatif::ProgressBar::new(wus.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("  volunteers {bar:30} {pos}/{len} {elapsed}")
            .expect("valid progress template"),
    );
    let jobs: Vec<(&PathBuf, bool)> = wus.iter().zip(interrupted.iter().copied()).collect();
    for chunk in jobs.chunks(cores) {
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&(wu, interrupt)| s.spawn(move || run_app(app, wu, interrupt)))
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a volunteer thread panicked"))??;
                bar.inc(1);
            }
            Ok(())
        })?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// `aginet run --dir WU`; with `interrupt`, kills it after step 5 first (SIGKILL) and reruns.
fn run_app(app: &Path, wu: &Path, interrupt: bool) -> Result<()> {
    let command = || {
        let mut c = Command::new(app);
        c.args(["run", "--threads", "1", "--checkpoint-every", "1", "--dir"])
            .arg(wu);
        c
    };
    if interrupt {
        let mut child = command()
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", app.display()))?;
        let stderr = child.stderr.take().context("child stderr")?;
        for line in BufReader::new(stderr).lines() {
            if line?.starts_with("step     5/") {
                break;
            }
        }
        child.kill().ok();
        child.wait().ok();
    }
    let out = command()
        .output()
        .with_context(|| format!("running {}", app.display()))?;
    if !out.status.success() {
        bail!(
            "{}: the app failed: {}",
            wu.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}

/// Spoils a finished work unit's result the way its volunteer's role says.
fn misbehave(role: Role, round: usize, wu: &Path) -> Result<()> {
    let delta_path = wu.join("delta");
    let report_path = wu.join("report");
    match role {
        Role::Honest | Role::Interrupted => {}
        Role::Corrupt => {
            let bytes = std::fs::read(&delta_path)?;
            std::fs::write(&delta_path, &bytes[..bytes.len() / 2])?;
        }
        Role::Poisoned => {
            let mut report = Report::read(&report_path)?;
            if round.is_multiple_of(3) {
                // A forged report: it claims another delta's hash.
                report.delta_sha256 = "0".repeat(64);
            } else {
                // Scaled up, or sign-flipped, and re-hashed so the hash check passes.
                let factor = if round % 3 == 1 { 1e3 } else { -3.0 };
                let mut delta = Delta::read(&delta_path)?;
                delta.tensors = aginet::format::tensors::scaled(&delta.tensors, factor)?;
                let bytes = delta.to_bytes()?;
                std::fs::write(&delta_path, &bytes)?;
                report.delta_sha256 = aginet::format::files::sha256_hex(&bytes);
            }
            report.write(&report_path)?;
        }
    }
    Ok(())
}
