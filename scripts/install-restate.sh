#!/usr/bin/env bash
# Installs the pinned Restate server from npm into .tools/restate (git-ignored) and prints
# the path of its binary on stdout.
#
# The npm package @restatedev/restate-server is a small Node wrapper; the server itself is a
# native binary in a per-platform optional dependency (@restatedev/restate-server-linux-x64,
# -linux-arm64, -darwin-x64, -darwin-arm64). ECL runs that binary directly (no Node at run time).
# Idempotent and fast when the pinned version is already installed and runs.
#
#   RESTATE_VERSION=1.7.12 scripts/install-restate.sh     # another version
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${RESTATE_VERSION:-1.7.12}"
DIR=".tools/restate"

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) PLATFORM=linux-x64 ;;
    Linux-aarch64 | Linux-arm64) PLATFORM=linux-arm64 ;;
    Darwin-x86_64) PLATFORM=darwin-x64 ;;
    Darwin-arm64) PLATFORM=darwin-arm64 ;;
    *)
        echo "install-restate: no Restate server package for $(uname -s)-$(uname -m); use docker-compose.yml" >&2
        exit 1
        ;;
esac
BIN="$DIR/node_modules/@restatedev/restate-server-$PLATFORM/bin/restate-server"

installed_version() {
    [ -x "$BIN" ] || return 1
    "$BIN" --version 2>/dev/null | awk '{print $2}'
}

if [ "$(installed_version || true)" = "$VERSION" ]; then
    echo "$PWD/$BIN"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-restate: npm is needed to install the Restate server (Node.js 18+)," >&2
    echo "install-restate: or run Restate with docker-compose.yml instead" >&2
    exit 1
fi

echo "install-restate: installing @restatedev/restate-server@$VERSION into $DIR" >&2
mkdir -p "$DIR"
echo '{"name": "ecl-tools", "private": true}' > "$DIR/package.json"
rm -f "$DIR/package-lock.json"
# SCARF_ANALYTICS=false: the package's install-time analytics dependency stays quiet.
SCARF_ANALYTICS=false npm install --prefix "$DIR" --save-exact --include=optional --omit=dev \
    --no-audit --no-fund --loglevel=error "@restatedev/restate-server@$VERSION" >&2

got="$(installed_version || true)"
if [ "$got" != "$VERSION" ]; then
    echo "install-restate: $BIN missing or not runnable (got '${got:-nothing}', wanted $VERSION);" >&2
    echo "install-restate: npm may have skipped the optional platform package @restatedev/restate-server-$PLATFORM" >&2
    exit 1
fi
echo "$VERSION" > "$DIR/.version"
echo "install-restate: restate-server $VERSION installed" >&2
echo "$PWD/$BIN"
