#!/usr/bin/env bash
# Installs everything ECL needs on a fresh machine: uv, the Python environment
# (from uv.lock), the pinned Restate server from npm into .tools/ (git-ignored) and Debian's
# Chromium for the browser tests (when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
    echo "setup: uv not found, installing it from PyPI" >&2
    python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
fi
UV="$(command -v uv 2>/dev/null || echo "$HOME/.local/bin/uv")"

# Bytecode compiled now, not on every start: where PYTHONDONTWRITEBYTECODE is set (as on CI
# machines) Python never writes it, and each `ecl` command would compile SQLAlchemy, pydantic
# and ECL itself again (README's first command: ~6 s instead of ~2.4 s on a 2-core VM).
# Once per environment (a stamp newer than uv.lock): uv's --compile-bytecode checks every
# installed file again even when nothing changed (1-2 s on each make target, against 0.02 s).
stamp=.venv/.ecl-bytecode
if [ -f "$stamp" ] && [ "$stamp" -nt uv.lock ]; then
    "$UV" sync --frozen --quiet
else
    "$UV" sync --frozen --quiet --compile-bytecode
    touch "$stamp"
fi
.venv/bin/python -m compileall -q -j 0 src >/dev/null

if [ -x scripts/install-restate.sh ]; then
    scripts/install-restate.sh
fi

scripts/install-chromium.sh

if ! command -v uv >/dev/null 2>&1; then
    echo "setup: uv is at $UV (not on your PATH); run ECL as .venv/bin/ecl or add $(dirname "$UV") to PATH" >&2
fi
