//! Aggregation benchmark: one FedAdam round over 1,000 deltas the size of a Gemma 3 270M
//! adapter (rank 8 on all seven linear projections: 1,898,496 f32 in 252 tensors, 7.6 MB), by
//! `aginet-server aggregate`, against what reading and decoding (decompressing, unshuffling) the
//! same files alone costs
//! and against Flower's own FedAdam on the same files in the same run.
//!
//! agiNet's deltas carry only the B factors (A is frozen and shared), so the bench skill is a
//! llama whose B factors alone have the Gemma adapter's size and tensor count: 36 blocks, width
//! 640, 4 query heads and 1 KV head, FFN 2176, rank 8.
//!
//! `cargo bench -p aginet-server --bench aggregate`. Environment: `AGINET_BENCH_DELTAS` (default
//! 1000), `AGINET_BENCH_DIR` (keep the generated project there and reuse it; default: a temporary
//! folder), `AGINET_BENCH_FLOWER=0` to skip Flower (`bench/flower/setup.sh` builds its venv).
//! Deltas are written by the app's own writer (`Delta::to_bytes`: byte-shuffled, zstd level 3).

use aginet::format::adapter::factor_shapes;
use aginet::format::manifest::Manifest;
use aginet::format::tensors::NamedTensors;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SKILL: &str = "bench";

/// Tensor values by name.
type Values = std::collections::BTreeMap<String, Vec<f32>>;
const TOKENS: u64 = 4096;

