#!/usr/bin/env bash
# The rustc ci/fuzz.sh builds the fuzz targets with (as RUSTC_WRAPPER): agiNet's own crates and
# the target binaries get libFuzzer's coverage instrumentation, AddressSanitizer and overflow
# checks; every other crate is compiled exactly as the tests' build compiles it, so that the
# build's artifacts in target/debug serve and only agiNet's code is compiled again.
# -Zsanitizer needs RUSTC_BOOTSTRAP, set here only: cargo would rebuild everything for it.
rustc="$1"
shift
instrument=0
prev=""
for arg in "$@"; do
  if [ "$prev" = --crate-name ]; then
    case "$arg" in aginet | aginet_server | aginet_fuzz_targets) instrument=1 ;; esac
  fi
  case "$arg" in */fuzz/fuzz_targets/*.rs | fuzz_targets/*.rs) instrument=1 ;; esac
  prev="$arg"
done
if [ "$instrument" = 1 ]; then
  RUSTC_BOOTSTRAP=1 exec "$rustc" "$@" -Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Zsanitizer=address -Cdebug-assertions -Coverflow-checks
fi
exec "$rustc" "$@"
