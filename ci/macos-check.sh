#!/usr/bin/env bash
# Compile-checks the app for macOS (aarch64-apple-darwin) without Apple's SDK: clippy with
# -D warnings over the Rust code with the features a Mac build uses, the protocol in Rust
# (`boinc-native`, whose Unix code macOS shares) and `metal`. Nothing is linked or run.
# zstd-sys would compile zstd's C sources, which need the SDK's C headers; here it is told to
# take the library from pkg-config instead (ZSTD_SYS_USE_PKG_CONFIG), answered by a one-line
# libzstd.pc in a temporary folder. A check links nothing, so no library is needed; a real Mac
# build compiles zstd from source as usual. In the workspace's target folder, whose build scripts
# and proc macros the lints built already: about 1 minute after them on 2 cores (3.7 in a folder
# of its own).
# Usage: ci/macos-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
PC=$(mktemp -d)
trap 'rm -rf "$PC"' EXIT
printf 'Name: libzstd\nDescription: zstd, for a compile-check that links nothing\nVersion: 1.5.7\nLibs: -lzstd\nCflags:\n' \
  >"$PC/libzstd.pc"
PKG_CONFIG_PATH="$PC" PKG_CONFIG_ALLOW_CROSS=1 ZSTD_SYS_USE_PKG_CONFIG=1 \
  cargo clippy --quiet -p aginet --no-default-features --features boinc-native,metal \
  --target aarch64-apple-darwin -- -D warnings
echo "macos-check.sh: aginet (boinc-native, metal) checks clean for aarch64-apple-darwin"
