#!/usr/bin/env bash
# The project's test command (the README's second command): formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Each stage's start and the time spent so far, on stderr: where CI's minutes go.
stage() { echo "ci/test.sh: $(date +%T), ${SECONDS} s in: $*" >&2; }

# Two slow jobs that no test needs run at idle priority (SCHED_IDLE, the idle I/O class and a
# scheduling group of nice 19: they get only the CPU time the stages leave, in single-threaded
# links and waits): BOINC's project server for the round (~5 minutes of 2 cores from nothing),
# from the start, and the CUDA check, beside the round. Their output is in
# target/ci/<name>.log, printed when they are waited for. (The BOINC clients of the tests and of
# the round run the app at their own priority, `no_priority_change`: the tests time it, and at
# idle priority it would get only what every other process leaves, the tests' own included.)
mkdir -p target/ci
declare -A BACKGROUND=()
background() {
  local name="$1"
  shift
  # Its own process group, so that an early exit stops all of it (cargo, make, nvcc). A new
  # session is also a new scheduling group for the kernel (autogroup), which shares the CPU with
  # the stages' group as an equal whatever its processes' policy (both builds took half of the
  # CPU here, at SCHED_IDLE): the group's own nice value, 19, is what keeps it out of the way.
  setsid sh -c 'echo 19 2>/dev/null >/proc/self/autogroup; exec chrt --idle 0 ionice -c 3 "$@"' \
    "$name" "$@" >"target/ci/$name.log" 2>&1 &
  BACKGROUND[$name]=$!
}
stop_background() {
  local pid
  for pid in "${BACKGROUND[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
}
trap stop_background EXIT
trap 'exit 130' INT TERM
await() {
  local name="$1" status=0
  wait "${BACKGROUND[$name]}" || status=$?
  unset "BACKGROUND[$name]"
  if [ "$status" != 0 ]; then
    tail -40 "target/ci/$name.log" >&2
    echo "ci/test.sh: $name failed (exit $status; target/ci/$name.log)" >&2
    exit 1
  fi
  tail -3 "target/ci/$name.log" >&2
}
background boinc-server ci/boinc-server-build.sh

stage formatting
cargo fmt --all -- --check
stage lints
cargo clippy --workspace --all-targets -- -D warnings
stage lints of the native protocol build
# The static build's configuration: the BOINC protocol in Rust instead of libboinc_api.
cargo clippy --all-targets --no-default-features --features boinc-native -- -D warnings
stage the macOS compile-check
# The app's Rust code for macOS, without Apple's SDK (nothing linked). Alone: ci/macos-check.sh.
ci/macos-check.sh
stage the app versions
# Every app version the tests run, built before them (run alone, the tests build each on first
# use, one at a time, while the tests that need it wait). Two lanes side by side, so that one's
# long single-threaded LTO links overlap the other's compiling. About 17 minutes on 2 cores
# from nothing.
# - The other platforms' app versions, Windows x86_64 (MinGW) and Linux aarch64, which the tests
#   run under Wine and qemu (server/tests/rounds/platforms/), each in its own target folder.
#   Alone: ci/build-static.sh --ffi --target TRIPLE.
# - The two fully static x86_64 apps, in one target folder (their dependencies built once):
#   BOINC's app API compiled from BOINC's source (--ffi), and the protocol in Rust. The
#   end-to-end tests run both, the platform tests compare with the first.
{ ci/build-static.sh --ffi --target x86_64-pc-windows-gnu && ci/build-static.sh --ffi --target aarch64-unknown-linux-gnu; } >/dev/null &
LANE=$!
ci/build-static.sh --ffi >/dev/null
ci/build-static.sh >/dev/null
wait "$LANE"
stage tests
cargo test --workspace
stage fuzzing
# Every reader of untrusted bytes fuzzed for 30 s, two targets at a time, after the regression
# inputs replayed (docs/fuzzing.md): agiNet's crates instrumented, the rest taken from the tests'
# build. Budget: 5 minutes. Alone, longer: ci/fuzz.sh [SECONDS] [TARGET...].
ci/fuzz.sh 30
stage the BOINC project round
# The app's CUDA feature compiled without a GPU: nvcc from PyPI (ci/cuda-toolkit.sh, cached in
# ~/.cache/aginet) compiles candle's kernels, and clippy checks agiNet's CUDA code. In the
# workspace's target folder, where the lints left every crate the feature does not change
# checked (in a folder of its own it checked them all again), so it starts once nothing else
# builds there, beside the round, which leaves most of the CPU idle. Budget: 8 minutes on 2
# cores after the lints. Alone: ci/cuda-build.sh (--binary also links).
background cuda-build env CUDA_TARGET_DIR=target ci/cuda-build.sh
# The whole round through a real BOINC project built from BOINC's source (MariaDB, Apache, the
# daemons), with two real clients: about 4 minutes, after BOINC's build (started first, above;
# cached in ~/.cache/aginet). Budget: 10 minutes. Alone: ci/boinc-round.sh.
await boinc-server
AGINET_SERVER="$PWD/target/debug/aginet-server" ci/boinc-round.sh
stage the rest of the CUDA build
await cuda-build
stage done