fn main() {
    let count: usize = env_or("AGINET_BENCH_DELTAS", 1000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (_tmp, root) = match std::env::var_os("AGINET_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir().expect("a temporary folder");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let project = root.join("project");
    let pristine = root.join("deltas");
    prepare(&root, &project, &pristine, count);
    let files = delta_files(&pristine);
    let compressed: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    let f32_bytes = files.len() as u64 * 4 * adapter_values(&project);
    println!(
        "{} deltas: {:.2} GB of f32, {:.2} GB compressed; {threads} cores",
        files.len(),
        f32_bytes as f64 / 1e9,
        compressed as f64 / 1e9
    );

    let mut rows = Vec::new();
    for t in [1, threads] {
        let s = read_and_decompress(&files, t);
        rows.push((format!("read + decode only, {t} thread(s)"), s, None));
    }
    let mut agi = 0.0;
    // Four times the cores as well: memory must not follow the thread count.
    for t in [1, threads, 4 * threads] {
        restore_queue(&project, &pristine);
        let (s, rss) = run_measured(
            Command::new(env!("CARGO_BIN_EXE_aginet-server"))
                .args(["aggregate", "--project", project.to_str().unwrap()])
                .args(["--strategy", "fedadam", "--threads", &t.to_string()]),
        );
        rows.push((
            format!("agiNet aggregate, {t} decoder thread(s)"),
            s,
            Some(rss),
        ));
        if t == threads {
            agi = s;
        }
    }
    let ours = global_b(&project, &root);

    let flower = std::env::var("AGINET_BENCH_FLOWER").map_or(true, |v| v != "0");
    let mut flower_s = None;
    if flower {
        match run_flower(&pristine, &root) {
            Ok((s, rss, theirs)) => {
                rows.push((
                    "Flower FedAdam round (load + aggregate_fit)".into(),
                    s,
                    Some(rss),
                ));
                flower_s = Some(s);
                println!(
                    "agiNet vs Flower new global B: max |difference| {:.3e} (largest value {:.3e})",
                    max_abs_diff(&ours, &theirs),
                    ours.values().flatten().fold(0f32, |m, v| m.max(v.abs()))
                );
            }
            Err(e) => println!("Flower skipped: {e}"),
        }
    }

    println!("\n| run | wall s | deltas/s | GB/s (f32) | peak RSS MiB |\n|---|---|---|---|---|");
    for (name, s, rss) in &rows {
        println!(
            "| {name} | {s:.2} | {:.0} | {:.2} | {} |",
            files.len() as f64 / s,
            f32_bytes as f64 / 1e9 / s,
            rss.map_or("-".into(), |r| format!("{:.1}", r as f64 / 1048576.0))
        );
    }
    let alone = rows[1].1;
    println!(
        "\nagiNet / (read + decode alone, same threads): {:.2}×",
        agi / alone
    );
    if let Some(f) = flower_s {
        println!("Flower / agiNet: {:.1}× faster", f / agi);
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Creates the bench project and `count` deltas in `pristine` (kept, and reused when present).
fn prepare(root: &Path, project: &Path, pristine: &Path, count: usize) {
    if delta_files(pristine).len() == count && project.join("project.toml").exists() {
        return;
    }
    let _ = std::fs::remove_dir_all(root);
    let models = root.join("models");
    std::fs::create_dir_all(models.join(SKILL)).unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny/manifest.toml");
    let manifest = std::fs::read_to_string(tiny)
        .unwrap()
        .replace("name = \"tiny\"", &format!("name = \"{SKILL}\""))
        .replace("n_layer = 2", "n_layer = 36")
        .replace("n_embd = 256", "n_embd = 640")
        .replace("n_ff = 256", "n_ff = 2176");
    std::fs::write(models.join(SKILL).join("manifest.toml"), manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .args(["init", "--project", project.to_str().unwrap()])
        .args(["--models", models.to_str().unwrap(), "--skill", SKILL])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let m = Manifest::read(&project.join("skills").join(SKILL).join("manifest.toml")).unwrap();
    let sites = m.architecture.sites(&m.lora.targets).unwrap();
    let shapes = factor_shapes(&sites, m.lora.rank, false);
    std::fs::create_dir_all(pristine).unwrap();
    let started = Instant::now();
    for i in 0..count {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64);
        // Norms vary by up to ±20% around the cohort's, so clipping at 2× the median never bites.
        let scale = 1e-3 * rng.random_range(0.8..1.2);
        let mut tensors = NamedTensors::new();
        let mut sum_sq = 0f64;
        for (name, shape) in &shapes {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| scale * (rng.random::<f32>() * 2.0 - 1.0))
                .collect();
            sum_sq += v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
            tensors.insert(
                name.clone(),
                Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap(),
            );
        }
        let delta = aginet::format::delta::Delta {
            header: aginet::format::delta::DeltaHeader {
                format: aginet::format::delta::DELTA_FORMAT.into(),
                version: aginet::format::delta::DELTA_VERSION,
                skill: SKILL.into(),
                base_sha256: m.base.sha256.clone(),
                adapter_version: 0,
                lora: m.lora.clone(),
                steps: 50,
            },
            tensors,
        };
        let bytes = delta.to_bytes().unwrap();
        let sha = aginet::format::files::sha256_hex(&bytes);
        std::fs::write(pristine.join(format!("{sha}.delta")), &bytes).unwrap();
        let report = serde_json::json!({"tokens": TOKENS, "adapter_version": 0});
        std::fs::write(pristine.join(format!("{sha}.report")), report.to_string()).unwrap();
        let entry = serde_json::json!({"adapter_version": 0, "tokens": TOKENS,
            "norm": sum_sq.sqrt()});
        std::fs::write(pristine.join(format!("{sha}.entry")), entry.to_string()).unwrap();
        if (i + 1) % 100 == 0 {
            eprintln!("generated {} deltas in {:.0?}", i + 1, started.elapsed());
        }
    }
}

fn delta_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "delta"));
    v.sort();
    v
}

