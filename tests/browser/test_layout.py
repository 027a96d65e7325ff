"""The dashboard at a laptop's and a phone's width, with the keyboard alone, and its text contrast."""

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


CONTRAST = """() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || el.closest(".visually-hidden")) continue;
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === "hidden" || Number(style.opacity) === 0) continue;
    const fg = parse(style.color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) {
      const text = el.textContent.trim().slice(0, 40);
      low.push(`${el.tagName.toLowerCase()}.${el.className} "${text}" ${ratio.toFixed(2)} < ${need}`);
    }
  }
  return low;
}"""
"""Text whose contrast with its background is below WCAG 2 AA (4.5:1, or 3:1 for large text)."""


def test_text_contrast_meets_wcag_aa(logged_in: Browsing) -> None:
    server = logged_in.server
    done = server.submit(f"{REVISE_ONCE} contrast")
    waiting = server.submit("contrast: waiting", approval=True)
    server.wait_state(done, "completed")
    server.wait_state(waiting, "waiting_for_revision")
    page = logged_in.page
    low: dict[str, list[str]] = {}
    for path in ("/ui", f"/ui/runs/{done}", f"/ui/runs/{waiting}", "/ui/definitions"):
        page.goto(path)
        page.wait_for_load_state("load")
        found = page.evaluate(CONTRAST)
        if found:
            low[path] = found
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    if found := page.evaluate(CONTRAST):
        low["/ui/login"] = found
    assert not low, low
