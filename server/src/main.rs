//! `aginet-server`: the project operator's tools, one subcommand per step of a round, plus the
//! tools that make test material (the tiny base model and its synthetic task data).

use aginet_server::{
    accumulate, aggregate, assimilate, boinc_assimilate, boinc_work, convert, convert_bert,
    cut_base, delta_diff, demo, digits_base, init, make_work, project, resident, route, scorers,
    snapshot, strategy, validate, work_generator,
};

use aginet::format::manifest::Manifest;
use aginet::nn::model::tiny::{write_tiny_model, TinyQuant};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// agiNet project tools.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `convert-bert` stores the encoder's matrices.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BertQuant {
    /// 8-bit blocks of 32: the memory skill's base.
    #[value(name = "q8_0")]
    Q8_0,
    /// Exact f32.
    #[value(name = "f32")]
    F32,
}

#[derive(Subcommand)]
enum Command {
    /// Create a project folder: state folders, the signing key, the skills from models/.
    Init {
        /// The project folder to create.
        #[arg(long)]
        project: PathBuf,
        /// Folder holding the skill manifests.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Skills to train (repeatable; default: every skill under --models).
        #[arg(long)]
        skill: Vec<String>,
        /// Seed mixed into the work units' shard draws (0: the work-unit number alone).
        #[arg(long, default_value_t = 0)]
        shard_seed: u64,
    },
    /// Print the skill that gets the next work, and why.
    Route {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
    },
    /// Make work units: with --out, one folder per work unit holding its input files; with
    /// --boinc, staged and created in a BOINC project with its create_work.
    #[command(group(clap::ArgGroup::new("dest").required(true).args(["out", "boinc"])))]
    MakeWork {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// Skill (default: what `route` picks).
        #[arg(long)]
        skill: Option<String>,
        /// How many work units.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Folder to write the work-unit folders into.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A BOINC project folder (with bin/create_work) to create the work units in.
        #[arg(long)]
        boinc: Option<PathBuf>,
    },
    /// Keep a BOINC project supplied with work (a daemon in its config.xml): whenever fewer
    /// than --min-unsent results of app aginet wait to be sent, make --batch work units of the
    /// skill route picks with make-work --boinc. Stops on BOINC's bin/stop.
    WorkGenerator {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// The BOINC project folder (config.xml, bin/create_work).
        #[arg(long)]
        boinc: PathBuf,
        /// Make work when fewer results than this wait to be sent.
        #[arg(long, default_value_t = 4)]
        min_unsent: u64,
        /// Work units made per pass.
        #[arg(long, default_value_t = 4)]
        batch: u64,
        /// Seconds between passes.
        #[arg(long, default_value_t = 10.0)]
        interval: f64,
        /// Make one pass and exit (for a BOINC `<task>` or cron line instead of a daemon).
        #[arg(long)]
        once: bool,
    },
    /// Validate one result (BOINC script_validator --init_script): exit 0 valid, 1 invalid,
    /// 3 try again later. With --compare, FILES are two results' files (first half, second
    /// half): exit 0 when their deltas are identical.
    Validate {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// Compare two replicas instead of validating one result.
        #[arg(long)]
        compare: bool,
        /// The resident validator's socket to hand the result to (default: the project's
        /// `state/validator.sock`); when none listens there, the result is validated here.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Validate here even when a resident validator listens.
        #[arg(long)]
        local: bool,
        /// Seconds to wait for the resident validator's verdict before validating here.
        #[arg(long, default_value_t = 600)]
        resident_timeout: u64,
        /// The result's output files (delta and report, any order).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the resident validator: keep each skill's base loaded and validate the results that
    /// `validate` hands over on a Unix socket (a BOINC daemon in config.xml, or a service).
    Validator {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// The socket to listen on (default: the project's `state/validator.sock`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The BOINC project folder: stop when its `bin/stop` asks daemons to.
        #[arg(long)]
        boinc: Option<PathBuf>,
    },
    /// Assimilate a validated result: queue its delta and log it with its credit; with
    /// --error N, log a failed work unit. ARGS are FILES... WU RUNTIME (or, with --error, WU);
    /// with --boinc, what BOINC's script_assimilator passes a one-word script: WU_ID FILES...
    /// (or, with --error, WU_NAME WU_ID BATCH).
    Assimilate {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// The BOINC project folder: take ARGS in script_assimilator's shape, and the work
        /// unit's name, host, user and granted credit from its database.
        #[arg(long, conflicts_with_all = ["host", "user"])]
        boinc: Option<PathBuf>,
        /// BOINC's error code for a work unit that failed (then ARGS is just the work unit).
        #[arg(long)]
        error: Option<i32>,
        /// The host that returned the result, for the scoreboard (active hosts).
        #[arg(long, default_value = "")]
        host: String,
        /// The volunteer who returned it, for the scoreboard.
        #[arg(long, default_value = "")]
        user: String,
        /// The result's files, then the work unit name and the runtime; or, with --error, the
        /// work unit name (with --boinc: see above).
        #[arg(required = true)]
        args: Vec<String>,
    },
    /// Aggregate each skill's queue of accepted deltas into its next global adapter version
    /// (nightly cron). Idempotent: rerun after a crash.
    Aggregate {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// The server optimizer (default: the skill manifest's `[server]` strategy, else
        /// fedavg).
        #[arg(long, value_enum)]
        strategy: Option<strategy::Strategy>,
        /// Only this skill (default: every skill).
        #[arg(long)]
        skill: Option<String>,
        /// Threads reading and decompressing deltas (default: the machine's cores; fewer when
        /// --decode-memory-mib holds fewer).
        #[arg(long)]
        threads: Option<usize>,
        /// MiB the decoder threads' buffers may take together (each holds two decompressed
        /// deltas and the file it reads).
        #[arg(long, default_value_t = accumulate::Decoding::DEFAULT_MEMORY >> 20)]
        decode_memory_mib: u64,
        /// The server learning rate η (default: the manifest's for its strategy, else the
        /// strategy's, as Flower sets it).
        #[arg(long)]
        server_lr: Option<f32>,
        /// Aggregate a skill only once this many deltas (within the staleness bound) are
        /// queued, else leave them for a later call: FedBuff's buffer, for running `aggregate`
        /// often (a BOINC task every few minutes) instead of nightly.
        #[arg(long, default_value_t = 1)]
        min_deltas: usize,
    },
    /// How far delta B is from delta A (two runs of one work unit: GPU and CPU, two platforms):
    /// relative L2 difference and cosine per factor and overall, or "identical".
    DeltaDiff {
        /// The reference delta.
        a: PathBuf,
        /// The delta compared with it.
        b: PathBuf,
        /// Print every factor, not only the overall figures and the farthest factor.
        #[arg(long)]
        all: bool,
    },
    /// Rewrite a GGUF base with its Q5_0 tensors as Q8_0 (exact: scale/8, values ×8), for
    /// candle's fast Q8_0 kernels; prints how many tensors and any inexact blocks.
    ConvertBase {
        /// The base to read.
        #[arg(long = "in")]
        input: PathBuf,
        /// The converted base to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert a Hugging Face BERT sentence encoder (the folder `models/minilm/fetch.sh` fills)
    /// into the memory skill's GGUF base (projections and word embedding Q8_0).
    ConvertBert {
        /// The model folder (`config.json`, `model.safetensors`, `vocab.txt`).
        #[arg(long = "in")]
        input: PathBuf,
        /// The GGUF base to write.
        #[arg(long)]
        out: PathBuf,
        /// How the projections and the word embedding are stored (`f32`: exact, for checks).
        #[arg(long, value_enum, default_value = "q8_0")]
        quant: BertQuant,
    },
    /// Cut a transformer base (Gemma, BERT, llama-style) down to a few layers, narrow widths and
    /// its first tokens, same family, metadata and tensor names: a fuzzing seed of under 1 MiB
    /// that the app's loader still reads to the end (`fuzz/seeds.sh`).
    CutBase {
        /// The GGUF base to cut.
        #[arg(long = "in")]
        input: PathBuf,
        /// The GGUF file to write.
        #[arg(long)]
        out: PathBuf,
        /// Transformer blocks kept (the first ones).
        #[arg(long, default_value_t = 1)]
        layers: usize,
        /// Width of the residual stream (the feed-forward keeps its ratio to it).
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Attention heads, each `width / heads` wide (a multiple of 32).
        #[arg(long, default_value_t = 2)]
        heads: usize,
        /// Tokens kept (the first ones).
        #[arg(long, default_value_t = 2048)]
        vocab: usize,
    },
    /// Publish the dashboard: index.html with plots, metrics.json, each skill's global adapter
    /// in PEFT's format, and checksums signed by the project key.
    Snapshot {
        /// The project folder.
        #[arg(long)]
        project: PathBuf,
        /// The public folder to (re)write; replaced whole.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a local federation: rounds of make-work, volunteers running the real app (one
    /// interrupted, one corrupt, one poisoned), validate, assimilate, aggregate.
    Demo(demo::DemoOptions),
    /// Write the tiny llama-style test base (random init from the seed) as GGUF.
    TinyModel {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Quantization of the matrices.
        #[arg(long, value_enum, default_value = "q8_0")]
        quant: TinyQuant,
    },
    /// Train the vision skill's base from scratch: an MLP classifier on the centred 8x8 digits
    /// (the held-out fifth excluded), written as GGUF with Q8_0 weights; prints its accuracy
    /// on the held-out images, centred and shifted by one pixel, and its sha256.
    DigitsBase {
        /// The digits CSV (`models/digits/fetch.sh`).
        #[arg(long, default_value = "models/digits/digits.csv")]
        digits: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the initial weights and the batch order.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Passes over the training images.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
    },
    /// Write a task's examples as a data file (JSONL): by default the tiny skill's (reverse a
    /// word), or any skill's task (--kind).
    TinyData {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the examples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of examples.
        #[arg(long, default_value_t = 256)]
        count: usize,
        /// How many of them (the last) are the eval split.
        #[arg(long, default_value_t = 32)]
        eval: usize,
        /// The task whose examples to write (a manifest's `task.kind`: reverse, spell_digits,
        /// codenames, grid_plans, digits_shifted).
        #[arg(long, default_value = "reverse")]
        kind: String,
        /// The models folder (`digits_shifted` reads its images there).
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
    /// Write a work unit's `config` from a skill manifest's defaults.
    WorkConfig {
        /// Folder holding the skill manifests.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Skill name (its folder under --models).
        #[arg(long)]
        skill: String,
        /// Seed of the work unit's data order.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Global adapter version the work starts from.
        #[arg(long, default_value_t = 0)]
        adapter_version: u64,
        /// Optimizer steps (default: the manifest's).
        #[arg(long)]
        steps: Option<u32>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `validate`'s exit code for a transient failure (BOINC's VAL_RESULT_TRANSIENT_ERROR).
const EXIT_TRANSIENT: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Aggregate { .. }) {
        // Aggregation streams deltas through recycled buffers and computes nothing that huge
        // pages or a kept heap would speed up.
        aginet::nn::allocator::tune_for_streaming();
    } else {
        aginet::nn::allocator::restart_with_huge_pages();
        aginet::nn::allocator::tune();
    }
    // Logs go to stderr; RUST_LOG sets the level (default: info).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Command::Validate {
        project,
        compare,
        socket,
        local,
        resident_timeout,
        files,
    } = &cli.command
    {
        let resident = (!*local && !*compare).then(|| Resident {
            socket: socket.clone(),
            timeout: std::time::Duration::from_secs(*resident_timeout),
        });
        return run_validate(project, *compare, resident, files);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Validate { .. } => unreachable!("handled in main"),
        Command::Validator {
            project,
            socket,
            boinc,
        } => {
            let socket = socket.unwrap_or_else(|| project::Project::validator_socket(&project));
            resident::serve::serve(&project, &socket, boinc.as_deref())?;
        }
        Command::DeltaDiff { a, b, all } => {
            let d = delta_diff::diff(&a, &b)?;
            if all {
                for (name, rel, cos) in &d.factors {
                    println!("{name}\trelative L2 {rel:.3e}\tcosine {cos:.7}");
                }
            }
            if let Some((name, rel, _)) = d.factors.iter().max_by(|x, y| x.1.total_cmp(&y.1)) {
                println!("farthest factor\t{name}\trelative L2 {rel:.3e}");
            }
            let (rel, cos) = d.total;
            let same = if d.identical {
                "identical"
            } else {
                "different"
            };
            println!("all factors\trelative L2 {rel:.3e}\tcosine {cos:.7}\t{same}");
        }
        Command::ConvertBase { input, out } => {
            let done = convert::convert(&input, &out)?;
            println!(
                "{}: {} Q5_0 tensors now Q8_0, {} inexact blocks; sha256 {}",
                out.display(),
                done.tensors,
                done.inexact_blocks,
                aginet::format::files::sha256_file(&out)?
            );
        }
        Command::CutBase {
            input,
            out,
            layers,
            width,
            heads,
            vocab,
        } => {
            let cut = cut_base::Cut {
                layers,
                width,
                heads,
                vocab,
            };
            let done = cut_base::cut_base(&input, &out, cut)?;
            for key in &done.dropped {
                eprintln!(
                    "{}: dropped {key} (it describes the whole vocabulary)",
                    out.display()
                );
            }
            println!(
                "{}: {} base, {} tensors, {} bytes",
                out.display(),
                done.arch,
                done.tensors,
                std::fs::metadata(&out)?.len()
            );
        }
        Command::ConvertBert { input, out, quant } => {
            let dtype = match quant {
                BertQuant::Q8_0 => candle_core::quantized::GgmlDType::Q8_0,
                BertQuant::F32 => candle_core::quantized::GgmlDType::F32,
            };
            let tensors = convert_bert::convert(&input, &out, dtype)?;
            println!(
                "{}: {tensors} tensors; sha256 {}",
                out.display(),
                aginet::format::files::sha256_file(&out)?
            );
        }
        Command::Snapshot { project, out } => {
            let p = project::Project::open(&project)?;
            let page = snapshot::snapshot(&p, &out)?;
            println!("{}", page.display());
        }
        Command::Demo(opts) => {
            demo::demo(&opts)?;
        }
        Command::Aggregate {
            project,
            strategy,
            skill,
            threads,
            decode_memory_mib,
            server_lr,
            min_deltas,
        } => {
            let decoding = accumulate::Decoding {
                threads: threads.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
                }),
                memory: decode_memory_mib << 20,
            };
            let p = project::Project::open(&project)?;
            let skills = match skill {
                Some(s) => vec![s],
                None => p.settings.skills.clone(),
            };
            for skill in skills {
                match aggregate::aggregate(&p, &skill, strategy, server_lr, decoding, min_deltas)? {
                    aggregate::Outcome::Nothing => println!("{skill}: no queued deltas"),
                    aggregate::Outcome::Waiting { fresh, min_deltas } => {
                        println!("{skill}: {fresh} fresh deltas queued, waiting for {min_deltas}")
                    }
                    aggregate::Outcome::NewVersion {
                        version,
                        deltas,
                        dropped,
                        choice,
                    } => {
                        println!("{skill}: version {version} from {deltas} deltas ({dropped} dropped as stale), {choice}")
                    }
                }
            }
        }
        Command::Assimilate {
            project,
            boinc,
            error,
            host,
            user,
            args,
        } => {
            let p = project::Project::open(&project)?;
            if let Some(boinc) = boinc {
                println!(
                    "{}",
                    boinc_assimilate::assimilate_boinc(&p, &boinc, error, &args)?
                );
                return Ok(());
            }
            match error {
                Some(code) => {
                    let [wu] = args.as_slice() else {
                        anyhow::bail!(
                            "with --error, give exactly one work unit name, not {args:?}"
                        );
                    };
                    assimilate::record_error(&p, code, wu)?;
                    println!("logged error {code} of {wu}");
                }
                None => {
                    let [files @ .., wu, _runtime] = args.as_slice() else {
                        anyhow::bail!("expected FILES... WU_ID RUNTIME, got {args:?}");
                    };
                    anyhow::ensure!(!files.is_empty(), "no result files in {args:?}");
                    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
                    match assimilate::assimilate(
                        &p,
                        &mut scorers::Scorers::new(),
                        &files,
                        wu,
                        &assimilate::Source {
                            host,
                            user,
                            granted_credit: None,
                        },
                    )? {
                        assimilate::Outcome::Accepted { credit } => {
                            println!("accepted {wu}: credit {credit:.6}")
                        }
                        assimilate::Outcome::Rejected(reason) => {
                            println!("rejected {wu}: {reason}")
                        }
                        assimilate::Outcome::AlreadyDone => {
                            println!("{wu} was already assimilated")
                        }
                    }
                }
            }
        }
        Command::Init {
            project,
            models,
            skill,
            shard_seed,
        } => {
            let p = init::init(&project, &models, &skill, shard_seed)?;
            println!(
                "initialised {} with skills {:?}",
                p.root().display(),
                p.settings.skills
            );
        }
        Command::Route { project } => {
            let p = project::Project::open(&project)?;
            let d = route::decide(&p)?;
            println!("{}\t{}", d.skill, d.reason);
        }
        Command::MakeWork {
            project,
            skill,
            count,
            out,
            boinc,
        } => {
            let p = project::Project::open(&project)?;
            let skill = match skill {
                Some(s) => s,
                None => {
                    let d = route::decide(&p)?;
                    tracing::info!("route: {} ({})", d.skill, d.reason);
                    d.skill
                }
            };
            match (out, boinc) {
                (Some(out), _) => {
                    for dir in make_work::make_work(&p, &skill, count, &out)? {
                        println!("{}", dir.display());
                    }
                }
                (None, Some(boinc)) => {
                    for wu in boinc_work::make_work_boinc(&p, &skill, count, &boinc)? {
                        println!("{wu}");
                    }
                }
                (None, None) => unreachable!("clap requires --out or --boinc"),
            }
        }
        Command::WorkGenerator {
            project,
            boinc,
            min_unsent,
            batch,
            interval,
            once,
        } => {
            anyhow::ensure!(
                interval.is_finite() && interval > 0.0,
                "--interval {interval}: must be a positive number of seconds"
            );
            work_generator::run(
                &project,
                &boinc,
                &work_generator::Settings {
                    min_unsent,
                    batch,
                    interval: std::time::Duration::from_secs_f64(interval),
                    once,
                },
            )?;
        }
        Command::DigitsBase {
            digits,
            out,
            seed,
            epochs,
        } => {
            let sha = crate::digits_base::make(&digits, &out, seed, epochs)?;
            println!("{sha}  {}", out.display());
        }
        Command::TinyModel { out, seed, quant } => {
            let sha = write_tiny_model(&out, seed, quant)
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{sha}  {}", out.display());
        }
        Command::TinyData {
            out,
            seed,
            count,
            eval,
            kind,
            models,
        } => {
            anyhow::ensure!(
                eval < count,
                "--eval {eval} must be smaller than --count {count}"
            );
            let jsonl = if kind == "reverse" {
                aginet::task::reverse_jsonl(seed, count, eval)
            } else {
                let pairs = aginet::task::examples(
                    &kind,
                    aginet::task::Split::Pool,
                    seed,
                    count,
                    &Default::default(),
                    &models,
                )?
                .with_context(|| format!("no recipe makes examples of task kind {kind:?}"))?;
                aginet::task::jsonl(&pairs, eval)
            };
            aginet::format::files::write_atomic(&out, jsonl.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Command::WorkConfig {
            models,
            skill,
            seed,
            adapter_version,
            steps,
            out,
        } => {
            let manifest = Manifest::load(&models, &skill)?;
            let mut config = manifest.work_config(seed, adapter_version);
            if let Some(steps) = steps {
                config.steps = steps;
            }
            aginet::format::files::write_atomic(&out, config.to_json().as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}

/// Where `validate` looks for a resident validator.
struct Resident {
    /// Its socket (default: the project's).
    socket: Option<PathBuf>,
    /// How long to wait for its verdict.
    timeout: std::time::Duration,
}

/// Runs `validate` (handing the result to the resident validator when `resident` says where
/// one may listen and one does) and maps its outcome to BOINC's exit codes.
fn run_validate(
    project: &std::path::Path,
    compare: bool,
    resident: Option<Resident>,
    files: &[PathBuf],
) -> ExitCode {
    let outcome = project::Project::open(project).and_then(|p| {
        if compare {
            let (a, b) = files.split_at(files.len() / 2);
            return validate::equivalent(a, b).map(|same| {
                if same {
                    validate::Verdict::Valid {
                        reward_before: f64::NAN,
                        reward_after: f64::NAN,
                        delta_norm: f64::NAN,
                    }
                } else {
                    validate::Verdict::Invalid("the replicas' deltas differ".into())
                }
            });
        }
        if let Some(r) = resident {
            let socket = r
                .socket
                .unwrap_or_else(|| project::Project::validator_socket(project));
            if let Some(answer) = resident::ask::ask(project, &socket, files, r.timeout) {
                return answer;
            }
        }
        validate::validate(&p, &mut scorers::Scorers::new(), files)
    });
    match outcome {
        Ok(validate::Verdict::Valid {
            reward_before,
            reward_after,
            ..
        }) => {
            println!("valid: held-out reward {reward_before:.6} -> {reward_after:.6}");
            ExitCode::SUCCESS
        }
        Ok(validate::Verdict::Invalid(reason)) => {
            println!("invalid: {reason}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#} (transient: try again later)");
            ExitCode::from(EXIT_TRANSIENT)
        }
    }
}
