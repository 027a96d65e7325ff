#!/usr/bin/env bash
# Installs Debian's Chromium (/usr/bin/chromium), which the browser tests (tests/browser/) drive
# through Playwright. Playwright's own browser download is not used: it cannot be fetched on
# every machine ECL is developed on. Does nothing when Chromium is already there.
set -euo pipefail
CHROMIUM="${ECL_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: $CHROMIUM is missing and apt-get is not available; install Chromium" \
        "with your system's package manager and set ECL_CHROMIUM to its path (the browser tests need it)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-chromium: $CHROMIUM is missing; run 'apt-get install chromium' as root (the browser tests need it)" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "install-chromium: installing Debian's chromium package (needed by tests/browser)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; then
    # A fresh machine may have no package lists yet.
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "install-chromium: apt-get installed chromium but $CHROMIUM is not there" >&2
    exit 1
fi
echo "install-chromium: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed" >&2
