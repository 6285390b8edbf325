#!/usr/bin/env bash
# Checks that llama.cpp, loading agiNet's exported adapter.gguf onto the GGUF base, reproduces
# agiNet's reference logits (README.md). Usage:
#   scripts/llama_cpp_check/run.sh SNAPSHOT_ADAPTER_DIR BASE_GGUF [--tolerance X]
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 SNAPSHOT_ADAPTER_DIR BASE_GGUF [--tolerance X]" >&2
    exit 2
fi
adapter=$1
base=$2
shift 2
[ -f "$adapter/adapter.gguf" ] || { echo "$adapter/adapter.gguf: missing (decoder skills only)" >&2; exit 2; }
[ -f "$base" ] || { echo "$base: missing" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=$("$here/venv.sh")
exec "$python" "$here/check.py" --adapter "$adapter" --gguf "$base" "$@"
