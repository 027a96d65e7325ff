"""The definitions page (``/ui/definitions``) in headless Chromium: each graph drawn, a run
started from the form and followed to its end, a bad input refused with the field named."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import REVISE_ONCE, Browsing

pytestmark = pytest.mark.browser


def test_start_a_run_from_the_form_and_watch_it_complete(logged_in: Browsing) -> None:
    page = logged_in.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Definitions").click()
    expect(page.get_by_role("heading", name="Definitions", level=1)).to_be_visible()
    section = page.locator("#def-critique-revise")
    graph = section.locator("figure.graph svg")
    expect(graph).to_be_visible()
    for step in ("generate", "critique", "revise", "final"):
        expect(graph).to_contain_text(step)
    logged_in.shot("definitions")
    form = section.get_by_role("form", name="Start a run")
    form.get_by_label("Topic").fill(f"{REVISE_ONCE} started from the form")
    form.get_by_role("button", name="Start critique-revise").click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[^/]+$"))
    wid = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("status").first).to_contain_text(f"Started run {wid}")
    expect(page.locator(".topic")).to_contain_text("started from the form")
    # The page follows the run to its end without a reload.
    expect(page.locator("#run-title .state")).to_have_text("completed")
    expect(page.locator("#round-1").get_by_role("heading")).to_contain_text("Revision 1")
    run = logged_in.server.wait_state(wid, "completed")
    assert isinstance(run["input"], dict)
    assert run["input"]["topic"] == f"{REVISE_ONCE} started from the form"


def test_a_bad_input_is_refused_naming_the_field(logged_in: Browsing) -> None:
    page = logged_in.page
    page.goto("/ui/definitions")
    form = page.locator("#def-critique-revise").get_by_role("form", name="Start a run")
    form.get_by_label("Topic").fill("a run with a bad budget")
    form.get_by_label("Budget Usd").fill("plenty")
    form.get_by_role("button", name="Start critique-revise").click()
    expect(page).to_have_url(re.compile(r"/ui/definitions"))
    form = page.locator("#def-critique-revise").get_by_role("form", name="Start a run")
    budget = form.get_by_label("Budget Usd")
    expect(budget).to_have_attribute("aria-invalid", "true")
    expect(budget).to_have_value("plenty")  # what was typed is kept
    expect(form.locator(".field-error")).to_contain_text("budget_usd")
    expect(form.get_by_label("Topic")).to_have_value("a run with a bad budget")


def test_a_run_started_from_the_json_box_alone(logged_in: Browsing) -> None:
    # The JSON box is used instead of the fields: the empty required Topic must not block it.
    page = logged_in.page
    page.goto("/ui/definitions")
    form = page.locator("#def-critique-revise").get_by_role("form", name="Start a run")
    form.locator("summary", has_text="Or give the whole input as JSON").click()
    form.get_by_label("Input (a JSON object").fill('{"topic": "started from the JSON box"}')
    form.get_by_role("button", name="Start critique-revise").click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[^/]+$"))
    wid = page.url.rsplit("/", 1)[1]
    run = logged_in.server.wait_state(wid, "completed")
    assert isinstance(run["input"], dict)
    assert run["input"]["topic"] == "started from the JSON box"
