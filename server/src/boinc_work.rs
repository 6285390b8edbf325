//! `make-work --boinc BOINC_PROJECT_DIR`: the same work units as `--out`, handed to a BOINC
//! project: each input is staged with the project's `bin/stage_file --copy` under a physical
//! name, then `bin/create_work` makes the work unit from the templates in `wu/` (installed into
//! the project's `templates/` as `aginet_wu.xml`, `aginet_wu_initial.xml`, `aginet_result.xml`).
//!
//! Physical names: `<wu>_config` and `<wu>_data` per work unit; `<skill>_v<N>_adapter` per
//! global version; `<skill>_<sha256 prefix>_model` per base, sticky on volunteers' hosts, so a
//! base is downloaded once. Resource estimates follow the model and the step budget:
//! `rsc_fpops_est = 6·N·T` (N the base's parameters, T = steps × batch × max_seq_len tokens),
//! bound 20× that; memory bound 4× the base plus 256 MiB; disk bound 2× the base plus 64 MiB.
//! Each work unit carries its credit (`create_work --credit`): `assimilate`'s formula for the
//! most tokens the work unit allows, which BOINC's validator grants as it is when run with
//! `--credit_from_wu`, so BOINC's ledger and the scoreboard agree.

use crate::project::Project;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The work unit template past version 0 (inputs config, model, data, adapter).
const WU_TEMPLATE: &str = include_str!("../../wu/wu_template.xml");
/// The work unit template at version 0 (inputs config, model, data).
const WU_TEMPLATE_INITIAL: &str = include_str!("../../wu/wu_template_initial.xml");
/// The result template (outputs delta, report).
const RESULT_TEMPLATE: &str = include_str!("../../wu/result_template.xml");
/// Seconds a volunteer has to return a result.
const DELAY_BOUND_S: u64 = 7 * 24 * 3600;

/// Makes `count` work units of `skill` in the BOINC project at `boinc`; returns their names.
pub fn make_work_boinc(
    project: &Project,
    skill: &str,
    count: u64,
    boinc: &Path,
) -> Result<Vec<String>> {
    for tool in ["bin/create_work", "bin/stage_file"] {
        if !boinc.join(tool).exists() {
            bail!(
                "{}: missing {tool}; is this a BOINC project folder?",
                boinc.display()
            );
        }
    }
    let templates = boinc.join("templates");
    std::fs::create_dir_all(&templates).with_context(|| format!("{}", templates.display()))?;
    for (name, text) in [
        ("aginet_wu.xml", WU_TEMPLATE),
        ("aginet_wu_initial.xml", WU_TEMPLATE_INITIAL),
        ("aginet_result.xml", RESULT_TEMPLATE),
    ] {
        aginet::format::files::write_atomic(&templates.join(name), text.as_bytes())?;
    }

    let manifest = project.manifest(skill)?;
    let base = project.base(skill);
    let base_bytes = std::fs::metadata(&base)
        .with_context(|| format!("{}", base.display()))?
        .len();
    let params = aginet::format::gguf::Gguf::open(&base)?.parameter_count() as f64;
    let h = &manifest.defaults.hyper;
    let tokens = manifest.defaults.steps as f64 * (h.batch_size * h.max_seq_len) as f64;
    let fpops = 6.0 * params * tokens;
    let credit = crate::assimilate::credit(project, skill, tokens as u64)?;
    let estimates = [
        ("--rsc_fpops_est", format!("{fpops:.0}")),
        ("--rsc_fpops_bound", format!("{:.0}", fpops * 20.0)),
        (
            "--rsc_memory_bound",
            (4 * base_bytes + (256 << 20)).to_string(),
        ),
        (
            "--rsc_disk_bound",
            (2 * base_bytes + (64 << 20)).to_string(),
        ),
        ("--delay_bound", DELAY_BOUND_S.to_string()),
        ("--credit", format!("{credit}")),
    ];

    let staging = project.root().join("work").join("boinc-staging");
    let folders = crate::make_work::make_work(project, skill, count, &staging)?;
    let version = project.adapter_version(skill)?;
    let base_sha = &manifest.base.sha256[..16];
    let mut names = Vec::new();
    for dir in folders {
        let wu = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut inputs = vec![
            stage(boinc, &dir.join("config"), &format!("{wu}_config"))?,
            stage(
                boinc,
                &dir.join("model"),
                &format!("{skill}_{base_sha}_model"),
            )?,
            stage(boinc, &dir.join("data"), &format!("{wu}_data"))?,
        ];
        let template = if version > 0 {
            inputs.push(stage(
                boinc,
                &dir.join("adapter"),
                &format!("{skill}_v{version}_adapter"),
            )?);
            "templates/aginet_wu.xml"
        } else {
            "templates/aginet_wu_initial.xml"
        };
        let mut cmd = Command::new(boinc.join("bin/create_work"));
        cmd.current_dir(boinc)
            .args([
                "--appname",
                "aginet",
                "--wu_name",
                &wu,
                "--wu_template",
                template,
            ])
            .args(["--result_template", "templates/aginet_result.xml"]);
        for (flag, value) in &estimates {
            cmd.args([flag, value.as_str()]);
        }
        cmd.args(&inputs);
        run(cmd)?;
        names.push(wu);
    }
    Ok(names)
}

/// Copies `file` to a sibling named `physical` and stages it with `bin/stage_file --copy`.
fn stage(boinc: &Path, file: &Path, physical: &str) -> Result<String> {
    let named: PathBuf = file.with_file_name(physical);
    std::fs::copy(file, &named)
        .with_context(|| format!("copying {} to {}", file.display(), named.display()))?;
    let mut cmd = Command::new(boinc.join("bin/stage_file"));
    cmd.current_dir(boinc).arg("--copy").arg(&named);
    run(cmd)?;
    Ok(physical.to_string())
}

fn run(mut cmd: Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
