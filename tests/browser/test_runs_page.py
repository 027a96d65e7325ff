"""The dashboard's login and runs page (``/ui``) in headless Chromium: log in, watch runs change
live, approve one waiting for approval, cancel one, filter."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import API_KEY, SLOW, WAIT_MS, Browsing, DashboardServer

pytestmark = pytest.mark.browser


def test_log_in_refuses_a_wrong_key_then_lands_on_the_runs(context: BrowserContext, dashboard: DashboardServer) -> None:
    page = context.new_page()
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login$"))  # no session: to the login form
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    Browsing(page, dashboard).shot("login")
    page.get_by_label("API key").fill("not-the-key-at-all")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the API key.")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/ui$"))
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "ecl_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert API_KEY not in cookie["value"]
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))


def test_a_run_completes_live_on_the_runs_page(logged_in: Browsing) -> None:
    page = logged_in.page
    wid = logged_in.server.submit(f"{SLOW} live on the runs page")
    page.reload()
    state = page.locator(f'tr[data-id="{wid}"] .state')
    expect(state).to_have_text(re.compile(r"pending|running"), timeout=WAIT_MS)
    # No reload from here on: the page's script refreshes the row.
    expect(state).to_have_text("completed", timeout=WAIT_MS)
    expect(page.locator(f'tr[data-id="{wid}"] td[data-label="Tokens"]')).not_to_have_text("0")
    logged_in.shot("runs-live")


def test_approve_a_run_waiting_for_approval(logged_in: Browsing) -> None:
    page = logged_in.page
    wid = logged_in.server.submit("approve me from the runs page", approval=True)
    logged_in.server.wait_state(wid, "waiting_for_revision")
    page.reload()
    line = page.locator(f'tr[data-id="{wid}"]')
    expect(line.locator(".state")).to_have_text("waiting for revision")
    line.get_by_role("button", name="Approve").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Approve run {wid}?")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text(wid)
    expect(page.locator(f'tr[data-id="{wid}"] .state')).to_have_text("completed", timeout=WAIT_MS)
    assert logged_in.server.wait_state(wid, "completed")["state"] == "completed"


def test_cancel_a_run_and_back_out_of_a_cancel(logged_in: Browsing) -> None:
    page = logged_in.page
    wid = logged_in.server.submit("cancel me from the runs page", approval=True)
    logged_in.server.wait_state(wid, "waiting_for_revision")
    page.reload()
    line = page.locator(f'tr[data-id="{wid}"]')
    line.get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Back").click()  # changed my mind: nothing happens
    expect(dialog).to_be_hidden()
    expect(line.locator(".state")).to_have_text("waiting for revision")
    line.get_by_role("button", name="Cancel").click()
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator(f'tr[data-id="{wid}"] .state')).to_have_text("cancelled", timeout=WAIT_MS)
    assert logged_in.server.wait_state(wid, "cancelled")["state"] == "cancelled"


def test_filter_by_state_keeps_only_matching_rows(logged_in: Browsing) -> None:
    page = logged_in.page
    waiting = logged_in.server.submit("filter: waiting", approval=True)
    done = logged_in.server.submit("filter: done")
    logged_in.server.wait_state(waiting, "waiting_for_revision")
    logged_in.server.wait_state(done, "completed")
    page.get_by_label("State").select_option("waiting_for_revision")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"state=waiting_for_revision"))
    expect(page.locator(f'tr[data-id="{waiting}"]')).to_be_visible()
    expect(page.locator(f'tr[data-id="{done}"]')).to_have_count(0)
    states = page.locator("#runs-body .state").all_text_contents()
    assert states
    assert set(states) == {"waiting for revision"}


def test_the_readme_first_command_shows_on_the_runs_page(logged_in: Browsing) -> None:
    # README: `ecl run critique-revise --topic "Benefits of durable execution" --llm mock`, then
    # `ecl server start` and http://127.0.0.1:3000/ui (here the server already runs on the database).
    done = logged_in.server.ecl.run(
        "run", "critique-revise", "--topic", "Benefits of durable execution", "--llm", "mock", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    wid = json.loads(done.stdout)["workflow_id"]
    page = logged_in.page
    page.reload()
    line = page.locator(f'tr[data-id="{wid}"]')
    expect(line).to_contain_text("Benefits of durable execution")
    expect(line.locator(".state")).to_have_text("completed")
