"""Which paths of a codebase intake leaves out: ``.gitignore`` rules and fixed skip lists.

The ``.gitignore`` support covers what real repositories use: comments, blank lines,
negation (``!``), directory-only patterns (trailing ``/``), anchored patterns (a ``/``
anywhere but the end), ``*``, ``?``, ``[...]`` and ``**``. Rules of a deeper
``.gitignore`` come after (and so override) those of its parents; the last matching
rule wins. As in git, a file inside an ignored folder cannot be re-included, because
intake never descends into an ignored folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = [
    "SKIPPED_DIRS",
    "IgnoreRule",
    "IgnoreRules",
    "parse_gitignore",
    "skip_reason",
]

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "bower_components",
        "jspm_packages",
        "target",
        "dist",
        "build",
        "out",
        "vendor",
        "third_party",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".next",
        ".nuxt",
        ".cache",
        "coverage",
        ".gradle",
        ".idea",
    }
)
"""Vendored, generated and tool folders: never part of the code under analysis."""

_LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "cargo.lock",
        "poetry.lock",
        "uv.lock",
        "pipfile.lock",
        "gemfile.lock",
        "composer.lock",
        "go.sum",
        "flake.lock",
        "mix.lock",
        "pubspec.lock",
        "packages.lock.json",
    }
)

_SECRET_NAMES = frozenset(
    {".env", ".netrc", ".npmrc", ".pypirc", ".pgpass", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "credentials"}
)
_SECRET_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".kdbx", ".asc", ".gpg", ".ppk")

_BINARY_SUFFIXES = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".webp", ".tif", ".tiff", ".psd",
        ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx",
        ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".zst",
        ".jar", ".war", ".class", ".pyc", ".pyo", ".o", ".a", ".so", ".dylib", ".dll", ".exe", ".bin",
        ".wasm", ".woff", ".woff2", ".ttf", ".otf", ".eot",
        ".mp3", ".mp4", ".wav", ".ogg", ".flac", ".mov", ".avi", ".mkv", ".webm",
        ".sqlite", ".db", ".dat", ".iso", ".dmg",
    }
)  # fmt: skip
_GENERATED_SUFFIXES = (".min.js", ".min.css", ".map", ".lock")


def skip_reason(name: str, *, is_dir: bool) -> str | None:
    """Why a file or folder named ``name`` is left out whatever ``.gitignore`` says, or ``None``.

    Reasons: ``vendored`` (tool and dependency folders), ``secret`` (``.env`` files and
    keys: never read), ``lockfile``, ``generated`` and ``binary`` (by extension; content
    with NUL bytes or invalid UTF-8 is caught when read).
    """
    lower = name.lower()
    if is_dir:
        return "vendored" if lower in SKIPPED_DIRS else None
    if lower in _SECRET_NAMES or lower.startswith(".env.") or lower.endswith(_SECRET_SUFFIXES):
        return "secret"
    if lower.startswith("id_") and lower.split(".")[0] in _SECRET_NAMES:
        return "secret"
    if lower in _LOCK_FILES:
        return "lockfile"
    if lower.endswith(_GENERATED_SUFFIXES):
        return "generated"
    if PurePosixPath(lower).suffix in _BINARY_SUFFIXES:
        return "binary"
    return None


@dataclass(frozen=True)
class IgnoreRule:
    """One ``.gitignore`` line, compiled; ``base`` is the folder of its ``.gitignore``."""

    pattern: str
    base: str
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool

    def matches(self, path: str, *, is_dir: bool) -> bool:
        """Whether the rule applies to ``path`` (relative to the codebase root, ``/``-separated)."""
        if self.dir_only and not is_dir:
            return False
        if self.base:
            prefix = self.base + "/"
            if not path.startswith(prefix):
                return False
            path = path[len(prefix) :]
        return self.regex.fullmatch(path) is not None


def _translate(glob: str) -> str:
    """A gitignore glob (already stripped of ``!``, leading and trailing ``/``) as a regex."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                at_start = i == 0 or glob[i - 1] == "/"
                after = i + 2
                if at_start and after < n and glob[after] == "/":
                    out.append("(?:.*/)?")  # "**/": any number of folders, including none
                    i = after + 1
                    continue
                if at_start and after == n:
                    out.append(".*")  # trailing "/**": everything inside
                    i = after
                    continue
                out.append("[^/]*")
                i = after
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[^", i) else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_gitignore(text: str, base: str = "") -> list[IgnoreRule]:
    """The rules of one ``.gitignore`` whose folder is ``base`` (``""`` for the root)."""
    rules: list[IgnoreRule] = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.endswith("\\ "):
            line = line.rstrip(" ")
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated or line.startswith("\\!") or line.startswith("\\#"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        regex = _translate(line)
        if not anchored:
            regex = "(?:.*/)?" + regex  # a bare name matches at any depth below the base
        try:
            compiled = re.compile(regex, re.DOTALL)
        except re.error:
            continue  # git ignores patterns it cannot parse; so do we
        rules.append(IgnoreRule(raw.strip(), base, compiled, negated, dir_only))
    return rules


class IgnoreRules:
    """The ``.gitignore`` rules in force at one point of a walk (parents' rules first)."""

    def __init__(self, rules: list[IgnoreRule] | None = None) -> None:
        self.rules: list[IgnoreRule] = list(rules or [])

    def extended(self, more: list[IgnoreRule]) -> IgnoreRules:
        """These rules followed by ``more`` (a subfolder's ``.gitignore``)."""
        return IgnoreRules(self.rules + more) if more else self

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether ``path`` is ignored: the last rule that matches decides."""
        decision = False
        for rule in self.rules:
            if rule.matches(path, is_dir=is_dir):
                decision = not rule.negated
        return decision
