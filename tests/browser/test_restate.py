"""The dashboard on the Restate engine (``ecl server start --engine restate --api``) in headless
Chromium: a run started from the definitions form and followed live to its end, then a run
waiting for approval approved from the runs page."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ecl.engines.restate.server import RestateServer, free_port
from ecl.testing import FakeAnthropicServer
from tests.browser.conftest import API_KEY, DESKTOP, REVISE_ONCE, WAIT_MS, log_in
from tests.e2e.helpers import START_TIMEOUT, Ecl, answers, keep, stop, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.restate]


@pytest.fixture(scope="module")
def restate_dashboard(tmp_path_factory: pytest.TempPathFactory, fake_llm: FakeAnthropicServer) -> Iterator[str]:
    """A Restate server, ECL's endpoint registered with it, and the API with the dashboard and an
    API key in front of it; the dashboard's URL."""
    ecl = Ecl(tmp_path_factory.mktemp("restate-dashboard"), fake_llm.url)
    migrated = ecl.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    server = RestateServer(data_dir=ecl.tmp / "restate-data")
    endpoint_port = free_port()
    api_port = free_port()
    started: list[subprocess.Popen[str]] = []
    try:
        server.start(timeout=START_TIMEOUT)
        env = {
            "ECL_RESTATE__INGRESS_URL": server.ingress_url,
            "ECL_RESTATE__ADMIN_URL": server.admin_url,
            "ECL_RESTATE__ENDPOINT_PORT": str(endpoint_port),
            "ECL_LLM_PROVIDER": "anthropic",
        }
        endpoint = keep(ecl.start("server", "start", "--engine", "restate", "--llm", "anthropic", **env))
        started.append(endpoint)

        def registered() -> bool:
            deployments = httpx.get(f"{server.admin_url}/deployments", timeout=5).json()
            return any(str(endpoint_port) in d.get("uri", "") for d in deployments.get("deployments", []))

        wait_until(registered, endpoint, "the ECL endpoint's registration with Restate")
        api = keep(
            ecl.start(
                "server", "start", "--engine", "restate", "--api", "--port", str(api_port), ECL_API_KEY=API_KEY, **env
            )
        )
        started.append(api)
        url = f"http://127.0.0.1:{api_port}"
        wait_until(answers(f"{url}/health/ready"), api, "the API on Restate")
        yield url
    finally:
        for proc in reversed(started):
            stop(proc)
        server.stop()


@pytest.fixture
def restate_page(browser: Browser, restate_dashboard: str) -> Iterator[Page]:
    context = browser.new_context(base_url=restate_dashboard, viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        log_in(page)
        yield page
        assert dialogs == []
    finally:
        context.close()


def test_start_from_the_form_watch_it_live_and_approve_on_restate(restate_page: Page) -> None:
    page = restate_page
    page.goto("/ui/definitions")
    form = page.locator("#def-critique-revise").get_by_role("form", name="Start a run")
    form.get_by_label("Topic").fill(f"{REVISE_ONCE} on Restate")
    form.get_by_role("button", name="Start critique-revise").click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[^/]+$"))
    expect(page.locator("#run-title .state")).to_have_text("completed")  # live, no reload
    expect(page.locator("#round-1").get_by_role("heading")).to_contain_text("Revision 1")

    page.goto("/ui/definitions")
    form = page.locator("#def-critique-revise").get_by_role("form", name="Start a run")
    form.get_by_label("Topic").fill("approve me on Restate")
    form.get_by_label("Require Approval").check()
    form.get_by_role("button", name="Start critique-revise").click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[^/]+$"))
    wid = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run-title .state")).to_have_text("waiting for revision")
    page.get_by_role("link", name="Runs", exact=True).first.click()
    line = page.locator(f'tr[data-id="{wid}"]')
    line.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator(f'tr[data-id="{wid}"] .state')).to_have_text("completed")
