"""The delivery folder: ``index.md``, the slides as self-contained HTML, and the ``.zip``.

Pure functions over text, so the delivery step and ``ecl analyze --out`` produce the same
files. The Markdown-to-HTML conversion covers what the slides use (headings, lists,
paragraphs, code blocks, emphasis, inline code, links) and escapes everything else, so
model output can never inject markup or script into the page.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from collections.abc import Mapping

__all__ = ["index_markdown", "markdown_to_html", "slides_html", "split_slides", "zip_files"]

_FRONT_MATTER = re.compile(r"\A\s*---\s*\n(.*?)\n---\s*\n", re.DOTALL)


def split_slides(marp: str) -> list[str]:
    """The slides of a Marp document (front matter dropped, split on ``---`` lines)."""
    body = _FRONT_MATTER.sub("", marp.strip() + "\n", count=1)
    slides = re.split(r"^\s*---\s*$", body, flags=re.MULTILINE)
    return [s.strip() for s in slides if s.strip()]


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![*\w])\*([^*]+)\*(?!\w)", r"<em>\1</em>", out)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if not url.startswith(("http://", "https://", "#")) and not re.fullmatch(r"[\w./-]+", url):
            return label  # javascript: and friends are dropped
        return f'<a href="{url}">{label}</a>'

    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, out)


def markdown_to_html(markdown: str) -> str:
    """A safe HTML rendering of simple Markdown."""
    lines = markdown.splitlines()
    out: list[str] = []
    paragraph: list[str] = []
    in_list: str | None = None
    i = 0

    def flush_paragraph() -> None:
        if paragraph:
            out.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()

    def close_list() -> None:
        nonlocal in_list
        if in_list:
            out.append(f"</{in_list}>")
            in_list = None

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush_paragraph()
            close_list()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
        elif heading := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush_paragraph()
            close_list()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item := re.match(r"^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$", line):
            flush_paragraph()
            kind = "ol" if item.group(1) else "ul"
            if in_list != kind:
                close_list()
                out.append(f"<{kind}>")
                in_list = kind
            out.append(f"<li>{_inline(item.group(2))}</li>")
        elif not stripped:
            flush_paragraph()
            close_list()
        elif stripped.startswith("<!--") and stripped.endswith("-->"):
            pass  # Marp directives
        else:
            close_list()
            paragraph.append(stripped)
        i += 1
    flush_paragraph()
    close_list()
    return "\n".join(out)


_STYLE = """
body{margin:0;font-family:system-ui,sans-serif;background:#222}
section{box-sizing:border-box;width:960px;min-height:540px;margin:24px auto;padding:48px 64px;
background:#fff;color:#222;border-radius:8px;page-break-after:always}
h1{font-size:2em;margin-top:0}code{background:#f2f2f2;padding:0 .2em}
pre{background:#f2f2f2;padding:12px;overflow:auto}footer{color:#888;font-size:.8em}
"""


def slides_html(marp: str, title: str) -> str:
    """The slides as one HTML page with its own CSS: no script, no external resource."""
    sections = []
    for number, slide in enumerate(split_slides(marp), start=1):
        sections.append(f"<section>\n{markdown_to_html(slide)}\n<footer>{number}</footer>\n</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def index_markdown(title: str, entries: Mapping[str, str], facts: Mapping[str, str]) -> str:
    """``index.md``: the facts of the run and a link to every deliverable (``path: description``)."""
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines += ["", "## Deliverables", ""]
    lines += [f"- [{path}]({path}) — {description}" for path, description in entries.items()]
    return "\n".join(lines) + "\n"


def zip_files(files: Mapping[str, bytes]) -> bytes:
    """A ``.zip`` of ``files`` (path → content) with fixed timestamps, so equal input gives equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[path])
    return buffer.getvalue()
