"""Database outages: the classification, the backoff, the retry helper and the API mapping."""

from __future__ import annotations

import errno
from itertools import islice

import asyncpg
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from ecl.api.errors import install_error_handlers
from ecl.core.errors import DatabaseError
from ecl.store.outage import Backoff, OutageLog, ride_out, unreachable
from ecl.testing import capture_logs


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        _wrapped(psycopg.OperationalError("connection failed: Connection refused")),
        _wrapped(Exception("anything"), invalidated=True),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_failures_are_unreachable(error: BaseException) -> None:
    assert unreachable(error)


def test_a_chained_cause_counts() -> None:
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        except OSError as inner:
            raise RuntimeError("saving the artifact failed") from inner
    except RuntimeError as outer:
        assert unreachable(outer)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
        DataError("INSERT", {}, psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence")),
        OSError(errno.ENOENT, "No such file or directory"),
        ValueError("bad"),
        asyncpg.UniqueViolationError("duplicate key"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_problems_with_the_statement_or_data_are_not(error: BaseException) -> None:
    assert not unreachable(error)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(islice(Backoff(first=0.05, cap=0.3).delays(), 6)) == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3]


def test_outage_log_warns_once_when_it_begins_and_once_when_it_ends() -> None:
    log = OutageLog()
    with capture_logs() as events:
        log.recovered()  # nothing to report while reachable
        for _ in range(50):
            log.failed(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
        assert log.down and log.failures == 50
        log.recovered()
        log.recovered()
    assert not log.down and log.outages == 1
    assert [(e["log_level"], e["event"]) for e in events] == [
        ("warning", "database unreachable; waiting for it and retrying"),
        ("warning", "database reachable again"),
    ]
    assert events[1]["failed_attempts"] == 50


async def test_ride_out_retries_while_unreachable_and_returns_the_result() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        return "saved"

    assert await ride_out(flaky, backoff=Backoff(first=0.001, cap=0.004)) == "saved"
    assert attempts == 4


async def test_ride_out_lets_other_errors_through_at_once() -> None:
    attempts = 0

    async def wrong() -> None:
        nonlocal attempts
        attempts += 1
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        await ride_out(wrong, backoff=Backoff(first=0.001))
    assert attempts == 1


def _app(error: BaseException) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        _wrapped(psycopg.OperationalError("connection failed: Connection refused")),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        DatabaseError("the database is unreachable; try again later"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_the_api_answers_503_database_error_when_the_database_is_away(error: BaseException) -> None:
    with _app(error) as client:
        reply = client.get("/boom")
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "DATABASE_ERROR"


def test_the_api_answers_400_for_a_value_the_database_refuses() -> None:
    error = DataError("INSERT", {}, psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence"))
    with _app(error) as client:
        reply = client.get("/boom")
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "VALIDATION_ERROR"


def test_another_os_error_stays_an_internal_error() -> None:
    with _app(OSError(errno.ENOENT, "No such file or directory")) as client:
        reply = client.get("/boom")
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "INTERNAL_ERROR"
