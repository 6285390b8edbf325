#!/usr/bin/env bash
# The project's test command (the README's second command): formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The static build's configuration: the BOINC protocol in Rust instead of libboinc_api.
cargo clippy --all-targets --no-default-features --features boinc-native -- -D warnings
# The app compiles for Windows (x86_64-pc-windows-gnu, MinGW from ci/setup.sh). Without BOINC
# mode: Windows' libboinc_api is built with Visual Studio, and the native protocol is Unix-only
# so far (docs/boinc-native.md).
cargo check -p aginet --no-default-features --target x86_64-pc-windows-gnu
# The fully static app, which the end-to-end tests run beside the FFI build. Built here, before
# the tests, because the client runs apps at idle priority: a build beside them would starve
# them (the tests build it themselves when run alone).
ci/build-static.sh >/dev/null
# The fully static FFI app (BOINC's app API compiled from BOINC's source), for the same reason.
ci/build-static.sh --ffi >/dev/null
cargo test --workspace
# The whole round through a real BOINC project built from BOINC's source (MariaDB, Apache, the
# daemons), with two real clients: about 3 minutes, plus BOINC's build (2-3 minutes) when its
# cache (~/.cache/aginet) is empty. Budget: 10 minutes. Alone: ci/boinc-round.sh.
ci/boinc-round.sh
# The app's CUDA feature compiled without a GPU: nvcc from PyPI (ci/cuda-toolkit.sh, cached in
# ~/.cache/aginet) compiles candle's kernels, and clippy checks agiNet's CUDA code. Budget: 13
# minutes on 2 cores from nothing. Alone: ci/cuda-build.sh (--binary also links the app).
ci/cuda-build.sh
