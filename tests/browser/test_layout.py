"""The dashboard at a laptop's and a phone's width, and with the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, REVISE_ONCE, WAIT_MS, Browsing

pytestmark = pytest.mark.browser

OVERFLOW = """() => {
  const main = document.querySelector("main");
  return {
    page: document.documentElement.scrollWidth - window.innerWidth,
    main: main.scrollWidth - main.clientWidth,
  };
}"""
"""How many pixels the page and its main content are wider than the window (0 or less: none)."""

FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "";
  const label = el.labels && el.labels.length ? el.labels[0].textContent : el.textContent;
  return el.tagName.toLowerCase() + ":" + (label || "").trim().replace(/\\s+/g, " ");
}"""


def tab_order(page: Page, presses: int) -> list[str]:
    """What the keyboard focus lands on, Tab after Tab from the top of a freshly loaded page."""
    page.reload()
    seen: list[str] = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(FOCUSED))
    return seen


def no_overflow(page: Page) -> None:
    widths = page.evaluate(OVERFLOW)
    assert widths["page"] <= 0, f"{page.url}: the page is {widths['page']} px wider than the window"
    assert widths["main"] <= 0, f"{page.url}: the main content is {widths['main']} px wider than its box"


@pytest.mark.parametrize(("viewport", "name"), [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_runs_page_fits_the_window(logged_in: Browsing, viewport: dict[str, int], name: str) -> None:
    server = logged_in.server
    done = server.submit(f"{REVISE_ONCE} fits the window: a completed run with a long topic that wraps on a phone")
    waiting = server.submit("fits the window: waiting for approval", approval=True)
    cancelled = server.submit("fits the window: cancelled", approval=True)
    server.wait_state(done, "completed")
    server.wait_state(cancelled, "waiting_for_revision")
    with server.api() as api:
        assert api.delete(f"/workflows/{cancelled}").status_code == 200
    server.wait_state(waiting, "waiting_for_revision")
    page = logged_in.page
    page.set_viewport_size(viewport)
    page.goto("/ui")
    expect(page.locator(f'tr[data-id="{waiting}"]').get_by_role("button", name="Approve")).to_be_visible()
    no_overflow(page)
    logged_in.shot(f"runs-{name}")
    page.goto("/ui/definitions")
    expect(page.get_by_role("heading", name="Definitions", level=1)).to_be_visible()
    expect(page.locator("#def-critique-revise figure.graph svg")).to_be_visible()
    no_overflow(page)
    page.goto(f"/ui/runs/{done}")
    expect(page.locator("#round-1")).to_be_visible()
    no_overflow(page)
    logged_in.shot(f"run-detail-{name}")


def test_login_page_fits_a_phone(logged_in: Browsing) -> None:
    page = logged_in.page
    page.get_by_role("button", name="Log out").click()
    page.set_viewport_size(PHONE)
    expect(page.get_by_label("API key")).to_be_visible()
    no_overflow(page)
    logged_in.shot("login-phone")


def test_the_keyboard_reaches_the_main_controls(logged_in: Browsing) -> None:
    page = logged_in.page
    server = logged_in.server
    waiting = server.submit("keyboard: waiting for approval", approval=True)
    server.wait_state(waiting, "waiting_for_revision")
    page.goto("/ui")
    expect(page.locator(f'tr[data-id="{waiting}"]')).to_be_visible()
    order = tab_order(page, 40)
    expected = [
        "a:Skip to content",
        "a:Runs",
        "a:Definitions",
        "button:Log out",
        "select:State",
        "select:Definition",
        "button:Filter",
        f"a:{waiting}",
        f"button:Approve run {waiting}",  # a row's buttons name their run for screen readers
        f"button:Cancel run {waiting}",
    ]
    missed = [want for want in expected if want not in order]
    assert not missed, f"Tab never reached {missed}: {order}"
    positions = [order.index(want) for want in expected]
    assert positions[:7] == sorted(positions[:7]), f"the page's controls out of reading order: {order}"
    # The skip link moves the focus to the main content; Enter on a focused button acts.
    page.reload()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.locator(f'tr[data-id="{waiting}"]').get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Confirm")).to_be_focused()
    page.keyboard.press("Escape")  # closes the dialog: nothing is cancelled
    expect(dialog).to_be_hidden()
    expect(page.locator(f'tr[data-id="{waiting}"]').get_by_role("button", name="Cancel")).to_be_focused(timeout=WAIT_MS)
    assert server.wait_state(waiting, "waiting_for_revision")["state"] == "waiting_for_revision"
