"""Database fixtures: SQLite (file, memory) and a fresh real PostgreSQL database per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_HOST = os.environ.get("ECL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("ECL_TEST_PG_PORT", "5432")
PG_USER = os.environ.get("ECL_TEST_PG_USER", "postgres")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test session; dropped at the end."""
    name = f"ecl_test_{uuid.uuid4().hex[:10]}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_pg(pg_url: str) -> str:
    """Reset the session database to empty (drops every table)."""
    dsn = pg_url.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return pg_url


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgres"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file, in-memory SQLite and real PostgreSQL."""
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'ecl.db'}"
    if request.param == "sqlite-memory":
        return "sqlite://"
    return fresh_pg(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite-file", "postgres"])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database other connections can reach too: a SQLite file or real PostgreSQL."""
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'ecl.db'}"
    return fresh_pg(request.getfixturevalue("pg_url"))
