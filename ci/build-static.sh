#!/usr/bin/env bash
# Builds a fully static volunteer app: glibc linked in (`crt-static`) and no position-independent
# start-up code, so the file has no dynamic section at all and runs on any x86_64 Linux kernel
# >= 3.2 whatever its C library and whatever BOINC or C++ libraries it has. Two flavours:
# - default: the BOINC client-app protocol in Rust (feature `boinc-native`): no libboinc_api and
#   no C++ runtime in the file (checked);
# - --ffi: BOINC's own app API compiled from BOINC's source (feature `boinc-bundled`, the
#   `-sys` crate's `bundled`), with the C++ runtime linked in statically (libstdc++.a: under
#   crt-static the linker takes only static archives).
# Checks that, then prints the path.
# Usage: ci/build-static.sh [--ffi] [PROFILE]   (default release; the binary is
#        target/static[-ffi]/x86_64-unknown-linux-gnu/<profile dir>/aginet)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
FFI=0
if [ "${1:-}" = "--ffi" ]; then
  FFI=1
  shift
fi
PROFILE="${1:-release}"
TARGET=x86_64-unknown-linux-gnu
FEATURES=boinc-native
TARGET_DIR=target/static
if [ "$FFI" = 1 ]; then
  FEATURES=boinc-bundled
  TARGET_DIR=target/static-ffi
fi
# --target keeps these flags off build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  cargo build --quiet --profile "$PROFILE" --no-default-features --features "$FEATURES" \
  --target "$TARGET" --target-dir "$TARGET_DIR" --bin aginet
DIR="$PROFILE"
[ "$PROFILE" = dev ] && DIR=debug
BIN="$TARGET_DIR/$TARGET/$DIR/aginet"
if readelf -d "$BIN" | grep -q "Dynamic section"; then
  echo "build-static.sh: $BIN has a dynamic section:" >&2
  readelf -d "$BIN" >&2
  exit 1
fi
if [ "$FFI" = 0 ] && { readelf -p .comment "$BIN" 2>/dev/null | grep -q GLIBCXX || nm "$BIN" 2>/dev/null | grep -q "__cxa_"; }; then
  echo "build-static.sh: $BIN carries C++ runtime code" >&2
  exit 1
fi
if [ "$FFI" = 1 ] && ! strings "$BIN" | grep "API: error parsing AC state" >/dev/null; then
  echo "build-static.sh: $BIN does not carry BOINC's app API (none of boinc_api.cpp's messages)" >&2
  exit 1
fi
echo "$BIN"