fn adapter_values(project: &Path) -> u64 {
    let m = Manifest::read(&project.join("skills").join(SKILL).join("manifest.toml")).unwrap();
    let sites = m.architecture.sites(&m.lora.targets).unwrap();
    factor_shapes(&sites, m.lora.rank, false)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

/// Puts the pristine queue back (hard links) and removes what a previous round wrote.
fn restore_queue(project: &Path, pristine: &Path) {
    let skill = project.join("skills").join(SKILL);
    for dir in ["queue", "adapters", "rounds", "optimizer", "published"] {
        let _ = std::fs::remove_dir_all(skill.join(dir));
    }
    std::fs::create_dir_all(skill.join("queue")).unwrap();
    std::fs::create_dir_all(skill.join("adapters")).unwrap();
    for e in std::fs::read_dir(pristine).unwrap() {
        let e = e.unwrap();
        std::fs::hard_link(e.path(), skill.join("queue").join(e.file_name())).unwrap();
    }
}

/// Seconds to read and decompress every file with `threads` threads, doing nothing else.
fn read_and_decompress(files: &[PathBuf], threads: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|s| {
        for lane in 0..threads {
            s.spawn(move || {
                let (mut planes, mut raw) = (Vec::new(), Vec::new());
                for f in files.iter().skip(lane).step_by(threads) {
                    let bytes = std::fs::read(f).unwrap();
                    let n = zstd::zstd_safe::get_frame_content_size(&bytes)
                        .unwrap()
                        .unwrap() as usize;
                    planes.clear();
                    planes.reserve(n);
                    zstd::bulk::Decompressor::new()
                        .unwrap()
                        .decompress_to_buffer(&bytes, &mut planes)
                        .unwrap();
                    aginet::format::delta::unshuffle_into(&planes, &mut raw).unwrap();
                    std::hint::black_box(&raw);
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// Runs `cmd` to completion: its wall seconds and peak RSS in bytes (from wait4).
fn run_measured(cmd: &mut Command) -> (f64, u64) {
    let started = Instant::now();
    // Reaped by wait4 below, which also gives its resource usage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("the command starts");
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (secs, usage.ru_maxrss as u64 * 1024)
}

/// The new global B factors agiNet wrote, read back through a work unit.
fn global_b(project: &Path, root: &Path) -> Values {
    let out = root.join("wu");
    let _ = std::fs::remove_dir_all(&out);
    let made = Command::new(env!("CARGO_BIN_EXE_aginet-server"))
        .args(["make-work", "--project", project.to_str().unwrap()])
        .args(["--count", "1", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let wu = PathBuf::from(String::from_utf8_lossy(&made.stdout).trim());
    let signed = std::fs::read(wu.join("adapter")).unwrap();
    let payload = &signed[8 + 64..];
    let (_, tensors) = aginet::format::tensors::decode(payload).unwrap();
    tensors
        .into_iter()
        .filter(|(n, _)| n.ends_with(".lora_b"))
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// Runs Flower's FedAdam on the pristine deltas: wall seconds, peak RSS, its new global values.
fn run_flower(pristine: &Path, root: &Path) -> Result<(f64, u64, Values), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/flower");
    let python = dir.join(".venv/bin/python");
    if !python.exists() {
        return Err(format!("no venv: run {}", dir.join("setup.sh").display()));
    }
    let result = root.join("flower.json");
    let new_global = root.join("flower-global.safetensors");
    let (secs, rss) = run_measured(
        Command::new(&python)
            .arg(dir.join("fedadam_round.py"))
            .args(["--queue", pristine.to_str().unwrap()])
            .args(["--out", result.to_str().unwrap()])
            .args(["--new-global", new_global.to_str().unwrap()]),
    );
    println!(
        "Flower: {}",
        std::fs::read_to_string(&result).map_err(|e| e.to_string())?
    );
    let bytes = std::fs::read(&new_global).map_err(|e| e.to_string())?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let values = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let f: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (n, f)
        })
        .collect();
    Ok((secs, rss, values))
}

fn max_abs_diff(a: &Values, b: &Values) -> f32 {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same tensors"
    );
    a.iter()
        .flat_map(|(n, x)| x.iter().zip(&b[n]).map(|(p, q)| (p - q).abs()))
        .fold(0f32, f32::max)
}
