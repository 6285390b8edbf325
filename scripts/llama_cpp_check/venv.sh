#!/usr/bin/env bash
# Makes (once) the venv of the llama.cpp check: llama-cpp-python from PyPI, which compiles
# llama.cpp from its source on install (CPU only; about 10 minutes on 2 cores; cmake comes from
# PyPI when the machine has none), and prints its python's path.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$here/.venv
python=${PYTHON:-python3}
pins=(
    llama-cpp-python==0.3.36
    numpy==2.4.6
)

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "${pins[*]}" ]; then
    echo "setting up $venv (compiles llama.cpp)" >&2
    "$python" -m venv "$venv"
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
    echo "${pins[*]}" > "$venv/.installed"
fi
echo "$venv/bin/python"
