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
python=$("$here/venv.sh")

export CUDA_VISIBLE_DEVICES=""
exec "$python" "$here/check.py" --adapter "$adapter" --gguf "$base" "$@"
