#!/usr/bin/env bash
# The fuzz targets' seed corpora, made from real files by the project's own tools: a tiny
# project (aginet-server init), a work unit (make-work) and the app's real result for it
# (aginet run). Writes fuzz/corpus/<target>/, replacing what is there:
#   delta, delta_payload  the result's delta file, and its decompressed content
#   report                the result's report
#   validate              report, a NUL byte, the delta's content (the validate target's input)
#   config                the work unit's config, and each skill's (work-config)
#   data                  the work unit's data shard, plain and zstd-compressed, and each
#                         task kind's examples (tiny-data --kind)
#   adapter               a version 1 work unit's signed adapter (the result above validated,
#                         assimilated and aggregated), and its payload (the target signs it)
#   gguf                  the tiny bases (Q8_0 and Q4_K), the vision skill's when present,
#                         and the skills' transformer bases cut down to under 1 MiB
#                         (aginet-server cut-base): Gemma 3 270M (language, planner; its
#                         fetched Q4_K_M file) and MiniLM (memory; convert-bert's output)
# validate_built takes structured inputs and needs no seeds.
# Usage: fuzz/seeds.sh   (builds aginet and aginet-server in the dev profile when needed)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --quiet -p aginet -p aginet-server --bins
APP=target/debug/aginet
SERVER=target/debug/aginet-server
CORPUS=fuzz/corpus
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

P="$WORK/project"
"$SERVER" init --project "$P" --models models --skill tiny >/dev/null 2>&1
WU=$("$SERVER" make-work --project "$P" --count 1 --out "$WORK/made" 2>/dev/null)
"$APP" run --dir "$WU" --threads 1 >/dev/null 2>&1
# The result accepted and aggregated: version 1, whose work units carry a signed adapter.
"$SERVER" validate --project "$P" --local "$WU/delta" "$WU/report" >/dev/null 2>&1
"$SERVER" assimilate --project "$P" "$WU/delta" "$WU/report" "$(basename "$WU")" 1 >/dev/null 2>&1
"$SERVER" aggregate --project "$P" >/dev/null 2>&1
WU1=$("$SERVER" make-work --project "$P" --count 1 --out "$WORK/made1" 2>/dev/null)

rm -rf "$CORPUS"
for t in adapter config data delta delta_payload gguf report validate; do
  mkdir -p "$CORPUS/$t"
done
cp "$WU/delta" "$CORPUS/delta/honest"
zstd -q -d -c "$WU/delta" >"$CORPUS/delta_payload/honest"
cp "$WU/report" "$CORPUS/report/honest"
{ cat "$WU/report"; printf '\0'; cat "$CORPUS/delta_payload/honest"; } >"$CORPUS/validate/honest"

cp "$WU/config" "$CORPUS/config/tiny-workunit"
for skill in tiny language vision memory planner; do
  "$SERVER" work-config --models models --skill "$skill" --out "$CORPUS/config/$skill" 2>/dev/null
done

cp "$WU/data" "$CORPUS/data/tiny-workunit"
zstd -q -c "$WU/data" >"$CORPUS/data/tiny-workunit.zst"
kinds=(reverse spell_digits codenames grid_plans)
[ -f models/digits/digits.csv ] && kinds+=(digits_shifted)
for kind in "${kinds[@]}"; do
  "$SERVER" tiny-data --kind "$kind" --count 12 --eval 2 --out "$CORPUS/data/$kind" 2>/dev/null
done

cp "$WU1/adapter" "$CORPUS/adapter/signed"
# The payload after the 8-byte magic and the 64-byte signature.
tail -c +73 "$WU1/adapter" >"$CORPUS/adapter/payload"

for quant in q8_0 q4k; do
  "$SERVER" tiny-model --quant "$quant" --out "$CORPUS/gguf/tiny-$quant" >/dev/null 2>&1
done
[ -f models/vision/digits-mlp-q8_0.gguf ] && cp models/vision/digits-mlp-q8_0.gguf "$CORPUS/gguf/vision"
# ci/setup.sh fetches both (models/*/fetch.sh); the fuzzers' inputs are at most 1 MiB, and a
# cut base keeps the family's metadata, tokenizer and tensor names at a few hundred KB.
GEMMA=models/gemma3-270m/gemma-3-270m-q4_k_m.gguf
[ -f "$GEMMA" ] && "$SERVER" cut-base --in "$GEMMA" --out "$CORPUS/gguf/gemma3-cut" >/dev/null
if [ -f models/minilm/model/model.safetensors ]; then
  "$SERVER" convert-bert --in models/minilm/model --out "$WORK/minilm.gguf" >/dev/null
  "$SERVER" cut-base --in "$WORK/minilm.gguf" --out "$CORPUS/gguf/minilm-cut" >/dev/null
fi

# What made these seeds: ci/fuzz.sh makes them again when this script changes.
sha256sum fuzz/seeds.sh | cut -d' ' -f1 >"$CORPUS/.made-by"
for t in "$CORPUS"/*/; do
  echo "fuzz/seeds.sh: $(basename "$t"): $(ls "$t" | wc -l) seeds, $(du -sh "$t" | cut -f1)"
done
