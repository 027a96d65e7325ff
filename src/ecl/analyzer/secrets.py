"""Redaction of secrets found inside source text before any of it reaches an LLM.

Two detectors: well-known credential shapes (cloud keys, provider tokens, private key
blocks, URLs with a password) and any other long token whose character entropy is that
of random data (base64 or hex). Each finding becomes ``[REDACTED:<kind>]``; the text
keeps its lines, so line numbers cited by the model stay right.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Redaction", "redact", "shannon_entropy"]

_PATTERNS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    # (kind, literals one of which must occur for the pattern to be tried, pattern): the
    # literal test is a fast substring search, so clean files pay for one regex scan only.
    (
        "private-key",
        ("PRIVATE KEY-----",),
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    ),
    ("aws-key", ("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("anthropic-key", ("sk-ant-",), re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}")),
    ("openai-key", ("sk-",), re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}")),
    (
        "github-token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    ),
    ("slack-token", ("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    ("google-key", ("AIza",), re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("stripe-key", ("_live_", "_test_"), re.compile(r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("jwt", ("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("url-password", ("://",), re.compile(r"(?<=://)[^\s:/@'\"]+:[^\s@/'\"]{3,}(?=@)")),
)

_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{20,}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_MIN_LENGTH = 20
_BASE64_ENTROPY = 4.3
"""Bits per character above which a base64-like token reads as random (English words
and identifiers stay well below 4; random base64 of this length scores 4.5 and more)."""
_HEX_ENTROPY = 3.0


@dataclass(frozen=True)
class Redaction:
    """One redacted finding: its kind and the line it was on (1-based)."""

    kind: str
    line: int


def shannon_entropy(text: str) -> float:
    """Bits of entropy per character of ``text``."""
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_random(token: str) -> bool:
    if len(token) < _MIN_LENGTH:
        return False
    # Identifiers such as some_long_function_name or CamelCaseNames are not secrets:
    # random tokens mix digits with letters.
    if not any(ch.isdigit() for ch in token) or not any(ch.isalpha() for ch in token):
        return False
    if "/" in token and token.count("/") >= 2 and not token.endswith("="):
        return False  # a path, e.g. src/server/commands
    if _HEX.fullmatch(token):
        # A hex digest of ≥ 32 characters (a commit id, a checksum, a key) carries no code
        # meaning for the analysis either.
        return len(token) >= 32 and shannon_entropy(token) >= _HEX_ENTROPY
    return shannon_entropy(token) >= _BASE64_ENTROPY


def redact(text: str) -> tuple[str, list[Redaction]]:
    """``text`` with every secret replaced by ``[REDACTED:<kind>]``, and what was replaced."""
    found: list[Redaction] = []

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    spans: list[tuple[int, int, str]] = []
    for kind, literals, pattern in _PATTERNS:
        if not any(literal in text for literal in literals):
            continue
        for match in pattern.finditer(text):
            spans.append((match.start(), match.end(), kind))
    for match in _TOKEN.finditer(text):
        if _looks_random(match.group()):
            spans.append((match.start(), match.end(), "high-entropy"))
    if not spans:
        return text, found
    spans.sort(key=lambda s: (s[0], -(s[1] - s[0])))
    out: list[str] = []
    cursor = 0
    for start, end, kind in spans:
        if start < cursor:
            continue  # inside a span already redacted
        out.append(text[cursor:start])
        secret = text[start:end]
        # Keep the line structure of multi-line secrets (private key blocks).
        out.append(f"[REDACTED:{kind}]" + "\n" * secret.count("\n"))
        found.append(Redaction(kind, line_of(start)))
        cursor = end
    out.append(text[cursor:])
    return "".join(out), found
