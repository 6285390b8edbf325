#!/usr/bin/env bash
# Makes (once) the Wine prefix in which the tests run the Windows app (Debian's wine64 8.0,
# headless), and prints its path: ~/.cache/aginet/wine, or $AGINET_WINEPREFIX.
# Wine 8 lacks bcryptprimitives.dll (Windows 10 and later have it; Rust's standard library takes
# its random seeds from it), so the prefix's system32 gets a stand-in built from
# ci/wine/bcryptprimitives.c. The stand-in lives in the prefix only, never beside a shipped app.
# Usage: ci/wine-prefix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${AGINET_WINEPREFIX:-$HOME/.cache/aginet/wine}"
WINE=/usr/lib/wine/wine64
[ -x "$WINE" ] || WINE=$(command -v wine64 || command -v wine || true)
if [ -z "$WINE" ]; then
  echo "wine-prefix.sh: no wine64: install Debian's wine64 (ci/setup.sh)" >&2
  exit 1
fi
STAND_IN="$PREFIX/drive_c/windows/system32/bcryptprimitives.dll"
SOURCE=ci/wine/bcryptprimitives.c
if [ ! -f "$STAND_IN" ] || [ "$SOURCE" -nt "$STAND_IN" ]; then
  mkdir -p "$PREFIX"
  # No Mono or Gecko installers (they would ask, and nothing here needs .NET or HTML).
  WINEPREFIX="$PREFIX" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" "$WINE" wineboot -i >/dev/null 2>&1
  WINEPREFIX="$PREFIX" "$(dirname "$WINE")/wineserver" -w 2>/dev/null || true
  x86_64-w64-mingw32-gcc-posix -shared -O2 -o "$STAND_IN.tmp" "$SOURCE" -ladvapi32
  mv "$STAND_IN.tmp" "$STAND_IN"
fi
echo "$PREFIX"
