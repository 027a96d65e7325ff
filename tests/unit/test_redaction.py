"""URL credentials are hidden in settings, log lines (structlog and stdlib) and error text."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog

from ecl.config import load_settings
from ecl.core.errors import ConfigError
from ecl.core.redaction import redact_text, url_secrets
from ecl.observability import configure_logging

SECRET = "Zq81-hunter2"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"postgresql://ecl:{SECRET}@db:5432/ecl", "postgresql://ecl:**********@db:5432/ecl"),
        (f"postgresql://ecl:p@{SECRET}@db/ecl", "postgresql://ecl:**********@db/ecl"),  # "@" in a password
        (
            f"failed: http://a:{SECRET}@h/x and http://b:{SECRET}@k",
            "failed: http://a:**********@h/x and http://b:**********@k",
        ),
        (f"http://h/v1?x=1&api_key={SECRET}&y=2", "http://h/v1?x=1&api_key=**********&y=2"),
        ("http://127.0.0.1:8080/path", "http://127.0.0.1:8080/path"),  # a port is not a password
        ("postgresql://ecl@db/ecl", "postgresql://ecl@db/ecl"),
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
    ],
)
def test_redact_text(text: str, shown: str) -> None:
    assert redact_text(text) == shown
    assert (SECRET in " ".join(url_secrets(text))) == (SECRET in text)


def test_settings_show_and_log_no_url_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://ecl:{SECRET}@db:5432/ecl"
    settings = load_settings(environ={"ECL_DATABASE_URL": url, "ECL_RESTATE_ADMIN_URL": f"http://u:{SECRET}@r:9070"})
    assert SECRET not in json.dumps(settings.redacted_dict())
    assert settings.redacted_dict()["database"]["url"] == "postgresql://ecl:**********@db:5432/ecl"
    assert SECRET in settings.secrets()

    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, secrets=settings.secrets())
    structlog.get_logger("t").info("connecting", target=settings.database.url.replace("postgresql", "pg"))
    structlog.get_logger("t").info(f"retrying {url}")
    logging.getLogger("sqlalchemy.pool").warning("lost %s", url)  # a library logging through stdlib
    logged = stream.getvalue()
    assert logged.count("**********") >= 3, logged
    assert SECRET not in logged

    with pytest.raises(ConfigError) as info:
        load_settings(environ={"ECL_DATABASE_URL": url, "ECL_LLM__MAX_TOKENS": "many"})
    assert SECRET not in str(info.value)


def test_production_api_key_strength(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for weak in ("fifteen-chars15", "\t" * 20, ""):
        with pytest.raises(ConfigError, match="at least 16 characters") as info:
            load_settings(environ={"ECL_ENV": "production", "ECL_API_KEY": weak})
        assert info.value.key == "api.api_key"
        assert not weak.strip() or weak not in str(info.value)
    assert load_settings(environ={"ECL_ENV": "production", "ECL_API_KEY": "sixteen-chars-16"}).api.api_key
    assert load_settings(environ={"ECL_ENV": "development", "ECL_API_KEY": "short"}).api.api_key
