"""The run page (``/ui/runs/{id}``) in headless Chromium: live updates, the revision diff, the
artifact's preview and download, revise-with-feedback then approve, and hostile text shown as
text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    REVISE_ONCE,
    REVISION_EXAMPLE,
    SLOW,
    XSS,
    XSS_REPLY,
    Browsing,
)

pytestmark = pytest.mark.browser


def test_a_run_completes_live_on_its_page(logged_in: Browsing) -> None:
    page = logged_in.page
    wid = logged_in.server.submit(f"{SLOW} live on its own page")
    page.goto(f"/ui/runs/{wid}")
    state = page.locator("#run-title .state")
    expect(state).to_have_text(re.compile(r"pending|running"))
    # No reload from here on: the page follows the run's events.
    expect(state).to_have_text("completed")
    expect(page.locator("#timeline svg")).to_be_visible()
    expect(page.locator("#artifacts").get_by_role("link", name=re.compile("^Download"))).to_be_visible()
    assert page.url.endswith(f"/ui/runs/{wid}")


def test_the_revision_diff_of_a_run_with_one_revision(logged_in: Browsing) -> None:
    page = logged_in.page
    wid = logged_in.server.submit(f"{REVISE_ONCE} diff me")
    logged_in.server.wait_state(wid, "completed")
    page.goto("/ui")
    page.get_by_role("link", name=wid).click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{wid}$"))
    first = page.locator("#round-0")
    expect(first.get_by_role("heading")).to_contain_text("First draft")
    expect(first.locator(".verdict")).to_contain_text("revise — add an example")
    revision = page.locator("#round-1")
    expect(revision.get_by_role("heading")).to_contain_text("Revision 1")
    expect(revision.locator(".asked")).to_contain_text("add an example")
    added = " ".join(revision.locator(".diff ins").all_text_contents())
    removed = " ".join(revision.locator(".diff del").all_text_contents())
    assert "worked case" in added, added
    assert removed.strip() == "", removed
    expect(revision.locator(".verdict")).to_contain_text("pass")
    expect(page.locator("#run-title .state")).to_have_text("completed")
    logged_in.shot("run-detail")


def test_download_the_artifact_and_see_its_preview(logged_in: Browsing) -> None:
    page = logged_in.page
    server = logged_in.server
    wid = server.submit("an artifact to download")
    server.wait_state(wid, "completed")
    with server.api() as api:
        (artifact,) = api.get(f"/workflows/{wid}/artifacts").json()
        expected = api.get(f"/workflows/{wid}/artifacts/{artifact['id']}").text
    page.goto(f"/ui/runs/{wid}")
    section = page.locator(f"#artifact-{artifact['id']}")
    expect(section.locator(".preview")).to_contain_text("Draft about an artifact to download.")
    with page.expect_download() as download_info:
        section.get_by_role("link", name=f"Download {artifact['name']}").click()
    download = download_info.value
    saved = Path(download.path())
    assert saved.read_text(encoding="utf-8") == expected
    assert download.suggested_filename


def test_revise_with_feedback_then_approve(logged_in: Browsing) -> None:
    page = logged_in.page
    server = logged_in.server
    wid = server.submit("send back once, then approve", approval=True)
    server.wait_state(wid, "waiting_for_revision")
    page.goto(f"/ui/runs/{wid}")
    head = page.locator(".run-head")
    head.get_by_label("Feedback for the revision").fill("Please add a worked example.")
    head.get_by_role("button", name="Revise").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("back for revision")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status").first).to_contain_text(wid)
    # The run revises (the fake model adds an example), passes critique and waits again.
    expect(page.locator("#round-1 .asked")).to_contain_text("Please add a worked example.")
    expect(page.locator("#run-title .state")).to_have_text("waiting for revision")
    page.locator(".run-head").get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator("#run-title .state")).to_have_text("completed")
    assert server.wait_state(wid, "completed")["revision_count"] == 1
    assert REVISION_EXAMPLE in page.locator("#artifacts .preview").inner_text()


def test_hostile_text_in_a_topic_and_a_model_reply_is_shown_as_text(logged_in: Browsing) -> None:
    page = logged_in.page
    topic = f"{XSS} {XSS_REPLY}"
    wid = logged_in.server.submit(topic)
    logged_in.server.wait_state(wid, "completed")
    for path in ("/ui", f"/ui/runs/{wid}", "/ui?partial=rows"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.locator("img[src='x']").count() == 0, path
        scripts = page.locator("script").evaluate_all("els => els.map(e => e.src || e.textContent)")
        assert not [s for s in scripts if "alert" in s], (path, scripts)
    page.goto("/ui")
    expect(page.locator(f'tr[data-id="{wid}"]')).to_contain_text('<img src=x onerror="alert(1)">')
    page.goto(f"/ui/runs/{wid}")
    expect(page.locator(".topic")).to_contain_text(topic)
    # The model's reply, in the draft and in the rendered Markdown of the artifact.
    expect(page.locator("#round-0 .draft").first).to_contain_text(XSS)
    expect(page.locator("#artifacts .preview")).to_contain_text("<script>alert(2)</script>")
    assert logged_in.dialogs == []
    logged_in.shot("run-detail-hostile-text")


def test_run_again_with_the_same_input(logged_in: Browsing) -> None:
    page = logged_in.page
    server = logged_in.server
    first = server.submit("run me again")
    server.wait_state(first, "completed")
    page.goto(f"/ui/runs/{first}")
    page.locator(".run-head").get_by_role("button", name="Run again").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"the same input as {first}")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page).not_to_have_url(re.compile(rf"/ui/runs/{first}$"))
    expect(page).to_have_url(re.compile(r"/ui/runs/[^/]+$"))
    again = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run-title .state")).to_have_text("completed")
    expect(page.locator(".topic")).to_contain_text("run me again")
    with server.api() as api:
        assert api.get(f"/workflows/{again}").json()["input"] == api.get(f"/workflows/{first}").json()["input"]
