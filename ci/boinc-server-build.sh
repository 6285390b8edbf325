#!/usr/bin/env bash
# Builds BOINC's project server (scheduler, daemons, create_work, make_project, the app API
# libraries) from BOINC's own source, once per source tree, and prints the built tree's path.
#
# The tree comes from $BOINC_SRC (a folder) when set, else from the pinned tarball in
# ../shared/boinc/ (checked against its SHA256SUMS), else from BOINC's git tag
# server_release/1.6/1.6.2. It is never copied into this repository: the build lives in
# ${AGINET_CACHE:-~/.cache/aginet}/boinc-server-<sha256 prefix>/, keyed by the tree's hash, so a
# second run prints the path in a second. Budget: about 5 minutes on 2 cores the first time.
# Needs the Debian packages ci/setup.sh installs (autoconf, libmariadb-dev-compat, libzip-dev, ...).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TARBALL="${BOINC_TARBALL:-$HERE/../../shared/boinc/boinc-server_release-1.6.2.tar.zst}"
TAG=server_release/1.6/1.6.2
CACHE="${AGINET_CACHE:-$HOME/.cache/aginet}"
mkdir -p "$CACHE"

if [ -n "${BOINC_SRC:-}" ]; then
  # A folder: keyed by its git commit when it is a checkout, else by the hash of its file list
  # and sizes (a developer's own tree).
  key=$(git -C "$BOINC_SRC" rev-parse HEAD 2>/dev/null ||
    (cd "$BOINC_SRC" && find . -type f -printf '%p %s\n' | sort | sha256sum | cut -c1-64))
  origin="folder $BOINC_SRC"
elif [ -f "$TARBALL" ]; then
  key=$(sha256sum "$TARBALL" | cut -c1-64)
  want=$(awk '{print $1}' "$(dirname "$TARBALL")/SHA256SUMS")
  if [ "$key" != "$want" ]; then
    echo "boinc-server-build.sh: $TARBALL: sha256 $key, SHA256SUMS says $want" >&2
    exit 1
  fi
  origin="$TARBALL"
else
  key="git-$(echo "$TAG" | tr / -)"
  origin="https://github.com/BOINC/boinc $TAG"
fi
BUILD="$CACHE/boinc-server-${key:0:16}"
if [ -f "$BUILD/.built" ]; then
  echo "$BUILD"
  exit 0
fi

echo "boinc-server-build.sh: building BOINC's server from $origin in $BUILD" >&2
# configure writes absolute paths (py/Boinc/boinc_path_config.py), so the tree is built where
# it stays; .built, written last, marks a finished build, and anything else there is redone.
rm -rf "$BUILD"
mkdir -p "$BUILD"
if [ -n "${BOINC_SRC:-}" ]; then
  cp -a "$BOINC_SRC/." "$BUILD/"
elif [ -f "$TARBALL" ]; then
  tar --zstd -xf "$TARBALL" -C "$BUILD" --strip-components=1
else
  git clone -q --depth 1 --branch "$TAG" https://github.com/BOINC/boinc "$BUILD"
fi
# BOINC's configure and make_project call `python`; Debian 12 has only python3, whose MySQLdb
# (python3-mysqldb) the project tools need, so a private `python` points at Debian's.
mkdir -p "$BUILD/.python-bin"
ln -sf /usr/bin/python3 "$BUILD/.python-bin/python"
export PATH="$BUILD/.python-bin:$PATH"
(
  cd "$BUILD"
  ./_autosetup >/dev/null 2>&1
  ./configure -q --disable-client --disable-manager --enable-server --enable-libraries \
    >/dev/null
  # BOINC's makefiles race under -j, often when the build runs beside others, as in ci/test.sh
  # (three times here): api/ makes ../lib/libboinc.la by its own rule while lib/ is built, so one
  # object is compiled twice at once or archived before it exists (both seen here). A parallel
  # make that fails is finished by a serial one, which only a real error stops.
  if ! make -s -j"$(nproc)" >/dev/null 2>"$BUILD/.make.log"; then
    echo "boinc-server-build.sh: the parallel make failed ($(grep -m1 -E 'Error|error:' "$BUILD/.make.log" || true)); finishing with a serial one" >&2
    make -s >/dev/null 2>"$BUILD/.make-serial.log" ||
      { tail -40 "$BUILD/.make-serial.log" >&2; exit 1; }
  fi
)
touch "$BUILD/.built"
echo "$BUILD"
