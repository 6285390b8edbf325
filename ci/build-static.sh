#!/usr/bin/env bash
# Builds the fully static volunteer app: the BOINC client-app protocol in Rust (feature
# `boinc-native`, no libboinc_api, no C++ runtime), glibc linked in (`crt-static`) and no
# position-independent start-up code, so the file has no dynamic section at all and runs on any
# x86_64 Linux kernel >= 3.2 whatever its C library. Checks that, then prints the path.
# Usage: ci/build-static.sh [PROFILE]   (default release; the binary is
#        target/static/x86_64-unknown-linux-gnu/<profile dir>/aginet)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
PROFILE="${1:-release}"
TARGET=x86_64-unknown-linux-gnu
# --target keeps these flags off build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  cargo build --quiet --profile "$PROFILE" --no-default-features --features boinc-native \
  --target "$TARGET" --target-dir target/static --bin aginet
DIR="$PROFILE"
[ "$PROFILE" = dev ] && DIR=debug
BIN="target/static/$TARGET/$DIR/aginet"
if readelf -d "$BIN" | grep -q "Dynamic section"; then
  echo "build-static.sh: $BIN has a dynamic section:" >&2
  readelf -d "$BIN" >&2
  exit 1
fi
if readelf -p .comment "$BIN" 2>/dev/null | grep -q GLIBCXX || nm "$BIN" 2>/dev/null | grep -q "__cxa_"; then
  echo "build-static.sh: $BIN carries C++ runtime code" >&2
  exit 1
fi
echo "$BIN"
