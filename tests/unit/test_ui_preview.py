"""Artifact previews: Markdown rendered safely, text capped, non-text not previewed."""

from __future__ import annotations

import pytest

from ecl.api.ui.preview import MAX_PREVIEW_BYTES, is_text, markdown, preview, safe_link


def test_raw_html_in_markdown_is_shown_as_text() -> None:
    html = str(markdown("# Title\n\n<script>alert(1)</script>\n\nHi <img src=x onerror=alert(1)> **bold**"))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "![i](data:image/svg+xml;base64,PHN2Zz4=)",
        "[x](file:///etc/passwd)",
        "<javascript:alert(1)>",
    ],
)
def test_links_other_than_http_https_or_relative_are_not_links(source: str) -> None:
    html = str(markdown(source))
    assert "href" not in html and "src=" not in html, html


def test_http_https_and_relative_links_stay_links_without_opener() -> None:
    html = str(markdown("[a](https://example.com/x) [b](http://example.com) [c](../notes.md) [d](#top)"))
    for target in ("https://example.com/x", "http://example.com", "../notes.md", "#top"):
        assert f'href="{target}" rel="nofollow noopener noreferrer"' in html
    assert [safe_link(u) for u in ("https://a", "/x", "mailto:a@b", " javascript:x")] == [True, True, False, False]


def test_markdown_artifacts_render_text_artifacts_stay_text_and_binaries_are_not_previewed() -> None:
    shown = preview("text/markdown", "final.md", b"# Hi <script>x</script>", 23)
    assert shown.kind == "markdown" and shown.html is not None and "<h1>" in shown.html
    assert "<script>" not in str(shown.html) and not shown.truncated
    plain = preview("application/json", "data.json", b'{"a": "<b>"}', 12)
    assert (plain.kind, plain.text, plain.html) == ("text", '{"a": "<b>"}', None)
    assert preview("image/png", "chart.png", b"\x89PNG", 4).kind == "none"
    assert preview("text/plain", "x.txt", None, 10).kind == "none"
    assert is_text("application/octet-stream", "notes.TXT") and not is_text("application/octet-stream", "a.bin")
    assert is_text("text/plain; charset=utf-8", "x") and is_text("application/ld+json", "x")


def test_a_large_text_is_capped_without_a_broken_character() -> None:
    big = ("é" * MAX_PREVIEW_BYTES).encode()  # 2 bytes a character: the cap cuts one in two
    shown = preview("text/plain", "big.txt", big[: MAX_PREVIEW_BYTES + 1], len(big))
    assert shown.truncated and shown.text is not None
    assert len(shown.text) == MAX_PREVIEW_BYTES // 2 and "\ufffd" not in shown.text
    small = preview("text/plain", "s.txt", b"abc", 3)
    assert not small.truncated and small.text == "abc"
