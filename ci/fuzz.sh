#!/usr/bin/env bash
# Fuzzes every reader of untrusted bytes (fuzz/, docs/fuzzing.md): builds the libFuzzer targets,
# agiNet's crates with AddressSanitizer and coverage instrumentation (ci/fuzz-rustc.sh; stable
# Rust, no cargo-fuzz needed), makes the seed corpora (fuzz/seeds.sh), replays the inputs that
# once found bugs (fuzz/regressions/), then runs each target for SECONDS, as many at once as
# the machine has cores, and prints per target its executions, coverage edges and corpus size.
#
# A finding is any crash or abort (a panic is one), a run over TIMEOUT seconds on one input, an
# RSS over 2 GiB, or one allocation over 512 MiB (inputs are at most 1 MiB: a larger allocation
# follows a length field, not the input). libFuzzer writes it to target/fuzz/artifacts/<target>/
# and the script fails, naming it. Reproduce: target/debug/<target> <artifact>.
#
# Usage: ci/fuzz.sh [--no-seeds] [SECONDS] [TARGET...]   (default 30 s, every target)
#   --no-seeds   start from an empty corpus (to measure what the seeds add)
# Each run's corpus grows in target/fuzz/corpus/<target>/ (kept across runs; --no-seeds uses a
# fresh one). Budget in .ci/run, 30 s per target: about 5 minutes on 2 cores after the tests'
# build (whose dependencies it shares: only agiNet's crates are compiled again, ~1.5 min).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
SEEDS=1
if [ "${1:-}" = --no-seeds ]; then
  SEEDS=0
  shift
fi
SECONDS_PER_TARGET="${1:-30}"
shift || true
ALL=(adapter config data delta delta_payload gguf report validate validate_built)
TARGETS=("${@:-${ALL[@]}}")
OUT=target/fuzz
BIN=target/debug

start=$SECONDS
# The dev profile and target folder of the tests' build (fuzz/Cargo.toml repeats the profile),
# so that every dependency comes from it; the wrapper instruments agiNet's crates only.
RUSTC_WRAPPER="$PWD/ci/fuzz-rustc.sh" cargo build --quiet --manifest-path fuzz/Cargo.toml \
  --target-dir target --bins
echo "ci/fuzz.sh: built in $((SECONDS - start)) s" >&2

# The seeds, made again when fuzz/seeds.sh has changed since they were.
[ "$SEEDS" = 0 ] || [ "$(cat fuzz/corpus/.made-by 2>/dev/null)" = "$(sha256sum fuzz/seeds.sh | cut -d' ' -f1)" ] ||
  fuzz/seeds.sh

# As many targets run at once as the machine has cores; each target is one process.
LANES=$(($(nproc) > 1 ? $(nproc) : 1))
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0"
mkdir -p "$OUT"
report="$OUT/report.txt"
: >"$report"

run_target() {
  local t="$1" corpus="$OUT/corpus/$1" log="$OUT/logs/$1.log"
  rm -rf "$OUT/artifacts/$t"
  mkdir -p "$OUT/logs" "$OUT/artifacts/$t"
  local dirs
  if [ "$SEEDS" = 1 ]; then
    mkdir -p "$corpus"
    dirs=("$corpus")
    [ -d "fuzz/corpus/$t" ] && dirs+=("fuzz/corpus/$t")
  else
    corpus="$OUT/corpus-noseeds/$t"
    rm -rf "$corpus"
    mkdir -p "$corpus"
    dirs=("$corpus")
  fi
  # The validator's targets recompute rewards with the tiny model on inputs that get that
  # far (about 0.3 s natively, several times that under the sanitizer); every reader else
  # must answer a 1 MiB input within a second.
  local timeout=1
  case "$t" in validate | validate_built) timeout=20 ;; esac
  # What a finding is, for the regression replay and the fuzzing alike.
  local limits=(-timeout="$timeout" -rss_limit_mb=2048 -malloc_limit_mb=512)
  local regressions=()
  if [ -d "fuzz/regressions/$t" ]; then
    mapfile -t regressions < <(find "fuzz/regressions/$t" -type f | sort)
  fi
  if ((${#regressions[@]})); then
    "$BIN/$t" "${limits[@]}" "${regressions[@]}" >"$OUT/logs/$t.regressions.log" 2>&1 ||
      { echo "$t: a regression input fails again (see $OUT/logs/$t.regressions.log)" >>"$report"; return 1; }
  fi
  local status=0
  "$BIN/$t" "${dirs[@]}" "${limits[@]}" -max_total_time="$SECONDS_PER_TARGET" \
    -max_len=1048576 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" >"$log" 2>&1 || status=$?
  local execs cov corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(find "$corpus" -type f | wc -l)
  printf '%-15s %10s execs %7s edges %6s corpus files%s\n' "$t" "${execs:-?}" "${cov:-?}" \
    "$corp" "$([ "$status" = 0 ] || echo "  FINDING (exit $status): $(ls "$OUT/artifacts/$t" | head -3 | tr '\n' ' ')see $log")" >>"$report"
  return "$status"
}

failed=0
pids=()
for t in "${TARGETS[@]}"; do
  run_target "$t" &
  pids+=($!)
  if ((${#pids[@]} >= LANES)); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
sort "$report" >&2
echo "ci/fuzz.sh: ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, $((SECONDS - start)) s in all" >&2
exit "$failed"
