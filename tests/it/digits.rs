//! The vision skill's images as `models/digits/fetch.sh` (run by `ci/setup.sh`) takes them out
//! of scikit-learn's wheel.

use aginet::task::digits::{self, TASK_SHIFTS};
use std::collections::HashSet;

#[test]
fn the_fetched_digits_are_1797_images_of_ten_classes_split_one_in_five() {
    let path = super::fixture::models_dir().join("digits/digits.csv");
    assert!(
        path.exists(),
        "{} is missing: run models/digits/fetch.sh (ci/setup.sh does)",
        path.display()
    );
    let images = digits::read_csv(&path).unwrap();
    assert_eq!(images.len(), 1797);
    let mut per_class = [0usize; 10];
    for d in &images {
        per_class[d.label as usize] += 1;
    }
    assert!(
        per_class.iter().all(|&n| (174..=183).contains(&n)),
        "{per_class:?}"
    );
    let held = (0..images.len())
        .filter(|&i| digits::is_held_out(i))
        .count();
    assert_eq!(held, 359);
    let train = digits::pairs(&images, false, &TASK_SHIFTS, 1, usize::MAX, &HashSet::new());
    let held_out = digits::pairs(&images, true, &TASK_SHIFTS, 2, usize::MAX, &HashSet::new());
    let seen: HashSet<&str> = train.iter().map(|p| p.prompt.as_str()).collect();
    let leaked = held_out
        .iter()
        .filter(|p| seen.contains(p.prompt.as_str()))
        .count();
    eprintln!(
        "{} training pairs, {} held-out pairs, {leaked} held-out prompts also among the training ones",
        train.len(),
        held_out.len()
    );
    assert!(train.len() > 5000 && held_out.len() > 1300);
    assert_eq!(
        leaked, 0,
        "no held-out image, shifted, equals a training one"
    );
}
