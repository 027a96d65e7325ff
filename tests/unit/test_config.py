"""Configuration sources, precedence, errors and secret handling."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path

import pytest
import structlog
from anthropic._data import DEPRECATED_MODELS

from ecl.cli.runtime import tune_gc
from ecl.config import DEFAULT_MODEL, FLAT_ENV, load_settings, sources_of
from ecl.core import ConfigError
from ecl.observability import bind_step, bind_workflow, configure_logging


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "config").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_need_no_file(cwd: Path) -> None:
    settings = load_settings(environ={})
    assert settings.engine == "embedded"
    assert settings.llm.model == DEFAULT_MODEL
    assert settings.database.url.startswith("sqlite:///")
    assert settings.api.port == 3000


def test_default_model_is_current() -> None:
    import typing

    from anthropic.types import model_param

    assert DEFAULT_MODEL not in DEPRECATED_MODELS
    assert DEFAULT_MODEL in typing.get_args(typing.get_args(model_param.ModelParam)[0])


def test_precedence_of_every_source(cwd: Path) -> None:
    write(cwd / "config/default.toml", '[llm]\nmax_tokens = 1\nmodel = "m-default"\n[api]\nport = 1001')
    write(cwd / "config/production.toml", "[llm]\nmax_tokens = 2\n[api]\nport = 1002")
    write(cwd / "config/local.toml", "[llm]\nmax_tokens = 3")
    write(cwd / "xdg/ecl/config.toml", "[llm]\nmax_tokens = 4")
    explicit = write(cwd / "explicit.toml", "[llm]\nmax_tokens = 5")
    env = {"ECL_ENV": "production"}
    assert load_settings(explicit, environ=env).llm.max_tokens == 5
    settings = load_settings(explicit, environ={**env, "ECL_LLM__MAX_TOKENS": "6"})
    assert settings.llm.max_tokens == 6
    assert settings.llm.model == "m-default"
    assert settings.api.port == 1002  # production.toml over default.toml
    sources = sources_of(settings)
    assert sources["llm.max_tokens"] == "env ECL_LLM__MAX_TOKENS"
    assert sources["api.port"] == "config/production.toml"
    assert load_settings(environ=env).llm.max_tokens == 4  # XDG over local.toml
    (cwd / "xdg/ecl/config.toml").unlink()
    assert load_settings(environ=env).llm.max_tokens == 3


def test_flat_environment_names(cwd: Path) -> None:
    env = {
        "ECL_DATABASE_URL": "postgresql://u@h:5432/db",
        "ECL_CLAUDE_API_KEY": "sk-one",
        "ECL_LLM_BASE_URL": "http://127.0.0.1:1",
        "ECL_ENGINE": "restate",
        "ECL_API_KEY": "api-secret",
        "ECL_API_PORT": "4000",
        "ECL_ARTIFACT_PATH": "/tmp/a",
        "ECL_RESTATE_URL": "http://r:8080",
        "ECL_LOG_LEVEL": "debug",
    }
    s = load_settings(environ=env)
    assert s.database.url == "postgresql://u@h:5432/db"
    assert s.llm.api_key is not None
    assert s.llm.api_key.get_secret_value() == "sk-one"
    assert (s.llm.base_url, s.engine, s.api.port) == ("http://127.0.0.1:1", "restate", 4000)
    assert s.artifacts.path == "/tmp/a"
    assert s.restate.ingress_url == "http://r:8080"
    assert s.log.level == "debug"
    assert set(env) <= set(FLAT_ENV)


def test_anthropic_api_key_is_a_fallback(cwd: Path) -> None:
    assert load_settings(environ={"ANTHROPIC_API_KEY": "sk-a"}).llm.api_key.get_secret_value() == "sk-a"  # type: ignore[union-attr]
    both = load_settings(environ={"ANTHROPIC_API_KEY": "sk-a", "ECL_CLAUDE_API_KEY": "sk-e"})
    assert both.llm.api_key.get_secret_value() == "sk-e"  # type: ignore[union-attr]


def test_bad_value_names_key_value_and_source(cwd: Path) -> None:
    write(cwd / "config/local.toml", '[llm]\nmax_tokens = "lots"')
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    err = info.value
    assert (err.key, err.value, err.source) == ("llm.max_tokens", "lots", "config/local.toml")
    assert "llm.max_tokens = 'lots' (from config/local.toml)" in str(err)
    with pytest.raises(ConfigError, match="env ECL_API_PORT"):
        load_settings(environ={"ECL_API_PORT": "99999"})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(environ={"ECL_LLM__COLOUR": "blue"})
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(cwd / "missing.toml", environ={})
    write(cwd / "broken.toml", "[llm\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(cwd / "broken.toml", environ={})


def test_secrets_never_print(cwd: Path) -> None:
    s = load_settings(environ={"ECL_CLAUDE_API_KEY": "sk-very-secret", "ECL_API_KEY": "api-very-secret"})
    dumped = json.dumps(s.redacted_dict()) + repr(s) + str(s)
    assert "very-secret" not in dumped
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"ECL_CLAUDE_API_KEY": "sk-very-secret", "ECL_LLM__MAX_TOKENS": "x"})
    assert "very-secret" not in str(info.value)


def test_logging_console_json_context_and_redaction(cwd: Path) -> None:
    s = load_settings(environ={"ECL_CLAUDE_API_KEY": "sk-leaky-key-123"})
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, secrets=s.secrets())
    log = structlog.get_logger("t")
    with bind_workflow("wf-1"), bind_step("critique"):
        log.info("calling the model", header=f"Bearer {s.llm.api_key.get_secret_value()}")  # type: ignore[union-attr]
        log.info("oops", api_key="sk-leaky-key-123", settings=s.model_dump())
    log.debug("hidden")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    assert all(line["workflow_id"] == "wf-1" and line["step_id"] == "critique" for line in lines)
    assert "sk-leaky-key-123" not in stream.getvalue()
    console = io.StringIO()
    configure_logging("debug", "console", stream=console)
    structlog.get_logger("t").debug("readable", x=1)
    assert "readable" in console.getvalue()
    assert not console.getvalue().startswith("{")


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env_name", ["development", "test", "production"])
def test_shipped_config_files_load(env_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    settings = load_settings(environ={"ECL_ENV": env_name}, cwd=REPO)
    assert settings.environment == env_name
    assert settings.llm.model == DEFAULT_MODEL
    assert sources_of(settings)["llm.model"] == "config/default.toml"
    assert settings.log_format == ("json" if env_name == "production" else "console")
    if env_name == "development":  # commands stay quiet beside their progress display unless asked
        assert "log.level" not in sources_of(settings)


def test_env_example_lists_every_variable() -> None:
    listed = {line.split("=", 1)[0] for line in (REPO / ".env.example").read_text().splitlines() if "=" in line}
    listed = {name for name in listed if not name.startswith("#")}
    assert set(FLAT_ENV) | {"ANTHROPIC_API_KEY"} <= listed
    assert listed <= set(FLAT_ENV) | {"ANTHROPIC_API_KEY"}


def test_tune_gc_raises_the_first_two_thresholds_and_zero_leaves_them() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc(0)
        assert gc.get_threshold() == (700, 10, 10)
        tune_gc(50_000)
        assert gc.get_threshold() == (50_000, 50, 10)
    finally:
        gc.set_threshold(*before)
