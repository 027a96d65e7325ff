"""The dashboard's run page (``/ui/runs/{id}``) through HTTP against the app in process, with a
real Critique-Revise run on a fake Anthropic server: one revision, its verdicts, the diff
between the drafts, the LLM calls, the timeline, the artifact preview and download link, and
an XSS payload in the topic and in the model's reply shown as text."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecl.api.app import create_app
from ecl.config import load_settings
from ecl.observability import configure_content
from ecl.store.database import upgrade
from ecl.testing import FakeAnthropicServer
from tests.e2e.helpers import PASS, REVISE, is_critique, is_revise

BASE = "http://testserver"
TOPIC = "<script>alert('topic')</script> cats"
REVISED = "Cats sleep a lot. <img src=x onerror=alert('reply')>"


def _reply(request: Any) -> str:
    """Stateless, by what the request holds: a topic about cats is revised once; a topic with
    BROKEN gets critiques that are not JSON (the critique fails after its retries); any other
    topic passes at once."""
    if is_critique(request):
        if "BROKEN" in request.text:
            return "this is not JSON"
        return REVISE if "Cats are nice." in request.text else PASS
    if is_revise(request):
        return REVISED
    if "BROKEN" in request.text:
        return "A BROKEN draft."
    return "Cats are nice." if "cats" in request.text else "Some draft."


@pytest.fixture
def fake() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as server:
        server.responder = _reply
        yield server


@pytest.fixture
async def client(tmp_path: Path, fake: FakeAnthropicServer) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite:///{tmp_path / 'ecl.db'}"
    upgrade(url)
    env = {
        "ECL_DATABASE_URL": url,
        "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"),
        "ECL_LLM_BASE_URL": fake.url,
        "ECL_CLAUDE_API_KEY": "sk-test-not-a-real-key",
        "ECL_LLM__RETRY__INITIAL_DELAY": "0.01",
        "ECL_LOG_LEVEL": "warning",
    }
    app = create_app(load_settings(environ=env, cwd=tmp_path), llm="anthropic")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as found:
            yield found


async def _start(client: httpx.AsyncClient, **data: Any) -> str:
    created = await client.post("/workflows", json={"definition_id": "critique-revise", "input": data})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _reaches(
    client: httpx.AsyncClient, workflow_id: str, states: set[str], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await client.get(f"/workflows/{workflow_id}")).json()
        if body["state"] in states:
            return body
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{workflow_id} did not reach {states} in {timeout} s")


ENDED = {"completed", "failed", "cancelled"}


def _text(page: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


async def test_the_run_page_shows_verdicts_diff_calls_timeline_and_artifact_and_escapes_xss(
    client: httpx.AsyncClient,
) -> None:
    wid = await _start(client, topic=TOPIC)
    assert (await _reaches(client, wid, ENDED))["state"] == "completed"

    page = await client.get(f"/ui/runs/{wid}")
    assert page.status_code == 200, page.text
    body = page.text
    text = _text(body)
    # The XSS payloads are text: escaped wherever they appear, never markup.
    assert "<script>alert(" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&#39;topic&#39;)&lt;/script&gt; cats" in body
    assert "&lt;img src=x onerror=alert(&#39;reply&#39;)&gt;" in body
    assert "Topic: <script>alert('topic')</script> cats" in text
    # Header and decisions.
    assert 'class="state state-completed"' in body
    assert "critique verdict revise: add an example" in text
    assert "critique verdict pass" in text
    assert "revision round 1: add an example" in text
    # The revision round: the first draft, the feedback, the diff to the revised draft.
    assert "First draft" in text and "Revision 1" in text and "Asked for: add an example" in text
    assert "First draft (generate)" in text and "Revision 1 (revise)" in text
    assert "Cats <del>are nice.</del><ins>sleep a lot. &lt;img src=x onerror=alert(&#39;reply&#39;)&gt;</ins>" in body
    # The timeline: one bar per attempt (generate, critique, revise, critique, final).
    assert body.count('<g class="bar bar-completed"') == 5
    assert 'role="img"' in body and "The timeline as a table" in text
    # The LLM calls: four, each with its model, tokens and cost.
    calls = re.findall(r'<tr id="call-[0-9a-f]+" class="call outcome-ok">', body)
    assert len(calls) == 4
    assert "anthropic/" in text
    # The artifact: rendered Markdown preview (escaped) and the API's download link.
    assert "final.md" in text
    link = re.search(r'href="(/workflows/[^"]+/artifacts/([0-9a-f]+))" download', body)
    assert link is not None
    assert '<div class="markdown preview"><p>Cats sleep a lot. &lt;img' in body
    download = await client.get(link.group(1))
    assert download.status_code == 200 and download.text == REVISED
    # The fragment run.js swaps in: the main part alone, the same content.
    fragment = await client.get(f"/ui/runs/{wid}/fragment")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "critique verdict pass" in _text(fragment.text)
    assert 'data-live="off"' in body  # a finished run does not follow its events


async def test_an_unknown_run_is_a_404_page_naming_the_id(client: httpx.AsyncClient) -> None:
    for path in ("/ui/runs/no-such-run", "/ui/runs/no-such-run/fragment"):
        page = await client.get(path)
        assert page.status_code == 404
        assert "There is no run with id 'no-such-run'." in _text(page.text)
    odd = await client.get("/ui/runs/%3Cb%3Ex")
    assert odd.status_code == 404 and "<b>x" not in odd.text and "&#39;&lt;b&gt;x&#39;" in odd.text


async def test_a_failed_run_shows_its_error_and_its_failed_retries(client: httpx.AsyncClient) -> None:
    wid = await _start(client, topic="BROKEN critique")
    assert (await _reaches(client, wid, ENDED))["state"] == "failed"
    body = (await client.get(f"/ui/runs/{wid}")).text
    text = _text(body)
    assert 'class="state state-failed"' in body and 'id="run-error" role="alert"' in body
    assert "StepValidationError" in text and "the model did not answer with JSON" in text
    assert body.count('<g class="bar bar-failed" data-step="critique"') == 3  # every attempt, each marked
    assert re.search(r"critique #3: started at [^;]+, failed at [^;]+; error: StepValidationError", text)
    assert "No drafts were judged in this run." in text


async def test_a_run_waiting_for_approval_says_so_offers_the_actions_and_follows_its_events(
    client: httpx.AsyncClient,
) -> None:
    wid = await _start(client, topic="approval please", require_approval=True)
    waiting = await _reaches(client, wid, {"waiting_for_revision"} | ENDED)
    assert waiting["state"] == "waiting_for_revision"
    body = (await client.get(f"/ui/runs/{wid}")).text
    assert "Waiting for a person:" in _text(body)
    assert f'action="/ui/runs/{wid}/approve"' in body and f'action="/ui/runs/{wid}/revise"' in body
    assert 'data-live="on"' in body
    assert f'data-events="/workflows/{wid}/events"' in body and f'data-fragment="/ui/runs/{wid}/fragment"' in body
    assert '<script src="/ui/static/run.js" defer></script>' in body
    script = await client.get("/ui/static/run.js")
    assert script.status_code == 200 and "EventSource" in script.text


async def test_captured_prompts_and_replies_are_shown_as_text(client: httpx.AsyncClient) -> None:
    configure_content(True)  # observability.capture_content, as ecl server start sets it
    try:
        wid = await _start(client, topic=TOPIC)
        assert (await _reaches(client, wid, ENDED))["state"] == "completed"
    finally:
        configure_content(False)
    body = (await client.get(f"/ui/runs/{wid}")).text
    assert body.count("<summary>Prompt and reply</summary>") == 4
    assert "observability.capture_content</code> is on" not in body  # the hint is for runs without content
    replies = re.findall(r'<h4>Reply</h4><pre class="content">(.*?)</pre>', body, re.S)
    assert "Cats sleep a lot. &lt;img src=x onerror=alert(&#39;reply&#39;)&gt;" in replies
    prompts = re.findall(r'<h4>Prompt</h4><pre class="content">(.*?)</pre>', body, re.S)
    assert any("&lt;script&gt;alert(&#39;topic&#39;)&lt;/script&gt;" in p for p in prompts)
    assert "<script>alert(" not in body and "<img src=x" not in body


async def test_the_run_page_and_its_fragment_need_the_session_when_a_key_is_set(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ecl.db'}"
    upgrade(url)
    env = {"ECL_DATABASE_URL": url, "ECL_ARTIFACT_PATH": str(tmp_path / "a"), "ECL_API_KEY": "ui-run-key-123"}
    app = create_app(load_settings(environ=env, cwd=tmp_path), llm="mock")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as anonymous:
            for path in ("/ui/runs/any-id", "/ui/runs/any-id/fragment"):
                refused = await anonymous.get(path)
                assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login"), path
