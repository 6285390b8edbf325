//! The memory skill's task: find a team's note from a question that names its subject only by
//! the team's codename.
//!
//! `{"prompt": "Kim asks: who is in charge of Varelo now?", "completion": "Update on the
//! payroll audit: Dana took over as owner on Tuesday."}`. Each of 32 codenames stands for one
//! topic (an area and a piece of work), fixed for the task whatever the seed, and no note ever
//! writes a codename. A sentence encoder cannot know the mapping, so it ranks a note by the kind
//! of question alone; fine-tuning on pairs teaches it which words a codename means, and the
//! server's held-out pairs (other questions and notes about the same codenames) measure that.
//! The prompt is the query, the completion the passage to retrieve.

use crate::task::pair::Pair;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Codenames (one per topic).
const CODENAMES: usize = 32;
/// Seed of the codename-to-topic mapping: part of the task, not of a draw.
const MAPPING_SEED: u64 = 0x6d65_6d6f_7279;

const AREAS: [&str; 12] = [
    "billing",
    "hiring",
    "security",
    "marketing",
    "mobile app",
    "warehouse",
    "payroll",
    "customer support",
    "website",
    "data center",
    "legal",
    "travel",
];
const WORKS: [&str; 8] = [
    "migration",
    "audit",
    "launch",
    "budget",
    "roadmap",
    "review",
    "contract",
    "survey",
];
const SYLLABLES: [&str; 16] = [
    "va", "re", "lo", "ti", "ka", "mu", "so", "ne", "dor", "fi", "ba", "ru", "xen", "pa", "li",
    "gor",
];
const PEOPLE: [&str; 16] = [
    "Dana", "Kim", "Ravi", "Olga", "Tomas", "Aiko", "Ben", "Nadia", "Leo", "Sara", "Yusuf", "Ines",
    "Marco", "Priya", "Jon", "Mei",
];
const DAYS: [&str; 5] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

/// A kind of question, with how a note answers it.
struct Kind {
    /// Question templates; `{c}` is the codename.
    asks: &'static [&'static str],
    /// Note templates; `{t}` the topic, `{p}` a person, `{d}` a day, `{n}` a number.
    notes: &'static [&'static str],
}

const KINDS: [Kind; 4] = [
    Kind {
        asks: &[
            "who is in charge of {c} now?",
            "who owns {c}?",
            "whom should I ask about {c}?",
        ],
        notes: &[
            "Update on the {t}: {p} took over as owner on {d}.",
            "{p} is now responsible for the {t}, starting {d}.",
        ],
    },
    Kind {
        asks: &[
            "when is {c} due?",
            "is {c} on schedule?",
            "what is the deadline for {c}?",
        ],
        notes: &[
            "The {t} slipped; the new date is {d} in week {n}.",
            "Deadline for the {t}: {d}, week {n}, confirmed by {p}.",
        ],
    },
    Kind {
        asks: &[
            "how much does {c} cost?",
            "what budget did we approve for {c}?",
            "is {c} over budget?",
        ],
        notes: &[
            "The {t} will cost about {n} thousand euros, {p} said on {d}.",
            "Approved spending for the {t}: {n}k, signed off {d}.",
        ],
    },
    Kind {
        asks: &[
            "what went wrong with {c}?",
            "any problems with {c}?",
            "why is {c} blocked?",
        ],
        notes: &[
            "The {t} is blocked until {p} fixes the access rights, maybe by {d}.",
            "Problem with the {t}: {n} items failed the check on {d}.",
        ],
    },
];

/// The task's codenames and their topics, in a fixed order.
pub fn codenames() -> Vec<(String, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(MAPPING_SEED);
    let mut topics: Vec<String> = AREAS
        .iter()
        .flat_map(|a| WORKS.iter().map(move |w| format!("{a} {w}")))
        .collect();
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(CODENAMES);
    while out.len() < CODENAMES {
        let parts = rng.random_range(2..=3);
        let name: String = (0..parts)
            .map(|_| *SYLLABLES.choose(&mut rng).expect("non-empty"))
            .collect();
        if !names.insert(name.clone()) {
            continue;
        }
        let topic = topics.swap_remove(rng.random_range(0..topics.len()));
        let mut chars = name.chars();
        let first = chars.next().expect("non-empty").to_ascii_uppercase();
        out.push((format!("{first}{}", chars.as_str()), topic));
    }
    out
}

/// `n` distinct examples (by prompt) from `seed`, none of whose prompts is in `exclude`; fewer
/// when no more distinct prompts can be drawn.
pub fn pairs(seed: u64, n: usize, exclude: &HashSet<String>) -> Vec<Pair> {
    let names = codenames();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    let mut misses = 0;
    while out.len() < n && misses < 100_000 {
        let (code, topic) = names.choose(&mut rng).expect("non-empty");
        let kind = KINDS.choose(&mut rng).expect("non-empty");
        let asker = PEOPLE.choose(&mut rng).expect("non-empty");
        let ask = kind.asks.choose(&mut rng).expect("non-empty");
        let prompt = format!("{asker} asks: {}", ask.replace("{c}", code));
        if exclude.contains(&prompt) || !seen.insert(prompt.clone()) {
            misses += 1;
            continue;
        }
        let note = kind.notes.choose(&mut rng).expect("non-empty");
        let completion = note
            .replace("{t}", topic)
            .replace("{p}", PEOPLE.choose(&mut rng).expect("non-empty"))
            .replace("{d}", DAYS.choose(&mut rng).expect("non-empty"))
            .replace("{n}", &rng.random_range(2..60).to_string());
        out.push(Pair { prompt, completion });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codenames_are_distinct_fixed_and_never_in_a_note() {
        let names = codenames();
        assert_eq!(names.len(), CODENAMES);
        assert_eq!(names, codenames());
        let topics: HashSet<_> = names.iter().map(|(_, t)| t).collect();
        assert_eq!(topics.len(), CODENAMES);
        for p in pairs(3, 500, &HashSet::new()) {
            let (code, topic) = names
                .iter()
                .find(|(c, _)| p.prompt.contains(c.as_str()))
                .expect("the question names a codename");
            assert!(p.completion.contains(topic.as_str()), "{p:?}");
            assert!(!p.completion.contains(code.as_str()), "{p:?}");
        }
    }

    #[test]
    fn draws_are_distinct_reproducible_and_respect_exclusions() {
        let a = pairs(1, 1000, &HashSet::new());
        assert_eq!(a.len(), 1000);
        assert_eq!(a, pairs(1, 1000, &HashSet::new()));
        let prompts: HashSet<String> = a.iter().map(|p| p.prompt.clone()).collect();
        assert_eq!(prompts.len(), 1000);
        let b = pairs(2, 200, &prompts);
        assert_eq!(b.len(), 200);
        assert!(b.iter().all(|p| !prompts.contains(&p.prompt)));
    }
}
