#!/usr/bin/env bash
# Puts a CUDA 13.0 toolkit (nvcc, headers, the runtime libraries candle links) into a private
# Python venv, from NVIDIA's PyPI wheels, and prints its root: `CUDA_ROOT=$(ci/cuda-toolkit.sh)`.
# No GPU and no driver are needed: candle's kernels are compiled by nvcc at build time.
#
# Why 13.0: candle 0.11's cudarc supports CUDA 11.4 to 13.4, and the CUDA 12 wheels on PyPI carry
# no nvcc (only ptxas); 13.0 is the oldest CUDA 13, so it asks the least of a volunteer's driver
# (580 or newer, which BOINC's plan class `cuda` checks).
#
# The venv lives outside the clone (~/.cache/aginet/cuda-13.0, or $AGINET_CACHE/cuda-13.0) and is
# reused while its pins are the same. Beside the wheels' files it adds what a linker needs and
# the wheels leave out: the unversioned names of the libraries (libcublas.so and so on) and a
# link-time stub of the driver library, libcuda.so, whose soname is the driver's (libcuda.so.1),
# so the binary loads the real driver on a GPU host. The stub defines every driver API name
# that cuda.h declares, as functions that are never called.
set -euo pipefail

CACHE="${AGINET_CACHE:-$HOME/.cache/aginet}"
VENV="$CACHE/cuda-13.0"
PINS=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.0.19 nvidia-curand==10.4.0.35)
STAMP="$VENV/.aginet-pins"

root_of() { echo "$("$VENV/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13"; }

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "${PINS[*]}" ]; then
  echo "ci/cuda-toolkit.sh: installing ${PINS[*]} into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >&2
  ROOT="$(root_of)"
  LIB="$ROOT/lib"
  for so in cudart nvrtc cublas cublasLt curand; do
    real="$(cd "$LIB" && ls "lib$so.so."* | grep -v alt | sort | head -n1)"
    ln -sf "$real" "$LIB/lib$so.so"
  done
  # The driver's link-time stub: one empty function per driver API name in cuda.h.
  mkdir -p "$LIB/stubs"
  grep -oE '\bcu[A-Z][A-Za-z0-9_]*' "$ROOT/include/cuda.h" | sort -u |
    awk '{ printf "void %s(void) {}\n", $1 }' >"$LIB/stubs/cuda_stub.c"
  cc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o "$LIB/stubs/libcuda.so" "$LIB/stubs/cuda_stub.c"
  echo "${PINS[*]}" >"$STAMP"
fi

ROOT="$(root_of)"
"$ROOT/bin/nvcc" --version >/dev/null
echo "$ROOT"
