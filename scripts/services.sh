#!/usr/bin/env bash
# Starts the local services the test suite talks to, when they are not running.
set -euo pipefail
PGHOST="${ECL_TEST_PG_HOST:-127.0.0.1}"
PGPORT="${ECL_TEST_PG_PORT:-5432}"
if ! pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; then
    echo "services: PostgreSQL is not answering on $PGHOST:$PGPORT, starting it" >&2
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null && break
        sleep 1
    done
    pg_isready -h "$PGHOST" -p "$PGPORT" || { echo "services: PostgreSQL did not start" >&2; exit 1; }
fi
