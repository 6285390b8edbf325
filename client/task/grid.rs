//! The planner skill's puzzle: walk from a start cell to a goal cell of a small grid around its
//! walls, and the simulator that judges a plan.
//!
//! ```text
//! prompt:     "Grid 5x5. Start 1,2. Goal 4,5, 3 down 3 right. Walls 2,2 3,4.\nPlan:"
//! completion: " R D D D R R"
//! ```
//!
//! Cells are `row,column`, from `1,1` at the top left; the goal also says how far it lies from
//! the start (`0 down` when it is level), so the puzzle is the walk around the walls and not the
//! subtraction. A plan is moves separated by spaces:
//! `U` (row − 1), `D` (row + 1), `L` (column − 1), `R` (column + 1). The simulator accepts a plan
//! that stays on the grid, never enters a wall and ends on the goal; it is optimal when no
//! accepted plan is shorter (a breadth-first search decides). The reference completion is the
//! shortest plan that prefers, at each step, the first of `D R U L` that keeps it shortest, so
//! it is fixed by the prompt. The problem is read back from the prompt text alone, so the app and
//! the validator judge generated plans without anything else.

use crate::task::pair::Pair;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashSet, VecDeque};

/// The smallest and largest side of a grid.
const SIDES: std::ops::RangeInclusive<u8> = 3..=4;
/// Most walls in a problem.
const MAX_WALLS: usize = 2;
/// The moves in the order the reference plan prefers them.
const MOVES: [Move; 4] = [Move::Down, Move::Right, Move::Up, Move::Left];

/// A cell, `(row, column)`, 1-based.
pub type Cell = (u8, u8);

/// One step of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// Row − 1.
    Up,
    /// Row + 1.
    Down,
    /// Column − 1.
    Left,
    /// Column + 1.
    Right,
}

impl Move {
    /// The move's letter.
    pub fn letter(self) -> char {
        match self {
            Self::Up => 'U',
            Self::Down => 'D',
            Self::Left => 'L',
            Self::Right => 'R',
        }
    }

    /// The cell one step from `cell` (which may be off the grid: row or column 0 or past it).
    fn from(self, (r, c): Cell) -> (i16, i16) {
        let (r, c) = (i16::from(r), i16::from(c));
        match self {
            Self::Up => (r - 1, c),
            Self::Down => (r + 1, c),
            Self::Left => (r, c - 1),
            Self::Right => (r, c + 1),
        }
    }
}

/// A puzzle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Rows.
    pub rows: u8,
    /// Columns.
    pub cols: u8,
    /// Where the walk starts.
    pub start: Cell,
    /// Where it must end.
    pub goal: Cell,
    /// Cells that cannot be entered, in the order the prompt lists them.
    pub walls: Vec<Cell>,
}

/// What the simulator says of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The plan parses, stays on the grid and off the walls, and ends on the goal.
    pub accepted: bool,
    /// Accepted, and as short as the shortest plan.
    pub optimal: bool,
}

impl Problem {
    /// The prompt for this problem.
    pub fn prompt(&self) -> String {
        let cell = |(r, c): Cell| format!("{r},{c}");
        let mut text = format!(
            "Grid {}x{}. Start {}. Goal {}, {}.",
            self.rows,
            self.cols,
            cell(self.start),
            cell(self.goal),
            self.offset()
        );
        if !self.walls.is_empty() {
            let walls: Vec<String> = self.walls.iter().map(|w| cell(*w)).collect();
            text.push_str(&format!(" Walls {}.", walls.join(" ")));
        }
        text.push_str("\nPlan:");
        text
    }

    /// How far the goal lies from the start, in words: `2 down 1 left`, `0 down 3 right`.
    fn offset(&self) -> String {
        let (dr, dc) = (
            i16::from(self.goal.0) - i16::from(self.start.0),
            i16::from(self.goal.1) - i16::from(self.start.1),
        );
        let vertical = if dr < 0 { "up" } else { "down" };
        let horizontal = if dc < 0 { "left" } else { "right" };
        format!("{} {vertical} {} {horizontal}", dr.abs(), dc.abs())
    }

