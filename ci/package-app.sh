#!/usr/bin/env bash
# Builds the release app and assembles a BOINC app version folder an operator copies into the
# project's apps/ tree: apps/aginet/<version>/<platform>/ with the binary, the project's public
# key and version.xml, plus (FFI build only) the two BOINC shared libraries it links.
# With --static the binary is `ci/build-static.sh --ffi`'s (BOINC's own app API compiled from
# its source, linked statically), with --static-native `ci/build-static.sh`'s (the protocol in
# Rust): one file with no dynamic section, nothing else to ship (cargo flags are then not
# accepted). With --static, --target TRIPLE packages another platform's build:
# aarch64-unknown-linux-gnu (BOINC platform aarch64-unknown-linux-gnu) or x86_64-pc-windows-gnu
# (BOINC platform windows_x86_64, an .exe).
# Usage: AGINET_PROJECT_KEY=PROJECT/keys/signing.pub ci/package-app.sh [--static [--target TRIPLE]|--static-native] [OUT_DIR] [cargo flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
STATIC=0
STATIC_FLAGS=()
TARGET=x86_64-unknown-linux-gnu
case "${1:-}" in
  --static) STATIC=1; STATIC_FLAGS=(--ffi); shift ;;
  --static-native) STATIC=1; shift ;;
esac
if [ "$STATIC" = 1 ] && [ "${1:-}" = --target ]; then
  TARGET="$2"
  STATIC_FLAGS+=(--target "$TARGET")
  shift 2
fi
# BOINC's platform name for the target, and the executable's suffix there.
EXE_SUFFIX=""
case "$TARGET" in
  x86_64-unknown-linux-gnu) PLATFORM=x86_64-pc-linux-gnu ;;
  aarch64-unknown-linux-gnu) PLATFORM=aarch64-unknown-linux-gnu ;;
  x86_64-pc-windows-gnu) PLATFORM=windows_x86_64; EXE_SUFFIX=.exe ;;
  *) echo "package-app.sh: no BOINC platform known for $TARGET" >&2; exit 2 ;;
esac
OUT="${1:-target/app-version}"
shift || true
VERSION=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="aginet"))')
DIR="$OUT/aginet/$VERSION/$PLATFORM"
mkdir -p "$DIR"
if [ "$STATIC" = 1 ]; then
  [ $# -eq 0 ] || { echo "package-app.sh: --static takes no cargo flags" >&2; exit 2; }
  BIN=$(ci/build-static.sh "${STATIC_FLAGS[@]}" release | tail -1)
  install -m 0755 "$BIN" "$DIR/aginet_${VERSION}_${PLATFORM}${EXE_SUFFIX}"
else
  cargo build --release -p aginet "$@"
  install -m 0755 target/release/aginet "$DIR/aginet_${VERSION}_${PLATFORM}"
  for lib in libboinc_api.so.7 libboinc.so.7; do
    install -m 0644 "$(readlink -f "/usr/lib/x86_64-linux-gnu/$lib")" "$DIR/$lib"
  done
fi
if [ -n "${AGINET_PROJECT_KEY:-}" ]; then
  install -m 0644 "$AGINET_PROJECT_KEY" "$DIR/aginet_project_key"
else
  echo "package-app.sh: AGINET_PROJECT_KEY not set: add the project's keys/signing.pub as aginet_project_key" >&2
fi
TEMPLATE=wu/version.xml
[ "$STATIC" = 1 ] && TEMPLATE=wu/version-static.xml
sed -e "s/@VERSION@/$VERSION/g" -e "s/@PLATFORM@/$PLATFORM/g" -e "s/@EXE@/$EXE_SUFFIX/g" \
  "$TEMPLATE" > "$DIR/version.xml"
echo "app version in $DIR:"
ls -l "$DIR"
