#!/usr/bin/env bash
# The main job: a local federation of the tiny skill on this machine, no BOINC server. Builds
# the release binaries, then `aginet-server demo` runs rounds of make-work, volunteers running
# the real app (one interrupted and resumed, one corrupt, one poisoned), validate, assimilate and
# aggregate, and prints the global held-out reward per round. Flags go to `demo`
# (e.g. --rounds 5 --volunteers 6 --strategy fedadam).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace
target/release/aginet-server demo --project target/demo-project "$@"
