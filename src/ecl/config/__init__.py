"""ECL configuration: layered TOML files and environment, validated at start-up."""

from ecl.config.settings import (
    DEFAULT_MODEL,
    FLAT_ENV,
    AnalyzerSettings,
    ApiSettings,
    ArtifactSettings,
    DatabaseSettings,
    EmbeddedSettings,
    LlmSettings,
    LogSettings,
    RestateSettings,
    RetrySettings,
    Settings,
    default_database_url,
    load_settings,
    sources_of,
)

__all__ = [
    "DEFAULT_MODEL",
    "FLAT_ENV",
    "AnalyzerSettings",
    "ApiSettings",
    "ArtifactSettings",
    "DatabaseSettings",
    "EmbeddedSettings",
    "LlmSettings",
    "LogSettings",
    "RestateSettings",
    "RetrySettings",
    "Settings",
    "default_database_url",
    "load_settings",
    "sources_of",
]
