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
