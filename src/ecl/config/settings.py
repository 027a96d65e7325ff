"""ECL settings: typed, layered, validated once at start-up.

Sources, highest priority first:

1. environment variables: ``ECL_SECTION__KEY`` (e.g. ``ECL_LLM__MODEL``) for every key, plus
   the plan's flat names (``ECL_DATABASE_URL``, ``ECL_CLAUDE_API_KEY`` or
   ``ANTHROPIC_API_KEY``, ``ECL_LLM_BASE_URL``, ``ECL_ENGINE``, ``ECL_API_KEY``, ...);
2. the file given with ``--config PATH``;
3. ``$XDG_CONFIG_HOME/ecl/config.toml`` (``~/.config/ecl/config.toml``);
4. ``config/local.toml``, 5. ``config/{ECL_ENV}.toml``, 6. ``config/default.toml``
   (relative to the current directory; each is optional).

An invalid value raises :class:`~ecl.core.ConfigError` naming the key, the value and the
source it came from. Secrets are :class:`~pydantic.SecretStr`: they print as ``**********``;
so does the password of every URL setting wherever settings are shown. In production an
``api.api_key`` shorter than 16 characters, or blank, is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ecl.core.errors import ConfigError
from ecl.core.redaction import REDACTED, redact_text, url_secrets

__all__ = [
    "DEFAULT_MODEL",
    "AnalyzerSettings",
    "ApiSettings",
    "ArtifactSettings",
    "BreakerSettings",
    "BudgetSettings",
    "DatabaseSettings",
    "EmbeddedSettings",
    "LlmSettings",
    "LogSettings",
    "ModelPrice",
    "RestateSettings",
    "RetrySettings",
    "Settings",
    "load_settings",
]

DEFAULT_MODEL = "claude-sonnet-5-5"
"""A current Claude model (not in the installed SDK's deprecated list; a test checks)."""

FLAT_ENV: dict[str, str] = {
    "ECL_ENV": "environment",
    "ECL_LOG_LEVEL": "log.level",
    "ECL_LOG_FORMAT": "log.format",
    "ECL_DATABASE_URL": "database.url",
    "ECL_CLAUDE_API_KEY": "llm.api_key",
    "ECL_LLM_PROVIDER": "llm.provider",
    "ECL_LLM_MODEL": "llm.model",
    "ECL_LLM_BASE_URL": "llm.base_url",
    "ECL_ENGINE": "engine",
    "ECL_RESTATE_URL": "restate.ingress_url",
    "ECL_RESTATE_ADMIN_URL": "restate.admin_url",
    "ECL_ARTIFACT_PATH": "artifacts.path",
    "ECL_API_PORT": "api.port",
    "ECL_API_KEY": "api.api_key",
    "ECL_PROMPTS_PATH": "prompts_path",
    "ECL_DEFINITIONS_PATH": "definitions_path",
    "ECL_MODULES": "modules",
}
"""The plan's (Appendix B) flat variable names and the key each sets."""

_FALLBACK_ENV = {"ANTHROPIC_API_KEY": "llm.api_key"}
"""Read only when the ECL variable for the same key is absent."""


def _data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ecl", appauthor=False))


def default_database_url() -> str:
    """``sqlite:///`` + ``ecl.db`` in the user data folder (``~/.local/share/ecl``)."""
    return f"sqlite:///{_data_dir() / 'ecl.db'}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LogSettings(_Section):
    """Logging."""

    level: Literal["trace", "debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] | None = None
    """``None``: JSON lines in production, readable console output otherwise."""


class ObservabilitySettings(_Section):
    """Tracing (OpenTelemetry) and what LLM calls keep of their content."""

    tracing: bool = False
    """Spans of each workflow run, step attempt and LLM call (:mod:`ecl.observability.tracing`)."""
    otlp_endpoint: str | None = None
    """Base URL of an OTLP/HTTP collector (``http://host:4318``; spans go to ``/v1/traces``);
    unset: ``OTEL_EXPORTER_OTLP_ENDPOINT`` when set, else no exporter."""
    capture_content: bool = False
    """Keep each LLM call's prompt and reply: on its span (GenAI conventions, when tracing) and
    in its ``llm_calls`` row (``ecl logs --content``, ``GET /workflows/{id}/llm-calls``)."""
    max_content_chars: int = Field(default=20_000, ge=100, le=10_000_000)
    """Longest prompt or reply kept (characters); longer ones are cut, saying how much was cut."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an OTLP/HTTP collector's base URL, http://host:4318 or https://…")
        return value or None


class DatabaseSettings(_Section):
    """The SQL database of records and of the embedded engine's journal."""

    url: str = Field(default_factory=default_database_url)
    pool_size: int = Field(default=5, ge=1, le=200)
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL survives any process crash; FULL also survives power loss (slower commits)."""
    journal_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest JSON value one journal entry may hold; larger results belong in artifacts."""


class RetrySettings(_Section):
    """Retries of LLM requests (rate limits, overload, 5xx, timeouts, dropped connections)."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    initial_delay: float = Field(default=1.0, ge=0.0, le=600.0)
    max_delay: float = Field(default=30.0, ge=0.0, le=3600.0)
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)


class ModelPrice(_Section):
    """USD per million tokens of one model (every field required)."""

    input: Decimal = Field(ge=0, allow_inf_nan=False)
    output: Decimal = Field(ge=0, allow_inf_nan=False)
    cache_write: Decimal = Field(ge=0, allow_inf_nan=False)
    """A 5-minute prompt-cache write."""
    cache_read: Decimal = Field(ge=0, allow_inf_nan=False)
    """A prompt-cache hit."""


class BreakerSettings(_Section):
    """The circuit breaker in front of each provider and model."""

    failure_threshold: int = Field(default=5, ge=1, le=1000)
    """Retryable failures within ``window_seconds`` that open the circuit."""
    window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    open_seconds: float = Field(default=30.0, gt=0, le=86_400)
    """How long the circuit stays open before a half-open trial call."""
    max_wait_seconds: float = Field(default=300.0, ge=0, le=86_400)
    """How long one LLM call waits for an open circuit before it fails (retryable)."""


class RateLimitSettings(_Section):
    """Limits toward the provider for one model (``llm.rate_limits.<model>``; ``"*"``: any other)."""

    requests_per_minute: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    tokens_per_minute: float | None = Field(default=None, gt=0, le=1_000_000_000, allow_inf_nan=False)


class LlmSettings(_Section):
    """The LLM provider."""

    provider: str = Field(default="anthropic", min_length=1)
    """A name of the provider registry (``anthropic``, ``openai``, ``mock`` or an installed
    ``ecl.providers`` entry point), checked when the provider is built."""
    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    api_key: SecretStr | None = None
    base_url: str | None = None
    """``None``: the SDK's default (for Anthropic, ``ANTHROPIC_BASE_URL`` if set)."""
    max_tokens: int = Field(default=2048, ge=1, le=128_000)
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    """Prices by model name, over the shipped table (docs/costs.md)."""
    allow_unpriced: bool = False
    """Run models that have no price (their calls cost 0) instead of refusing to start."""
    rate_limits: dict[str, RateLimitSettings] = Field(default_factory=dict)
    """Requests and tokens per minute by model, shared by every workflow of the process
    (docs/costs.md, Rate limits)."""
    fallback: list[str] = Field(default_factory=list)
    """Models tried in order after ``model`` when its circuit is open or its retries are spent
    on a retryable failure (``"claude-haiku-4-5"``, ``"a -> b"``; each needs a price)."""

    @field_validator("fallback", mode="before")
    @classmethod
    def _split_chain(cls, value: Any) -> Any:
        # "a -> b", "a → b" or "a, b" (the environment gives one string).
        if isinstance(value, str):
            parts = value.replace("\u2192", ",").replace("->", ",").split(",")
            return [part.strip() for part in parts if part.strip()]
        return value


class BudgetSettings(_Section):
    """Default spending limits of every workflow (a workflow's input or definition may set its own)."""

    usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    tokens: int | None = Field(default=None, ge=0)
    on_exceeded: Literal["fail", "wait"] = "wait"
    """``fail``: the workflow fails with BudgetExceeded; ``wait``: it waits in state
    ``waiting_for_budget`` on the promise ``budget`` (``ecl signal ID budget --add-usd 2``)."""


class RestateSettings(_Section):
    """A Restate server and ECL's endpoint for it."""

    ingress_url: str = "http://127.0.0.1:8080"
    admin_url: str = "http://127.0.0.1:9070"
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = Field(default=9080, ge=1, le=65535)
    endpoint_url: str | None = None
    """The endpoint's URI as Restate reaches it; ``None``: ``http://{endpoint_host}:{endpoint_port}``."""
    server_bin: str | None = None
    """``None``: ``.tools/restate/node_modules/.bin/restate-server``, then the PATH."""
    data_dir: str = ".restate"


class ArtifactSettings(_Section):
    """Artifact storage."""

    path: str = Field(default_factory=lambda: str(_data_dir() / "artifacts"))
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=1)


class ApiSettings(_Section):
    """The HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """Largest request body; a larger one is refused (413) before it is read whole."""
    max_json_depth: int = Field(default=32, ge=2, le=200)
    """Deepest nesting of objects and arrays in a JSON body (the body itself is level 1)."""
    max_string_chars: int = Field(default=256 * 1024, ge=64)
    """Longest string or object key in a JSON body."""


class EmbeddedSettings(_Section):
    """The embedded engine's leases and process tuning."""

    lease_seconds: float = Field(default=15.0, gt=0.5, le=3600)
    heartbeat_seconds: float = Field(default=3.0, gt=0.05, le=600)
    gc_threshold: int = Field(default=200_000, ge=0, le=10_000_000)
    """The garbage collector's first threshold is raised to at least this (0: leave it)."""
    max_start_delay_seconds: float = Field(default=1.0, ge=0, le=60)
    """``ecl server start``: a submitted workflow starts once no request is in hand, or after
    this long at the latest (0: at once), so a burst of submissions is answered first."""


class AnalyzerSettings(_Section):
    """The codebase-migration analyzer: intake limits, chunking, fan-out, assessment."""

    max_files: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most files kept from one codebase (after ignores and skips)."""
    max_file_bytes: int = Field(default=1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    """Largest single source file kept."""
    max_total_bytes: int = Field(default=100 * 1024 * 1024, ge=1, le=64 * 1024 * 1024 * 1024)
    """Largest total size of the kept files."""
    chunk_tokens: int = Field(default=24_000, ge=200, le=1_000_000)
    """Token budget of one analysis chunk (estimated at 4 characters a token)."""
    concurrency: int = Field(default=4, ge=1, le=256)
    """Chunks summarised at the same time."""
    adherence_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    """Below this plan-adherence score the assessment sends the specs back for one revision round."""
    allowed_roots: list[str] = Field(default_factory=list)
    """Folders under which the HTTP API accepts server-side paths (empty: none)."""

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        # From the environment the list arrives as one string: comma-separated folders.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Settings(BaseSettings):
    """Every ECL setting. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    environment: Literal["development", "production", "test"] = "development"
    log: LogSettings = Field(default_factory=LogSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    engine: Literal["embedded", "restate"] = "embedded"
    restate: RestateSettings = Field(default_factory=RestateSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    analyzer: AnalyzerSettings = Field(default_factory=AnalyzerSettings)
    prompts_path: str | None = None
    definitions_path: str | None = None
    modules: list[str] = Field(default_factory=list)
    """Python modules whose workflows, steps and prompts every entry point offers
    (``ECL_MODULES=a,b``; ``--module/-m`` adds to it)."""

    @field_validator("modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        # The environment gives one comma-separated string.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what :func:`load_settings` merged (it reads the environment itself, so that
        every value's source is known for error messages)."""
        return (init_settings,)

    @property
    def log_format(self) -> Literal["console", "json"]:
        """The effective log format."""
        if self.log.format is not None:
            return self.log.format
        return "json" if self.environment == "production" else "console"

    def redacted_dict(self) -> dict[str, Any]:
        """All settings as JSON-compatible data, secrets shown as ``**********``: the keys,
        and the password of every URL setting (``database.url`` and the others)."""
        tree: dict[str, Any] = _redact_tree(self.model_dump(mode="json"))
        return tree

    def secrets(self) -> list[str]:
        """The secret values, for log redaction: the keys and every URL's credentials."""
        found = []
        for secret in (self.llm.api_key, self.api.api_key):
            if secret is not None and secret.get_secret_value():
                found.append(secret.get_secret_value())
        for value in _flatten(self.model_dump(mode="json")).values():
            if isinstance(value, str):
                found.extend(url_secrets(value))
        return found


MIN_PRODUCTION_API_KEY = 16
"""Shortest ``api.api_key`` accepted when ``environment = production``."""


def _redact_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


# ---------------------------------------------------------------- loading


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


MAX_CONFIG_BYTES = 1024 * 1024
"""Largest configuration file read (a config file is a few hundred bytes)."""


def _read_toml(path: Path, source: str) -> dict[str, Any]:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{source}: {problem}", key="", value=None, source=source)

    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise bad(f"cannot read the file: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise bad(f"larger than {MAX_CONFIG_BYTES} bytes; not a configuration file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 text (byte {exc.start}): is it a TOML file?") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise bad(f"invalid TOML: {exc}") from exc
    except RecursionError:
        # tomllib recurses once per nesting level; no configuration nests this deep.
        raise bad("invalid TOML: nested too deeply") from None


def _env_layer(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """``{dotted key: (value, "env VAR")}`` from the environment."""
    found: dict[str, tuple[Any, str]] = {}
    for var, value in environ.items():
        if var.startswith("ECL_") and "__" in var:
            dotted = var[4:].lower().replace("__", ".")
            found[dotted] = (value, f"env {var}")
    for var, dotted in FLAT_ENV.items():
        if var in environ:
            found[dotted] = (environ[var], f"env {var}")
    for var, dotted in _FALLBACK_ENV.items():
        if var in environ and dotted not in found:
            found[dotted] = (environ[var], f"env {var}")
    return found


def load_settings(
    config_path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
) -> Settings:
    """Merge every source and validate; raises :class:`ConfigError` on a bad value."""
    env = os.environ if environ is None else environ
    base = cwd or Path.cwd()
    layers: list[tuple[str, dict[str, Any]]] = []
    env_name = env.get("ECL_ENV", "development")
    for name in ("default.toml", f"{env_name}.toml", "local.toml"):
        path = base / "config" / name
        if path.is_file():
            layers.append((f"config/{name}", _read_toml(path, f"config/{name}")))
    xdg = Path(platformdirs.user_config_dir("ecl", appauthor=False)) / "config.toml"
    if xdg.is_file():
        layers.append((str(xdg), _read_toml(xdg, str(xdg))))
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file", key="--config", value=str(path), source="--config")
        layers.append((f"--config {path}", _read_toml(path, f"--config {path}")))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, data in layers:
        for dotted, value in _flatten(data).items():
            _set(merged, dotted, value)
            sources[dotted] = source
    for dotted, (value, source) in _env_layer(env).items():
        _set(merged, dotted, value)
        sources[dotted] = source

    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise _config_error(exc, merged, sources) from None
    _check_production(settings, sources)
    object.__setattr__(settings, "_sources", sources)
    return settings


def _check_production(settings: Settings, sources: dict[str, str]) -> None:
    """A guessable API key is refused where it guards real data."""
    key = settings.api.api_key
    if settings.environment != "production" or key is None:
        return
    value = key.get_secret_value()
    if len(value) >= MIN_PRODUCTION_API_KEY and value.strip():
        return
    source = sources.get("api.api_key", "defaults")
    problem = f"has {len(value)} characters" if value.strip() else "is blank"
    raise ConfigError(
        f"api.api_key = {REDACTED!r} (from {source}): {problem}; in production it must be at least "
        f"{MIN_PRODUCTION_API_KEY} characters and not blank (e.g. `openssl rand -hex 32`)",
        key="api.api_key",
        value=REDACTED,
        source=source,
    )


def sources_of(settings: Settings) -> dict[str, str]:
    """Where each explicitly set key came from (unlisted keys are defaults)."""
    found: dict[str, str] = getattr(settings, "_sources", {})
    return dict(found)


def _config_error(exc: ValidationError, merged: dict[str, Any], sources: dict[str, str]) -> ConfigError:
    problems = []
    first_key, first_value, first_source = "", None, ""
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        source = sources.get(key, "defaults")
        value = error.get("input")
        if isinstance(value, dict | list):
            value = None
        if "api_key" in key:
            value = REDACTED
        elif isinstance(value, str):
            value = redact_text(value)
        if error["type"] == "extra_forbidden":
            text = f"{key}: unknown setting (from {source})"
        else:
            text = f"{key} = {value!r} (from {source}): {error['msg']}"
        problems.append(text)
        if not first_key:
            first_key, first_value, first_source = key, value, source
    return ConfigError(
        "invalid configuration: " + "; ".join(problems),
        key=first_key,
        value=first_value,
        source=first_source,
    )
