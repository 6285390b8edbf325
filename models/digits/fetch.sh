#!/usr/bin/env bash
# Makes the 8x8 handwritten digits (1,797 images, UCI "Optical Recognition of Handwritten
# Digits", test set) available to the vision skill, from PyPI only: scikit-learn's wheel ships
# them as sklearn/datasets/data/digits.csv.gz (64 pixels of 0..16, then the label, per line).
# The wheel is downloaded (not installed) into a private venv's cache, the file taken out and
# decompressed beside this script (ignored by git), and its sha256 checked. Safe to run again.
#
#   models/digits/fetch.sh        # prints the CSV's path
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
csv="$here/digits.csv"
sha256="6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8"
venv="$here/.venv"
wheels="$here/.wheels"

if [ -f "$csv" ] && echo "$sha256  $csv" | sha256sum --check --status; then
  echo "$csv"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux2014_x86_64 -d "$wheels" "scikit-learn==1.6.1"
"$venv/bin/python" - "$wheels" "$csv" <<'PY'
import glob, gzip, sys, zipfile
wheel = sorted(glob.glob(sys.argv[1] + "/scikit_learn-1.6.1-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    raw = gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))
with open(sys.argv[2] + ".tmp", "wb") as f:
    f.write(raw)
PY
mv "$csv.tmp" "$csv"
echo "$sha256  $csv" | sha256sum --check --status || {
  echo "fetch.sh: $csv: sha256 differs from the pinned $sha256" >&2
  exit 1
}
echo "$csv"
