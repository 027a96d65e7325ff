"""The web dashboard (``/ui``) through HTTP against the app in process: login and the session
cookie, CSRF, the runs page, the actions, the definitions page and its start form.

The browser tests (Playwright) drive the same pages in Chromium; these need no browser.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ecl.api.app import create_app
from ecl.api.session import COOKIE, SessionKeys
from ecl.config import load_settings
from ecl.core.state import WorkflowState
from ecl.store.database import upgrade

KEY = "ui-test-key-123"
BASE = "http://testserver"
ORIGIN = {"origin": BASE}


class Ui:
    """A browser-like client of the app: cookies kept, redirects not followed."""

    def __init__(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        self.client = client
        self.app = app

    async def page(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params)

    def csrf(self, html: str) -> str:
        found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
        assert found, html[:500]
        return found.group(1)

    async def login(self, key: str = KEY) -> httpx.Response:
        form = await self.page("/ui/login")
        return await self.client.post(
            "/ui/login", data={"api_key": key, "csrf_token": self.csrf(form.text)}, headers=ORIGIN
        )

    async def post(self, path: str, fields: dict[str, str], *, token: str | None = None) -> httpx.Response:
        if token is None:
            token = self.csrf((await self.page("/ui")).text)
        return await self.client.post(path, data={"csrf_token": token, **fields}, headers=ORIGIN)

    async def wait_state(self, workflow_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body: dict[str, Any] = (await self.client.get(f"/workflows/{workflow_id}", headers=api_headers())).json()
            if body["state"] in states:
                return body
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{workflow_id} never reached {states}")


async def _open(tmp_path: Path, **env: str) -> AsyncIterator[Ui]:
    url = f"sqlite:///{tmp_path / 'ecl.db'}"
    upgrade(url)
    settings = load_settings(
        environ={"ECL_DATABASE_URL": url, "ECL_ARTIFACT_PATH": str(tmp_path / "artifacts"), **env}, cwd=tmp_path
    )
    app = create_app(settings, llm="mock")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=60) as client:
            yield Ui(client, app)


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[Ui]:
    """The dashboard of a server with an API key."""
    async for found in _open(tmp_path, ECL_API_KEY=KEY):
        yield found


@pytest.fixture
async def open_ui(tmp_path: Path) -> AsyncIterator[Ui]:
    """The dashboard of a server without a key (open, like its API)."""
    async for found in _open(tmp_path):
        yield found


def api_headers() -> dict[str, str]:
    return {"x-api-key": KEY}


async def submit(ui: Ui, topic: str, **extra: Any) -> str:
    created = await ui.client.post(
        "/workflows",
        json={"definition_id": "critique-revise", "input": {"topic": topic, **extra}},
        headers=api_headers(),
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


# ---------------------------------------------------------------- login, cookie, access


async def test_a_page_without_a_session_redirects_to_the_login_page(ui: Ui) -> None:
    for path in ("/ui", "/ui/definitions", "/ui/runs/some-run", "/ui/anything"):
        answer = await ui.page(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/ui/login"
    for path in ("/ui/logout", "/ui/runs/x/cancel", "/ui/runs/x/approve", "/ui/definitions/critique-revise/start"):
        answer = await ui.client.post(path, data={"csrf_token": "x"})
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/ui/login"


async def test_the_login_page_and_the_static_files_are_public(ui: Ui) -> None:
    login = await ui.page("/ui/login")
    assert login.status_code == 200
    assert '<label for="api_key">API key</label>' in login.text
    assert "Log out" not in login.text
    assert 'href="/ui/definitions"' not in login.text  # no menu before logging in
    css = await ui.page("/ui/static/ui.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert (await ui.page("/ui/static/ui.js")).status_code == 200


async def test_login_sets_an_http_only_strict_cookie_that_is_not_the_key(ui: Ui) -> None:
    answer = await ui.login()
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert KEY not in cookie
    assert SessionKeys(KEY.encode()).valid(ui.client.cookies[COOKIE])
    page = await ui.page("/ui")
    assert page.status_code == 200
    assert "<h1>Runs</h1>" in page.text
    assert "Log out" in page.text


async def test_a_wrong_key_is_refused_on_the_login_page(ui: Ui) -> None:
    answer = await ui.login("not-the-key")
    assert answer.status_code == 401
    assert "That is not the API key." in answer.text
    assert COOKIE not in ui.client.cookies
    assert (await ui.page("/ui")).status_code == 303


async def test_logout_clears_the_cookie(ui: Ui) -> None:
    await ui.login()
    page = await ui.page("/ui")
    answer = await ui.post("/ui/logout", {}, token=ui.csrf(page.text))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    assert COOKIE not in ui.client.cookies
    assert (await ui.page("/ui")).status_code == 303


async def test_a_forged_or_expired_cookie_opens_nothing(ui: Ui) -> None:
    keys = SessionKeys(KEY.encode())
    other = SessionKeys(b"another-key")
    for value in (other.issue(), keys.issue(now=time.time() - 13 * 3600), "garbage", KEY, ""):
        ui.client.cookies.set(COOKIE, value)
        assert (await ui.page("/ui")).status_code == 303, value
        assert (await ui.client.get("/workflows")).status_code == 401, value


async def test_the_cookie_opens_reads_of_the_json_api_but_not_changes(ui: Ui) -> None:
    wid = await submit(ui, "Cookies")
    assert (await ui.client.get("/workflows")).status_code == 401
    await ui.login()
    assert (await ui.client.get("/workflows")).status_code == 200
    assert (await ui.client.get(f"/workflows/{wid}")).status_code == 200
    refused = await ui.client.delete(f"/workflows/{wid}")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHORIZED"
    refused = await ui.client.post("/workflows", json={"definition_id": "critique-revise", "input": {"topic": "x"}})
    assert refused.status_code == 401
    # The key alone still does everything, as before.
    ui.client.cookies.clear()
    assert (await ui.client.get("/workflows", headers=api_headers())).status_code == 200
    assert (await ui.client.get("/workflows", headers={"x-api-key": "wrong"})).status_code == 401


async def test_every_ui_route_needs_the_session(ui: Ui) -> None:
    """No dashboard route answers without a session, except the login form and static files."""
    from fastapi.routing import APIRoute

    def walk(routes: list[Any]) -> list[APIRoute]:
        found: list[APIRoute] = []
        for route in routes:
            inner = getattr(route, "original_router", None)  # FastAPI >= 0.165 wraps included routers
            found += walk(inner.routes) if inner is not None else [route] if isinstance(route, APIRoute) else []
        return found

    routes = [r for r in walk(ui.app.routes) if r.path.startswith("/ui")]
    assert len(routes) >= 8
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        for method in route.methods:
            answer = await ui.client.request(method, path)
            if route.path == "/ui/login":
                assert answer.status_code in (200, 403), (method, path)
            else:
                assert answer.status_code == 303, (method, path)
                assert answer.headers["location"] == "/ui/login"


# ---------------------------------------------------------------- CSRF


async def test_a_form_without_the_csrf_token_is_refused(ui: Ui) -> None:
    await ui.login()
    wid = await submit(ui, "CSRF")
    for token in (None, "", "0" * 64):
        data = {"confirmed": "yes"} if token is None else {"confirmed": "yes", "csrf_token": token}
        answer = await ui.client.post(f"/ui/runs/{wid}/cancel", data=data, headers=ORIGIN)
        assert answer.status_code == 403, token
        assert "missing or invalid CSRF token" in answer.text
    assert (await ui.client.get(f"/workflows/{wid}")).json()["state"] != "cancelled"


async def test_a_form_from_another_origin_is_refused(ui: Ui) -> None:
    await ui.login()
    token = ui.csrf((await ui.page("/ui")).text)
    answer = await ui.client.post("/ui/logout", data={"csrf_token": token}, headers={"origin": "https://evil.example"})
    assert answer.status_code == 403
    assert "another site" in answer.text


async def test_the_open_dashboard_needs_no_login_but_checks_csrf(open_ui: Ui) -> None:
    page = await open_ui.page("/ui")
    assert page.status_code == 200
    assert "Log out" not in page.text
    assert (await open_ui.page("/ui/login")).status_code == 303
    answer = await open_ui.client.post("/ui/runs/x1/cancel", data={"confirmed": "yes"}, headers=ORIGIN)
    assert answer.status_code == 403


# ---------------------------------------------------------------- runs page


async def test_the_runs_page_shows_a_run_with_its_figures(ui: Ui) -> None:
    wid = await submit(ui, "Durable execution")
    await ui.wait_state(wid, {"completed"})
    await ui.login()
    page = await ui.page("/ui")
    assert page.status_code == 200
    row = _row(page.text, wid)
    assert f'href="/ui/runs/{wid}"' in row
    assert "state-completed" in row
    assert "critique-revise" in row
    assert re.search(r'data-label="Tokens" class="num">[1-9][0-9,]*<', row), row
    assert 'data-label="Cost" class="num">$' in row
    assert "Durable execution" in row


async def test_a_script_in_a_topic_is_shown_as_text(ui: Ui) -> None:
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    await submit(ui, payload)
    await ui.login()
    page = await ui.page("/ui")
    assert payload not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def _row(html: str, workflow_id: str) -> str:
    found = re.search(rf'<tr id="run-{re.escape(workflow_id)}".*?</tr>', html, re.S)
    assert found, f"no row for {workflow_id}"
    return found.group(0)


async def test_filters_and_cursor_pages_show_one_page_of_rows(ui: Ui) -> None:
    svc = ui.app.state.services
    for i in range(23):
        state = WorkflowState.COMPLETED if i % 2 else WorkflowState.FAILED
        await svc.workflows.create(f"run-{i:02d}", "critique-revise", {"topic": f"t{i}"}, state=state)
    await svc.workflows.create("other-1", "critique-revise-py", {"topic": "py"}, state=WorkflowState.COMPLETED)
    await ui.login()
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 10}
    for expected in (10, 10, 4):
        page = await ui.page("/ui", **params)
        assert page.status_code == 200
        rows = re.findall(r'<tr id="run-([^"]+)"', page.text)
        assert len(rows) == expected
        seen += rows
        found = re.search(r'<a rel="next" href="/ui\?([^"]+)"', page.text)
        if expected < 10:
            assert found is None
        else:
            assert found is not None
            params = dict(httpx.QueryParams(found.group(1).replace("&amp;", "&")))
    assert len(set(seen)) == 24
    completed = await ui.page("/ui", state="completed")
    rows = re.findall(r'<tr id="run-[^"]+" data-id="[^"]+" data-state="([a-z_]+)"', completed.text)
    assert rows
    assert set(rows) == {"completed"}
    by_definition = await ui.page("/ui", definition_id="critique-revise-py")
    assert re.findall(r'<tr id="run-([^"]+)"', by_definition.text) == ["other-1"]
    rows_only = await ui.page("/ui", partial="rows", definition_id="critique-revise-py")
    assert rows_only.text.lstrip().startswith("<tbody")
    assert "other-1" in rows_only.text
    bad = await ui.page("/ui", state="sleeping")
    assert bad.status_code == 400
    assert "unknown state &#39;sleeping&#39;" in bad.text


async def test_an_action_asks_for_confirmation_without_javascript(ui: Ui) -> None:
    wid = await submit(ui, "Confirm me", require_approval=True)
    await ui.wait_state(wid, {"waiting_for_revision"})
    await ui.login()
    answer = await ui.post(f"/ui/runs/{wid}/cancel", {"back": "/ui"})
    assert answer.status_code == 200
    assert f"Cancel run {wid}?" in answer.text
    assert '<input type="hidden" name="confirmed" value="yes">' in answer.text
    assert (await ui.client.get(f"/workflows/{wid}")).json()["state"] == "waiting_for_revision"


async def test_approve_from_the_dashboard(ui: Ui) -> None:
    wid = await submit(ui, "Approve me", require_approval=True)
    await ui.wait_state(wid, {"waiting_for_revision"})
    await ui.login()
    page = await ui.page("/ui")
    assert f'action="/ui/runs/{wid}/approve"' in _row(page.text, wid)
    assert f'Approve<span class="visually-hidden"> run {wid}</span></button>' in _row(page.text, wid)
    answer = await ui.post(f"/ui/runs/{wid}/approve", {"back": "/ui", "confirmed": "yes"}, token=ui.csrf(page.text))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"
    shown = await ui.page("/ui")
    assert f"Approved run {wid}" in shown.text
    assert f"Approved run {wid}" not in (await ui.page("/ui")).text  # shown once
    await ui.wait_state(wid, {"completed"})


async def test_revise_with_feedback_from_the_dashboard(ui: Ui) -> None:
    wid = await submit(ui, "Revise me", require_approval=True)
    await ui.wait_state(wid, {"waiting_for_revision"})
    await ui.login()
    back = f"/ui/runs/{wid}"
    answer = await ui.post(f"/ui/runs/{wid}/revise", {"back": back, "confirmed": "yes", "feedback": "Add an example"})
    assert answer.status_code == 303
    assert answer.headers["location"] == back
    signals = await ui.app.state.services.workflows.signals(wid)
    assert any(s.payload == {"decision": "revise", "feedback": "Add an example"} for s in signals), signals


async def test_cancel_and_an_api_error_shown_as_a_message(ui: Ui) -> None:
    wid = await submit(ui, "Cancel me", require_approval=True)
    await ui.wait_state(wid, {"waiting_for_revision"})
    await ui.login()
    answer = await ui.post(f"/ui/runs/{wid}/cancel", {"back": "/ui", "confirmed": "yes"})
    assert answer.status_code == 303
    assert (await ui.client.get(f"/workflows/{wid}")).json()["state"] == "cancelled"
    assert f"Cancelled run {wid}" in (await ui.page("/ui")).text
    # Approving a cancelled run fails as the API's signal does; the dashboard says so.
    api = await ui.client.post(f"/workflows/{wid}/signal", json={"decision": "approve"}, headers=api_headers())
    error = api.json()["error"]
    answer = await ui.post(f"/ui/runs/{wid}/approve", {"back": "/ui", "confirmed": "yes"})
    assert answer.status_code == 303
    page = await ui.page("/ui")
    assert 'class="flash flash-error" role="alert"' in page.text
    assert f"({error['code']})" in page.text
    missing = await ui.post("/ui/runs/no-such-run/cancel", {"back": "/ui", "confirmed": "yes"})
    assert missing.status_code == 303
    assert "workflow no-such-run not found (WORKFLOW_NOT_FOUND)" in (await ui.page("/ui")).text


async def test_run_again_with_the_same_input(ui: Ui) -> None:
    wid = await submit(ui, "Once more")
    await ui.wait_state(wid, {"completed"})
    await ui.login()
    answer = await ui.post(f"/ui/runs/{wid}/rerun", {"back": "/ui", "confirmed": "yes"})
    assert answer.status_code == 303
    new = answer.headers["location"].removeprefix("/ui/runs/")
    assert new != wid
    again = await ui.wait_state(new, {"completed"})
    assert again["input"] == {"topic": "Once more"}
    assert again["definition_id"] == "critique-revise"


async def test_a_back_link_never_leaves_the_dashboard(ui: Ui) -> None:
    await ui.login()
    for back in ("https://evil.example/", "//evil.example", "/workflows"):
        answer = await ui.post("/ui/runs/no-such-run/cancel", {"back": back, "confirmed": "yes"})
        assert answer.headers["location"] == "/ui/runs/no-such-run", back


# ---------------------------------------------------------------- definitions


async def test_the_definitions_page_draws_the_critique_revise_graph(ui: Ui) -> None:
    await ui.login()
    page = await ui.page("/ui/definitions")
    assert page.status_code == 200
    section = page.text.split('id="def-critique-revise"', 1)[1].split("</section>", 1)[0]
    svg = section.split("<svg", 1)[1].split("</svg>", 1)[0]
    for step in ("generate", "critique", "revise", "final"):
        assert f'data-step="{step}"' in svg
    assert 'class="loop"' in svg
    assert "revision loop, at most 3 times" in svg
    assert svg.count('class="edge"') == 3
    assert "critique → revise" in svg  # the text equivalent
    assert '<label for="in-critique-revise-topic">Topic' in section
    code_first = page.text.split('id="def-critique-revise-py"', 1)[1].split("</section>", 1)[0]
    assert "<svg" not in code_first
    assert "Written as code" in code_first


async def test_the_start_form_starts_a_run_and_names_a_bad_field(ui: Ui) -> None:
    await ui.login()
    token = ui.csrf((await ui.page("/ui/definitions")).text)
    started = await ui.post(
        "/ui/definitions/critique-revise/start", {"topic": "From the form", "require_approval": "on"}, token=token
    )
    assert started.status_code == 303
    wid = started.headers["location"].removeprefix("/ui/runs/")
    run = await ui.wait_state(wid, {"waiting_for_revision"})
    assert run["input"] == {"topic": "From the form", "require_approval": True}
    empty = await ui.post("/ui/definitions/critique-revise/start", {"topic": ""}, token=token)
    assert empty.status_code == 400
    assert 'id="in-critique-revise-topic-problem"' in empty.text
    assert "topic" in empty.text.split('class="flash flash-error"', 1)[1].split("</p>", 1)[0]
    bad_number = await ui.post("/ui/definitions/critique-revise/start", {"topic": "x", "budget_usd": "-1"}, token=token)
    assert bad_number.status_code == 400
    assert "budget_usd" in bad_number.text
    bad_json = await ui.post("/ui/definitions/critique-revise/start", {"input_json": "{nope"}, token=token)
    assert bad_json.status_code == 400
    assert "input JSON" in bad_json.text
    by_json = await ui.post("/ui/definitions/critique-revise/start", {"input_json": '{"topic": "JSON"}'}, token=token)
    assert by_json.status_code == 303
    unknown = await ui.post("/ui/definitions/nope/start", {"topic": "x"}, token=token)
    assert unknown.status_code == 404
    assert "DEFINITION_NOT_FOUND" in unknown.text


async def test_a_form_with_too_many_fields_is_refused_not_a_crash(ui: Ui) -> None:
    await ui.login()
    token = ui.csrf((await ui.page("/ui")).text)
    fields = {f"f{i}": "x" for i in range(300)}
    answer = await ui.post("/ui/logout", fields, token=token)
    assert answer.status_code == 403
    assert "more than 200 fields" in answer.text


async def test_errors_on_dashboard_paths_are_pages_and_the_api_keeps_json(ui: Ui) -> None:
    await ui.login()
    missing = await ui.page("/ui/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Not Found (NOT_FOUND)" in missing.text
    assert "<h1>Not found</h1>" in missing.text
    unknown = await ui.page("/ui", utm_source="mail")
    assert unknown.status_code == 400
    assert "unknown query parameter &#39;utm_source&#39;" in unknown.text
    assert "(VALIDATION_ERROR)" in unknown.text
    api = await ui.client.get("/workflows/nope")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"
    assert (await ui.client.get("/workflows", params={"utm_source": "x"})).json()["error"]["code"] == "VALIDATION_ERROR"
