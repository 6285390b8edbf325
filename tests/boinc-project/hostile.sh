#!/bin/sh
# A hostile volunteer's app, as real ones build it with BOINC's anonymous platform: run the
# project's real app (aginet_real, beside this script) in the task's slot, then corrupt the
# delta it wrote before the client uploads it. The real app speaks to the client itself (the
# slot's shared memory), so progress, checkpoints and finishing work as for anyone.
# Used by ci/boinc-round.sh through tests/boinc-project/app_info.xml.
set -e
"$(dirname "$0")/aginet_real" "$@"
# The slot's `delta` is BOINC's soft link: a small XML file naming the real output file.
out=$(sed -n 's:.*<soft_link>\(.*\)</soft_link>.*:\1:p' delta)
[ -f "$out" ] || { echo "hostile.sh: no delta at '$out'" >&2; exit 1; }
# Flip every bit of one byte in the middle: the same size, a different sha256.
size=$(stat -c %s "$out")
offset=$((size / 2))
byte=$(od -An -tu1 -j "$offset" -N1 "$out" | tr -d ' ')
printf "$(printf '\\%03o' $((255 - byte)))" | dd of="$out" bs=1 seek="$offset" conv=notrunc status=none
echo "hostile.sh: flipped byte $offset of $out" >&2
