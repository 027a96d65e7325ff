"""What an LLM call keeps of its content: nothing, unless ``observability.capture_content``.

On (:func:`configure_content`), each call's prompt and reply are kept — on its span (the
GenAI semantic conventions' ``gen_ai.input.messages`` / ``gen_ai.output.messages``) and in its
``llm_calls`` row (``prompt``, ``reply``) — after :func:`kept` has replaced the configured
secrets (the API keys; every URL password: :mod:`ecl.core.redaction`) and cut the text to
``observability.max_content_chars``. Off (the default), nothing of the content is stored.
"""

from __future__ import annotations

from collections.abc import Iterable

from ecl.core.redaction import REDACTED, redact_text

__all__ = ["DEFAULT_MAX_CHARS", "configure_content", "content_enabled", "kept"]

DEFAULT_MAX_CHARS = 20_000

_enabled = False
_max_chars = DEFAULT_MAX_CHARS
_secrets: tuple[str, ...] = ()


def configure_content(enabled: bool, max_chars: int = DEFAULT_MAX_CHARS, secrets: Iterable[str] = ()) -> None:
    """Keep LLM prompts and replies (``enabled``), each cut to ``max_chars``, ``secrets`` hidden."""
    global _enabled, _max_chars, _secrets
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    _enabled, _max_chars = enabled, max_chars
    # Longest first: a secret containing another is replaced whole.
    _secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))


def content_enabled() -> bool:
    """Whether prompts and replies are kept."""
    return _enabled


def kept(text: str) -> str:
    """``text`` as it may be kept: secrets replaced by ``**********``, then cut to the cap
    (the cut says how many characters were left out)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = redact_text(text)
    if len(text) <= _max_chars:
        return text
    left_out = len(text) - _max_chars
    return f"{text[:_max_chars]}… [{left_out} more characters not kept]"
