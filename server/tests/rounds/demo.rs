//! The local federation: the global held-out reward rises over the rounds while the corrupt and
//! poisoned volunteers are rejected (their work units reissued to honest ones) and the
//! interrupted one is accepted.

#[test]
fn the_demo_learns_and_rejects_the_bad_volunteers() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo");
    let text = crate::common::demo(
        &project,
        &["--rounds", "3", "--volunteers", "4", "--steps", "30"],
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let mut rewards = Vec::new();
    for row in &rows {
        assert_eq!(
            (row[1], row[2], row[3]),
            ("4", "2", "2"),
            "the honest and the interrupted accepted, corrupt and poisoned rejected, and their \
             work units reissued to honest volunteers and accepted: {text}"
        );
        rewards.push(row[row.len() - 2].parse::<f64>().unwrap());
    }
    let start: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("global held-out reward at version 0: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        rewards[0] > start * 2.0,
        "round 1 learns: {start} -> {rewards:?}"
    );
    assert!(
        rewards[2] > rewards[0],
        "the reward keeps rising: {start} -> {rewards:?}"
    );

    // Credit goes to whoever returned valid work: every work unit once, never to the corrupt
    // (volunteer-1) or poisoning (volunteer-2) volunteer.
    let scoreboard = std::fs::read_to_string(project.join("scoreboard.csv")).unwrap();
    let rows: Vec<Vec<&str>> = scoreboard
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let valid: Vec<&Vec<&str>> = rows.iter().filter(|r| r[9] == "valid").collect();
    assert_eq!(valid.len(), 12, "{scoreboard}");
    let mut work_units: Vec<&str> = valid.iter().map(|r| r[1]).collect();
    work_units.sort();
    work_units.dedup();
    assert_eq!(
        work_units.len(),
        12,
        "each work unit is credited once: {scoreboard}"
    );
    for row in &rows {
        let (host, credit) = (row[3], row[row.len() - 1].parse::<f64>().unwrap());
        if host == "volunteer-1" || host == "volunteer-2" {
            assert_eq!(credit, 0.0, "{scoreboard}");
        }
    }
}
