"""Fixtures for the dashboard tests in a real browser.

Playwright (Python) drives Debian's Chromium (``/usr/bin/chromium``, installed by
``make setup`` through ``scripts/install-chromium.sh``; ``ECL_CHROMIUM`` names another one).
Playwright's own browser download is never used: it cannot be fetched on the machines ECL is
developed on. The flags keep Chromium from reaching out to Google's services, which a closed
network refuses, many connections at a time; each launch gets a fresh, empty profile (Playwright
makes a new temporary ``--user-data-dir`` per launch and deletes it on close).

One ``ecl server start`` (the embedded engine, a SQLite database, an API key) serves every test
of the session, talking to a fake Anthropic server whose replies are scripted by the topic of
the run (:func:`scripted_reply`). Screenshots go to ``test-output/browser/`` (git-ignored;
``ECL_TEST_OUTPUT`` moves it); ``make docs-screenshots`` copies the main pages' into
``docs/dashboard/``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, expect, sync_playwright

from ecl.testing import FakeAnthropicServer, ReceivedRequest, Reply
from tests.e2e.helpers import START_TIMEOUT, Ecl, answers, keep, stop, wait_until

CHROMIUM = os.environ.get("ECL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root on CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
API_KEY = "browser-test-key-0123456789"
OUTPUT = Path(os.environ.get("ECL_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "browser"
WAIT_MS = 60_000
"""How long an expectation waits for the page (ms): generous, the machine is shared."""

expect.set_options(timeout=WAIT_MS)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
"""A payload that would open a dialog if a page put it into the DOM as HTML."""

# Markers in a run's topic choose what the fake model answers (see scripted_reply).
REVISE_ONCE = "[revise-once]"
XSS_REPLY = "[xss-reply]"
SLOW = "[slow]"
SLOW_SECONDS = 4.0
REVISION_EXAMPLE = "For example, a worked case makes the point concrete."


def _topic(request: ReceivedRequest) -> str:
    found = re.search(r"^Topic: (.*)$", request.text, re.M)
    return found.group(1) if found else ""


def scripted_reply(request: ReceivedRequest) -> Reply:
    """The fake model, scripted by markers in the run's topic.

    Generate answers ``Draft about <topic>.`` (with :data:`XSS` in it for ``[xss-reply]``;
    after :data:`SLOW_SECONDS` for ``[slow]``). Critique asks for one revision of a draft whose
    topic has ``[revise-once]`` and passes the revised draft (and every other draft). Revise
    adds :data:`REVISION_EXAMPLE` to the draft.
    """
    text = request.text
    if '"decision"' in text:  # critique
        draft = text.split("Draft:", 1)[-1]
        if REVISE_ONCE in draft and REVISION_EXAMPLE not in draft:
            verdict = {"critique": "thin", "decision": "revise", "feedback": "add an example"}
        else:
            verdict = {"critique": "good", "decision": "pass", "feedback": None}
        return Reply(text=json.dumps(verdict))
    if "Revise the draft below" in text:
        draft = text.split("Draft:", 1)[-1].strip()
        return Reply(text=f"{draft}\n\n{REVISION_EXAMPLE}")
    topic = _topic(request)
    draft = f"Draft about {topic}."
    if XSS_REPLY in topic:
        draft += f" The model says {XSS} here."
    return Reply(text=draft, delay=SLOW_SECONDS if SLOW in topic else 0.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DashboardServer:
    """A running ``ecl server start`` with an API key."""

    ecl: Ecl
    url: str
    proc: subprocess.Popen[str]

    def api(self) -> httpx.Client:
        """A client of the JSON API with the key."""
        return httpx.Client(base_url=self.url, headers={"x-api-key": API_KEY}, timeout=120)

    def submit(self, topic: str, *, approval: bool = False, definition: str = "critique-revise") -> str:
        """Start a run through the JSON API; its id."""
        data: dict[str, object] = {"topic": topic, "require_approval": approval} if approval else {"topic": topic}
        with self.api() as api:
            created = api.post("/workflows", json={"definition_id": definition, "input": data})
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def wait_state(self, workflow_id: str, *states: str) -> dict[str, object]:
        """The run's JSON once it is in one of ``states`` (polls the API; a generous limit)."""
        deadline = time.monotonic() + START_TIMEOUT
        with self.api() as api:
            while time.monotonic() < deadline:
                body: dict[str, object] = api.get(f"/workflows/{workflow_id}").json()
                if body["state"] in states:
                    return body
                time.sleep(0.1)
        raise TimeoutError(f"run {workflow_id} never reached {states}")


@dataclass
class Browsing:
    """A logged-in page, and the JavaScript dialogs it opened (none, ever, in these tests)."""

    page: Page
    server: DashboardServer
    dialogs: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        """Save screenshots as ``test-output/browser/<name>.png`` (what the window shows, from the
        top: the size ``docs/dashboard.md`` embeds) and ``<name>-full.png`` (the whole page)."""
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.page.screenshot(path=str(OUTPUT / f"{name}-full.png"), full_page=True)
        self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path))
        return path


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is started, so every async test after it would fail ("Runner.run() cannot be
# called from a running event loop"). It stops when the last browser test is done.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    manager = sync_playwright()
    driver = manager.start()
    try:
        yield driver
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make setup` (scripts/install-chromium.sh installs it)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(scope="package")
def fake_llm() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(responder=scripted_reply) as server:
        yield server


@pytest.fixture(scope="package")
def dashboard(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeAnthropicServer) -> Iterator[DashboardServer]:
    """``ecl server start`` on a free loopback port, with an API key and the fake model."""
    ecl = Ecl(tmp_path_factory.mktemp("dashboard"), fake_llm.url)
    migrated = ecl.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    port = _free_port()
    proc = keep(ecl.start("server", "start", "--port", str(port), ECL_API_KEY=API_KEY, ECL_LLM_PROVIDER="anthropic"))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(answers(f"{url}/health/live"), proc, "ecl server start")
        yield DashboardServer(ecl, url, proc)
    finally:
        stop(proc)


@pytest.fixture
def context(browser: Browser, dashboard: DashboardServer) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) at 1280 by 800."""
    ctx = browser.new_context(base_url=dashboard.url, viewport=DESKTOP, accept_downloads=True)
    ctx.set_default_timeout(WAIT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def log_in(page: Page) -> None:
    """Log in through the form with the API key; lands on the runs page."""
    page.goto("/ui/login")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/ui/?$"), timeout=WAIT_MS)


@pytest.fixture
def logged_in(context: BrowserContext, dashboard: DashboardServer) -> Iterator[Browsing]:
    """A page logged in to the dashboard; a JavaScript dialog it opens is recorded and dismissed."""
    page = context.new_page()
    browsing = Browsing(page, dashboard)

    def on_dialog(dialog: Dialog) -> None:
        browsing.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    log_in(page)
    yield browsing
    assert browsing.dialogs == [], f"the page opened JavaScript dialogs: {browsing.dialogs}"


@pytest.fixture
def logged_in_page(logged_in: Browsing) -> Page:
    """Just the logged-in page."""
    return logged_in.page
