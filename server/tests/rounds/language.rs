//! The language skill end to end on the real Gemma 3 270M base (`models/gemma3-270m/fetch.sh`,
//! which `ci/setup.sh` runs): `convert-base` makes the skill's base as its manifest's recipe
//! says, `init` pins its sha256, the volunteer app trains a work unit for a few steps, its reward
//! on the work unit's eval split rises, and the validator recomputes the claim and finds the
//! server's held-out reward risen too.

use crate::common::{
    gemma_models, init_project, ok, one_work_unit, run_app, set_steps, valid_rewards, validate,
};

/// Optimizer steps: enough to learn the task's format, few enough for CI's two cores.
const STEPS: u32 = 6;

#[test]
fn gemma_learns_the_language_task_and_the_validator_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let models = gemma_models(dir.path(), &["language"]);
    let project = init_project(dir.path(), &models, "language");
    let wu = one_work_unit(&project, dir.path());
    let config = set_steps(&wu, STEPS);
    assert!(matches!(
        config.architecture,
        aginet::format::config::Architecture::Gemma3(_)
    ));

    run_app(&wu, 2);
    let report = aginet::format::report::Report::read(&wu.join("report")).unwrap();
    assert!(
        report.reward_after > 10.0 * report.reward_before && report.reward_after > 0.1,
        "the eval-split reward went {} -> {}",
        report.reward_before,
        report.reward_after
    );

    let numbers = valid_rewards(&ok(&validate(&project, &wu, &wu.join("report"))));
    assert!(
        numbers.1 > 10.0 * numbers.0 && numbers.1 > 0.1,
        "held-out reward {} -> {}",
        numbers.0,
        numbers.1
    );
}
