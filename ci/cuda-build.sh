#!/usr/bin/env bash
# The app's `cuda` feature, compiled on a machine without a GPU: nvcc (from ci/cuda-toolkit.sh)
# compiles candle's CUDA kernels in candle-kernels' build script, and clippy checks every line
# of agiNet's that the feature switches on, with warnings as errors.
#
#   ci/cuda-build.sh            clippy with `--features cuda` (what ci/test.sh runs)
#   ci/cuda-build.sh --binary   also links `aginet` with the feature (no BOINC mode: the GPU
#                               check runs it standalone) and writes target/cuda/aginet-cuda.zst
#
# Budget: about 13 minutes on 2 cores from nothing, most of it candle's kernels (the quantized
# matmul instances: 5.5 min; 16.9 min in all before CUDAFORGE_THREADS below halved them);
# seconds when warm. ci/test.sh runs it at idle priority beside the BOINC round, in the
# workspace's target folder (CUDA_TARGET_DIR=target), where the lints left the crates the
# feature does not change checked. The GPU it compiles for is
# CUDA_COMPUTE_CAP (default 90, the H100/H200 the device checks run on; docs/builder.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

CUDA_ROOT="$(ci/cuda-toolkit.sh)"
export CUDA_ROOT PATH="$CUDA_ROOT/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# candle-kernels' builder (cudaforge) compiles the quantized-matmul instances on half the cores
# by default: one at a time on a 2-core machine.
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
# A target folder of its own by default: in the workspace's, the binary would replace the
# tests' target/debug/aginet (ci/test.sh, which only runs clippy, shares the workspace's). The
# check and the binary share candle's kernels there.
export CARGO_TARGET_DIR="${CUDA_TARGET_DIR:-target/cuda}"

start=$(date +%s)
cargo clippy -p aginet --all-targets --features cuda -- -D warnings
echo "ci/cuda-build.sh: clippy --features cuda in $(($(date +%s) - start)) s"

if [ "${1:-}" = "--binary" ]; then
  # Optimized like a release for agiNet's own code (the claimed reward is computed on the CPU),
  # in the dev profile whose candle-kernels build the clippy run made (a release would compile
  # the kernels again).
  CARGO_PROFILE_DEV_OPT_LEVEL=3 CARGO_PROFILE_DEV_DEBUG=false \
    cargo build -p aginet --bin aginet --no-default-features --features cuda
  bin="$CARGO_TARGET_DIR/debug/aginet"
  # Its libraries: CUDA's (found on the GPU host) and the system's; no BOINC library.
  if ldd "$bin" | grep -q boinc; then
    echo "ci/cuda-build.sh: $bin links a BOINC library" >&2
    exit 1
  fi
  strip -o "$CARGO_TARGET_DIR/aginet-cuda" "$bin"
  zstd -q -f -19 -T0 "$CARGO_TARGET_DIR/aginet-cuda" -o "$CARGO_TARGET_DIR/aginet-cuda.zst"
  ls -l "$CARGO_TARGET_DIR/aginet-cuda" "$CARGO_TARGET_DIR/aginet-cuda.zst"
  echo "ci/cuda-build.sh: built in $(($(date +%s) - start)) s"
fi
