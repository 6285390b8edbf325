//! The skills' synthetic tasks: prompt/completion pairs the project makes in any amount, from a
//! seed, so a work unit's data and the server's held-out set are reproducible and never
//! downloaded. Each task kind (a manifest's `task.kind`) makes distinct examples; the JSONL
//! writing is shared.

pub mod codenames;
pub mod digits;
pub mod grid;
pub mod image_data;
pub mod pair;
pub mod reverse;
pub mod spell;

use crate::error::Result;
pub use pair::{jsonl, Pair};
pub use reverse::{reverse_jsonl, reverse_lines, reverse_words};
use std::collections::HashSet;
use std::path::Path;

/// Which side of a skill's data a recipe draws for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The training pool work units' shards come from.
    Pool,
    /// The server's held-out set, never sent to volunteers.
    HeldOut,
}

/// The file the `digits_shifted` recipe reads, under the models folder (`models/digits/fetch.sh`).
pub const DIGITS_CSV: &str = "digits/digits.csv";

/// `n` distinct examples of task `kind` for `split` from `seed`, none of whose prompts is in
/// `exclude`; `Ok(None)` for a kind no recipe makes. Synthetic recipes make any number from the
/// seed; `digits_shifted` draws from the images under `models` ([`DIGITS_CSV`]), the pool and the
/// held-out set from disjoint images, so it may return fewer than `n`.
pub fn examples(
    kind: &str,
    split: Split,
    seed: u64,
    n: usize,
    exclude: &HashSet<String>,
    models: &Path,
) -> Result<Option<Vec<Pair>>> {
    Ok(Some(match kind {
        "reverse" => reverse::pairs(seed, n, exclude),
        "spell_digits" => spell::pairs(seed, n, exclude),
        "codenames" => codenames::pairs(seed, n, exclude),
        "grid_plans" => grid::pairs(seed, n, exclude),
        "digits_shifted" => {
            let images = digits::read_csv(&models.join(DIGITS_CSV))?;
            let held_out = split == Split::HeldOut;
            digits::pairs(&images, held_out, &digits::TASK_SHIFTS, seed, n, exclude)
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digits_recipe_reads_the_images_and_keeps_the_split() {
        let models = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(models.path().join("digits")).unwrap();
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let line = |i: usize| {
            let mut v: Vec<String> = (0..64)
                .map(|_| rng.random_range(0..17u8).to_string())
                .collect();
            v.push((i % 10).to_string());
            v.join(",") + "\n"
        };
        let csv: String = (0..20).map(line).collect();
        std::fs::write(models.path().join(DIGITS_CSV), csv).unwrap();
        let none = HashSet::new();
        let get = |split, n| {
            examples("digits_shifted", split, 1, n, &none, models.path())
                .unwrap()
                .unwrap()
        };
        let (pool, held) = (get(Split::Pool, 1000), get(Split::HeldOut, 1000));
        assert_eq!((pool.len(), held.len()), (16 * 4, 4 * 4));
        let seen: HashSet<_> = pool.iter().map(|p| &p.prompt).collect();
        assert!(held.iter().all(|p| !seen.contains(&p.prompt)));
        assert_eq!(get(Split::Pool, 10).len(), 10);
        assert!(
            examples("painting", Split::Pool, 1, 5, &none, models.path())
                .unwrap()
                .is_none()
        );
        let e = examples(
            "digits_shifted",
            Split::Pool,
            1,
            5,
            &none,
            Path::new("/nonexistent"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/digits/digits.csv"), "{e}");
        assert_eq!(
            examples("reverse", Split::HeldOut, 2, 3, &none, models.path()).unwrap(),
            Some(reverse::pairs(2, 3, &none)),
            "synthetic recipes ignore the split and the folder"
        );
    }
}
