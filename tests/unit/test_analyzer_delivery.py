"""The delivery folder's pure parts (slides HTML, index, zip) and the mock's structured answers."""

from __future__ import annotations

import io
import json
import zipfile

from ecl.analyzer.delivery import index_markdown, markdown_to_html, slides_html, split_slides, zip_files
from ecl.analyzer.models import Adherence, ProjectPlan
from ecl.llm import CompletionRequest
from ecl.llm.mock import instance_of, scripted_workflow_responder

DECK = "---\nmarp: true\ntheme: default\n---\n\n# One\n\n- a\n- b\n\n---\n\n# Two\n\n1. x\n2. y\n"


def test_slides_split_on_rules_without_the_front_matter() -> None:
    assert split_slides(DECK) == ["# One\n\n- a\n- b", "# Two\n\n1. x\n2. y"]
    assert split_slides("# Only\n") == ["# Only"]


def test_slides_html_is_self_contained_and_escapes_model_text() -> None:
    page = slides_html(DECK + "\n---\n\n# <script>alert(1)</script>\n\n[x](javascript:alert(1)) `a<b`\n", "T & U")
    assert page.count("<section>") == 3
    assert "<title>T &amp; U</title>" in page
    assert "<script" not in page
    assert "javascript:" not in page
    assert "<code>a&lt;b</code>" in page
    assert "http" not in page  # no external resource


def test_markdown_subset() -> None:
    html = markdown_to_html("## Title\n\nsome **bold** and *it*\n\n```\n<x>\n```\n- [link](plan.md)")
    assert "<h2>Title</h2>" in html
    assert "<p>some <strong>bold</strong> and <em>it</em></p>" in html
    assert "<pre><code>&lt;x&gt;</code></pre>" in html
    assert '<ul>\n<li><a href="plan.md">link</a></li>\n</ul>' in html


def test_index_links_every_deliverable() -> None:
    text = index_markdown("Analysis", {"plan.md": "Project plan", "specs/phase-1.md": "Phase 1"}, {"target": "rust"})
    assert "- **target**: rust" in text
    assert "- [specs/phase-1.md](specs/phase-1.md) — Phase 1" in text


def test_zip_is_deterministic_and_complete() -> None:
    files = {"b.md": b"2", "a/c.md": b"3"}
    first, second = zip_files(files), zip_files(dict(reversed(files.items())))
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        assert zf.namelist() == ["a/c.md", "b.md"]
        assert zf.read("b.md") == b"2"


def test_the_mock_answers_structured_prompts_with_valid_instances() -> None:
    for model in (ProjectPlan, Adherence):
        prompt = f"Do it.\n\nAnswer with JSON only, matching this JSON schema:\n{json.dumps(model.model_json_schema())}"
        reply = scripted_workflow_responder(CompletionRequest.of(prompt, system="data block rules"))
        model.model_validate_json(reply)
    assert instance_of({"type": "number", "minimum": 0, "maximum": 1}) == 1.0
    assert instance_of({"enum": ["done", "partial"]}) == "done"
    assert instance_of({"type": "array", "items": {"type": "integer"}, "minItems": 2}) == [1, 1]
