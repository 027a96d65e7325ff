"""Artifact previews: Markdown rendered safely, other text shown as text, the rest not at all.

:func:`markdown` renders CommonMark with raw HTML turned off (a ``<script>`` in the source is
shown as text) and only ``http``, ``https`` and relative link and image targets (a
``javascript:``, ``data:`` or ``mailto:`` target is left as plain text); links get
``rel="nofollow noopener noreferrer"``. :func:`preview` decides what a page shows of an
artifact from its content type and name and at most :data:`MAX_PREVIEW_BYTES` of its content;
a non-text artifact gets its metadata and a download link only (:attr:`Preview.kind` ``none``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

from ecl.artifacts.local import LocalArtifactStore
from ecl.core.errors import EclError

__all__ = ["MAX_PREVIEW_BYTES", "Preview", "head", "is_text", "markdown", "preview", "safe_link"]

MAX_PREVIEW_BYTES = 64 * 1024
"""At most this much of an artifact is shown on a page (the download has all of it)."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/yaml", "application/x-yaml", "application/toml"}
)
_TEXT_SUFFIXES = (".md", ".markdown", ".txt", ".json", ".yaml", ".yml", ".toml", ".csv", ".log", ".xml", ".py")
_MARKDOWN_SUFFIXES = (".md", ".markdown")


def safe_link(url: str) -> bool:
    """``http``, ``https`` or relative (no scheme); anything else (``javascript:``,
    ``data:``, ``vbscript:``, ``file:``, ``mailto:``) is refused."""
    found = _SCHEME.match(url.strip())
    return found is None or found.group(1).lower() in ("http", "https")


class _SafeMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return safe_link(url)


def _link_open(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


_MD = _SafeMarkdown("commonmark", {"html": False, "linkify": False, "typographer": False})
_MD.add_render_rule("link_open", _link_open)


def markdown(text: str) -> Markup:
    """Markdown as safe HTML (see the module doc)."""
    return Markup(_MD.render(text))  # noqa: S704 - markdown-it escapes all text; raw HTML is off


@dataclass(frozen=True, slots=True)
class Preview:
    """What a page shows of one artifact."""

    kind: Literal["markdown", "text", "none"]
    html: Markup | None = None
    """``markdown``: the rendered Markdown."""
    text: str | None = None
    """``text``: the text (the template escapes it)."""
    truncated: bool = False
    """Only the first :data:`MAX_PREVIEW_BYTES` are shown."""


def is_text(content_type: str, name: str) -> bool:
    """Whether an artifact can be shown as text, by its content type or else its name."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml")):
        return True
    return kind in ("", "application/octet-stream") and name.lower().endswith(_TEXT_SUFFIXES)


def preview(content_type: str, name: str, content: bytes | None, size: int) -> Preview:
    """The preview of an artifact of ``size`` bytes whose first bytes are ``content``
    (``None``: not read — not text, or unreadable)."""
    if content is None or not is_text(content_type, name):
        return Preview(kind="none")
    truncated = size > len(content) or len(content) > MAX_PREVIEW_BYTES
    text = content[:MAX_PREVIEW_BYTES].decode("utf-8", errors="replace")
    if truncated and text.endswith("\ufffd"):
        text = text.rstrip("\ufffd")  # a character cut in two at the limit
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/markdown" or name.lower().endswith(_MARKDOWN_SUFFIXES):
        return Preview(kind="markdown", html=markdown(text), truncated=truncated)
    return Preview(kind="text", text=text, truncated=truncated)


async def head(store: LocalArtifactStore, workflow_id: str, artifact_id: str) -> bytes | None:
    """The first :data:`MAX_PREVIEW_BYTES` of an artifact (its size and sha256 checked by the
    store first), or ``None`` when it cannot be read (missing, corrupted)."""
    chunks = store.open(workflow_id, artifact_id, chunk_size=MAX_PREVIEW_BYTES)
    try:
        async with contextlib.aclosing(chunks):
            return await anext(chunks, b"")
    except EclError:
        return None
