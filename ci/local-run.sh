#!/usr/bin/env bash
# The main job for now: one volunteer's work unit of the tiny skill, made and trained locally.
# Builds release binaries, writes the tiny base, its data and a config into a work-unit folder,
# then runs the app on it and shows the reward before and after. No network, no BOINC.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
WU="${1:-target/local-run/wu}"
cargo build --release --workspace
mkdir -p "$WU"
rm -f "$WU"/{delta,report,checkpoint}
target/release/aginet-server tiny-model --out "$WU/model"
target/release/aginet-server tiny-data --out "$WU/data" --seed 1
target/release/aginet-server work-config --skill tiny --seed 1 --out "$WU/config"
target/release/aginet run --dir "$WU"
echo "results in $WU: delta ($(stat -c %s "$WU/delta") bytes), report"
