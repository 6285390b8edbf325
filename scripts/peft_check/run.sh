#!/usr/bin/env bash
# Checks that PEFT, loading agiNet's exported LoRA adapter onto the GGUF base, reproduces
# agiNet's reference logits. Usage: scripts/peft_check/run.sh SNAPSHOT_ADAPTER_DIR BASE_GGUF [--tolerance X]
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 SNAPSHOT_ADAPTER_DIR BASE_GGUF [--tolerance X]" >&2
    exit 2
fi
adapter=$1
base=$2
shift 2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$here/.venv
python=${PYTHON:-python3}

# PyPI's default torch wheel (the CUDA build, ~4 GB with its nvidia-* dependencies); the check
# runs on the CPU.
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
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
    echo "${pins[*]}" > "$venv/.installed"
fi

export CUDA_VISIBLE_DEVICES=""
exec "$venv/bin/python" "$here/check.py" --adapter "$adapter" --gguf "$base" "$@"
