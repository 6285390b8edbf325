#!/usr/bin/env bash
# Makes (once) the torch + transformers + PEFT venv that the PEFT check, the Gemma reference
# scripts and bench/gemma use, and prints its python's path. PyPI's default torch wheel is the
# CUDA build (about 4 GB with its nvidia-* dependencies); everything here runs on the CPU.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$here/.venv
python=${PYTHON:-python3}
pins=(
    torch==2.15.0
    transformers==5.24.0
    peft==0.21.2
    gguf==0.19.0
    numpy==2.4.6
    safetensors==0.8.0
)

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "${pins[*]}" ]; then
    echo "setting up $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
    echo "${pins[*]}" > "$venv/.installed"
fi
echo "$venv/bin/python"