    /// Reads a problem back from its prompt (whose stated offset must agree with its cells).
    pub fn parse(prompt: &str) -> std::result::Result<Self, String> {
        let bad = || format!("not a grid problem: {prompt:?}");
        let body = prompt.strip_suffix("\nPlan:").ok_or_else(bad)?;
        let cell = |s: &str| -> std::result::Result<Cell, String> {
            let (r, c) = s.split_once(',').ok_or_else(bad)?;
            Ok((r.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?))
        };
        let mut parts = body.split(". ").map(|p| p.trim_end_matches('.'));
        let size = parts
            .next()
            .and_then(|p| p.strip_prefix("Grid "))
            .ok_or_else(bad)?;
        let (rows, cols) = size.split_once('x').ok_or_else(bad)?;
        let start = parts
            .next()
            .and_then(|p| p.strip_prefix("Start "))
            .ok_or_else(bad)?;
        let (goal, offset) = parts
            .next()
            .and_then(|p| p.strip_prefix("Goal "))
            .and_then(|p| p.split_once(", "))
            .ok_or_else(bad)?;
        let walls = match parts.next() {
            Some(w) => w
                .strip_prefix("Walls ")
                .ok_or_else(bad)?
                .split(' ')
                .map(cell)
                .collect::<std::result::Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        let p = Self {
            rows: rows.parse().map_err(|_| bad())?,
            cols: cols.parse().map_err(|_| bad())?,
            start: cell(start)?,
            goal: cell(goal)?,
            walls,
        };
        let on = |&(r, c): &Cell| (1..=p.rows).contains(&r) && (1..=p.cols).contains(&c);
        if !(on(&p.start) && on(&p.goal) && p.walls.iter().all(on)) {
            return Err(format!("a cell lies off the grid: {prompt:?}"));
        }
        if offset != p.offset() {
            return Err(format!("the goal's offset is not {offset:?}: {prompt:?}"));
        }
        Ok(p)
    }

    /// Whether `cell` is on the grid and not a wall.
    fn open(&self, (r, c): (i16, i16)) -> Option<Cell> {
        let inside =
            (1..=i16::from(self.rows)).contains(&r) && (1..=i16::from(self.cols)).contains(&c);
        let cell = (r as u8, c as u8);
        (inside && !self.walls.contains(&cell)).then_some(cell)
    }

    /// Steps of the shortest walk from every open cell to the goal (`None`: unreachable).
    fn distances(&self) -> Vec<Vec<Option<u16>>> {
        let mut dist = vec![vec![None; usize::from(self.cols) + 1]; usize::from(self.rows) + 1];
        dist[usize::from(self.goal.0)][usize::from(self.goal.1)] = Some(0);
        let mut queue = VecDeque::from([self.goal]);
        while let Some(cell) = queue.pop_front() {
            let d = dist[usize::from(cell.0)][usize::from(cell.1)].expect("queued cells have one");
            for m in MOVES {
                if let Some(next) = self.open(m.from(cell)) {
                    let slot = &mut dist[usize::from(next.0)][usize::from(next.1)];
                    if slot.is_none() {
                        *slot = Some(d + 1);
                        queue.push_back(next);
                    }
                }
            }
        }
        dist
    }

    /// The reference plan: shortest, preferring `D R U L` at each step; `None` when the goal
    /// cannot be reached.
    pub fn solve(&self) -> Option<Vec<Move>> {
        let dist = self.distances();
        let at = |c: Cell| dist[usize::from(c.0)][usize::from(c.1)];
        let mut cell = self.start;
        let mut plan = Vec::new();
        let mut left = at(cell)?;
        while left > 0 {
            let (m, next) = MOVES
                .iter()
                .filter_map(|m| self.open(m.from(cell)).map(|n| (*m, n)))
                .find(|(_, n)| at(*n) == Some(left - 1))
                .expect("a shortest path continues");
            plan.push(m);
            cell = next;
            left -= 1;
        }
        Some(plan)
    }

    /// Simulates `plan` (letters separated by whitespace, as a completion writes them).
    pub fn check(&self, plan: &str) -> Verdict {
        let rejected = Verdict {
            accepted: false,
            optimal: false,
        };
        let mut cell = self.start;
        let mut steps = 0u16;
        for word in plan.split_whitespace() {
            let m = match word {
                "U" => Move::Up,
                "D" => Move::Down,
                "L" => Move::Left,
                "R" => Move::Right,
                _ => return rejected,
            };
            match self.open(m.from(cell)) {
                Some(next) => cell = next,
                None => return rejected,
            }
            steps += 1;
        }
        if cell != self.goal {
            return rejected;
        }
        let shortest = self.distances()[usize::from(self.start.0)][usize::from(self.start.1)];
        Verdict {
            accepted: true,
            optimal: shortest == Some(steps),
        }
    }

    /// The example of this problem, whose completion is the reference plan (with a leading
    /// space); `None` when the goal cannot be reached.
    pub fn pair(&self) -> Option<Pair> {
        let plan: String = self
            .solve()?
            .iter()
            .map(|m| format!(" {}", m.letter()))
            .collect();
        Some(Pair {
            prompt: self.prompt(),
            completion: plan,
        })
    }
}

/// A random solvable problem whose start is not its goal.
fn draw(rng: &mut ChaCha8Rng) -> Problem {
    loop {
        let rows = rng.random_range(SIDES);
        let cols = rng.random_range(SIDES);
        let mut cell = || (rng.random_range(1..=rows), rng.random_range(1..=cols));
        let (start, goal) = (cell(), cell());
        let n_walls = rng.random_range(0..=MAX_WALLS);
        let mut walls: Vec<Cell> = Vec::new();
        for _ in 0..n_walls {
            let w = (rng.random_range(1..=rows), rng.random_range(1..=cols));
            if w != start && w != goal && !walls.contains(&w) {
                walls.push(w);
            }
        }
        let p = Problem {
            rows,
            cols,
            start,
            goal,
            walls,
        };
        if start != goal && p.solve().is_some() {
            return p;
        }
    }
}

/// `n` distinct examples (by prompt) from `seed`, none of whose prompts is in `exclude`.
pub fn pairs(seed: u64, n: usize, exclude: &HashSet<String>) -> Vec<Pair> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let pair = draw(&mut rng).pair().expect("drawn problems are solvable");
        if !exclude.contains(&pair.prompt) && seen.insert(pair.prompt.clone()) {
            out.push(pair);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            rows: 5,
            cols: 5,
            start: (1, 2),
            goal: (4, 5),
            walls: vec![(2, 2), (3, 4)],
        }
    }

    #[test]
    fn prompts_read_back_and_the_reference_plan_is_shortest_and_preferred() {
        let p = problem();
        assert_eq!(
            p.prompt(),
            "Grid 5x5. Start 1,2. Goal 4,5, 3 down 3 right. Walls 2,2 3,4.\nPlan:"
        );
        assert_eq!(Problem::parse(&p.prompt()).unwrap(), p);
        let pair = p.pair().unwrap();
        // Down is blocked at 2,2, so Right first; then Down twice, Right; 3,4 is a wall.
        assert_eq!(pair.completion, " R D D D R R");
        let v = p.check(&pair.completion);
        assert!(v.accepted && v.optimal, "{v:?}");
        let open = Problem {
            walls: vec![],
            ..p.clone()
        };
        assert_eq!(open.pair().unwrap().completion, " D D D R R R");
        assert_eq!(Problem::parse(&open.prompt()).unwrap(), open);
    }

    #[test]
    fn the_simulator_refuses_walls_edges_words_and_short_walks() {
        let p = problem();
        let rejected = |plan: &str| !p.check(plan).accepted;
        assert!(rejected(" D"), "into a wall");
        assert!(rejected(" U"), "off the grid");
        assert!(rejected(" R D D"), "stops short");
        assert!(rejected(" R D D D R R X"), "not a move");
        assert!(rejected(" R D D D R R R"), "off the grid at the end");
        let long = p.check(" R D D D R L R R");
        assert!(long.accepted && !long.optimal, "{long:?}");
    }

    #[test]
    fn malformed_prompts_are_refused() {
        for bad in [
            "Grid 5x5. Start 1,2. Goal 4,5.",
            "Grid 5x5. Start 1,2.\nPlan:",
            "Grid 5x5. Start 1,2. Goal 9,9, 8 down 7 right.\nPlan:",
            "Grid 5x5. Start 1,2. Goal 4,5, 3 down 3 right. Holes 1,1.\nPlan:",
            "Grid 5x5. Start 1,2. Goal 4,5, 3 down 2 right.\nPlan:",
            "Grid 5x5. Start 1,2. Goal 4,5.\nPlan:",
        ] {
            assert!(Problem::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn draws_are_solvable_distinct_and_reproducible() {
        let a = pairs(1, 500, &HashSet::new());
        assert_eq!(a, pairs(1, 500, &HashSet::new()));
        for pair in &a {
            let p = Problem::parse(&pair.prompt).unwrap();
            let v = p.check(&pair.completion);
            assert!(v.accepted && v.optimal, "{pair:?}");
        }
        let prompts: HashSet<String> = a.iter().map(|p| p.prompt.clone()).collect();
        assert_eq!(prompts.len(), 500);
        let b = pairs(2, 100, &prompts);
        assert!(b.iter().all(|p| !prompts.contains(&p.prompt)));
    }
}
