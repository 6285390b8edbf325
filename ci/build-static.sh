#!/usr/bin/env bash
# Builds a self-contained volunteer app for one platform and checks that it is one:
# - Linux (x86_64 by default, or --target aarch64-unknown-linux-gnu, cross-compiled with Debian's
#   gcc-aarch64-linux-gnu): glibc linked in (`crt-static`) and no position-independent start-up
#   code, so the file has no dynamic section at all and runs on any Linux kernel >= 3.2 whatever
#   its C library and whatever BOINC or C++ libraries it has.
# - Windows (--target x86_64-pc-windows-gnu, with Debian's MinGW-w64, its posix-thread
#   compilers): one .exe with the C++ and Rust runtimes inside, importing only Windows' own DLLs
#   (checked against a list). Needs --ffi: the protocol in Rust speaks Unix shared memory only.
# Two flavours:
# - default: the BOINC client-app protocol in Rust (feature `boinc-native`): no libboinc_api and
#   no C++ runtime in the file (checked);
# - --ffi: BOINC's own app API compiled from BOINC's source (feature `boinc-bundled`, the
#   `-sys` crate's `bundled`), with the C++ runtime linked in statically (libstdc++.a: under
#   crt-static the linker takes only static archives).
# Checks that, then prints the path.
# Usage: ci/build-static.sh [--ffi] [--target TRIPLE] [PROFILE]   (default release; the binary
#        is target/static/x86_64-unknown-linux-gnu/<profile dir>/aginet-native (or -ffi), or
#        for another target target/static-ffi-<triple>/<triple>/<profile dir>/aginet-ffi[.exe])
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
FFI=0
TARGET=x86_64-unknown-linux-gnu
while [ $# -gt 0 ]; do
  case "$1" in
    --ffi) FFI=1; shift ;;
    --target) TARGET="$2"; shift 2 ;;
    *) break ;;
  esac
done
PROFILE="${1:-release}"
FEATURES=boinc-native
FLAVOUR=native
if [ "$FFI" = 1 ]; then
  FEATURES=boinc-bundled
  FLAVOUR=ffi
fi
# Both x86_64 flavours share one target folder: their dependencies are the same, built once.
# Another platform's build gets a folder of its own, so that it can build beside them (cargo
# locks a target folder while it builds).
TARGET_DIR=target/static
[ "$TARGET" = x86_64-unknown-linux-gnu ] || TARGET_DIR="target/static-$FLAVOUR-$TARGET"
EXE=aginet
# --target keeps these flags off build scripts and proc macros, which must stay dynamic.
FLAGS="-C target-feature=+crt-static -C relocation-model=static"
case "$TARGET" in
  x86_64-unknown-linux-gnu) ;;
  aarch64-unknown-linux-gnu)
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    ;;
  x86_64-pc-windows-gnu)
    if [ "$FFI" = 0 ]; then
      echo "build-static.sh: $TARGET needs --ffi (the protocol in Rust is Unix-only)" >&2
      exit 2
    fi
    # The posix-thread MinGW compilers: libstdc++ with C++11 threads, and one driver for the C++
    # archives and the link so that both take the same runtime. rustc ignores crt-static here;
    # boinc-api-sys links libstdc++.a itself, and Rust's runtime is static on this target.
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc-posix
    export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc-posix
    export CXX_x86_64_pc_windows_gnu=x86_64-w64-mingw32-g++-posix
    export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
    FLAGS=""
    EXE=aginet.exe
    ;;
  *)
    echo "build-static.sh: unknown target $TARGET (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, x86_64-pc-windows-gnu)" >&2
    exit 2
    ;;
esac
DIR="$PROFILE"
[ "$PROFILE" = dev ] && DIR=debug
mkdir -p "$TARGET_DIR/$TARGET/$DIR"
# Cargo writes either flavour to the same file: each build and the copy of its binary to the
# flavour's own name happen under one lock, so two builds at once cannot swap them.
exec 9>"$TARGET_DIR/build-static.lock"
flock 9
RUSTFLAGS="$FLAGS" \
  cargo build --quiet --profile "$PROFILE" --no-default-features --features "$FEATURES" \
  --target "$TARGET" --target-dir "$TARGET_DIR" --bin aginet
BIN="$TARGET_DIR/$TARGET/$DIR/${EXE%.exe}-$FLAVOUR${EXE#aginet}"
cp -f "$TARGET_DIR/$TARGET/$DIR/$EXE" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
exec 9>&-
case "$TARGET" in
  *-linux-gnu)
    if readelf -d "$BIN" | grep -q "Dynamic section"; then
      echo "build-static.sh: $BIN has a dynamic section:" >&2
      readelf -d "$BIN" >&2
      exit 1
    fi
    ;;
  *-windows-gnu)
    # Windows' own DLLs (and the API sets Rust's runtime names); nothing a volunteer lacks.
    ALLOWED='^(kernel32|advapi32|bcryptprimitives|msvcrt|ntdll|shell32|user32|userenv|ws2_32|api-ms-win-core-[a-z0-9-]+)\.dll$'
    IMPORTS=$(x86_64-w64-mingw32-objdump -p "$BIN" | sed -n 's/^\s*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
    if [ -z "$IMPORTS" ] || echo "$IMPORTS" | grep -Ev "$ALLOWED" >/dev/null; then
      echo "build-static.sh: $BIN imports DLLs Windows does not have:" >&2
      echo "$IMPORTS" | grep -Ev "$ALLOWED" >&2 || true
      exit 1
    fi
    ;;
esac
if [ "$FFI" = 0 ] && { readelf -p .comment "$BIN" 2>/dev/null | grep -q GLIBCXX || nm "$BIN" 2>/dev/null | grep -q "__cxa_"; }; then
  echo "build-static.sh: $BIN carries C++ runtime code" >&2
  exit 1
fi
if [ "$FFI" = 1 ] && ! strings "$BIN" | grep "API: error parsing AC state" >/dev/null; then
  echo "build-static.sh: $BIN does not carry BOINC's app API (none of boinc_api.cpp's messages)" >&2
  exit 1
fi
echo "$BIN"
