// The run page, live: while the run is unfinished, each server-sent event of
// GET /workflows/{id}/events (a step attempt, a verdict, a revision, a signal, a wait, a
// state) fetches the page's main part again (/ui/runs/{id}/fragment, server-rendered) and
// swaps it in, keeping what is typed, which <details> are open and where the focus is.
// Without JavaScript the page is complete and a reload shows the news.
"use strict";

(function () {
  const box = document.getElementById("run-live");
  if (!box || box.dataset.live !== "on" || !window.EventSource) {
    return;
  }
  const status = document.getElementById("run-live-status");
  const KINDS = ["step", "verdict", "revision", "signal", "waiting", "state"];
  let timer = null;
  let running = false;
  let again = false;

  function busy() {
    const dialog = document.getElementById("confirm-dialog");
    return dialog && dialog.open;
  }

  function schedule() {
    if (timer === null) {
      timer = window.setTimeout(refresh, 250);
    }
  }

  async function refresh() {
    timer = null;
    if (running || busy()) {
      again = true;
      window.setTimeout(schedule, 1000);
      return;
    }
    running = true;
    try {
      const response = await fetch(box.dataset.fragment, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.ok && !response.redirected) {
        swap(await response.text());
      }
    } catch (err) {
      // the server is away: the next event tries again
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }

  function swap(html) {
    const before = box.querySelector(".run-head");
    const focusedId = box.contains(document.activeElement) ? document.activeElement.id : "";
    const typed = new Map();
    for (const field of box.querySelectorAll("textarea[id], input[type=text][id]")) {
      typed.set(field.id, field.value);
    }
    const open = new Map();
    for (const details of box.querySelectorAll("details[id]")) {
      open.set(details.id, details.open);
    }
    box.innerHTML = html;
    for (const [id, value] of typed) {
      const field = document.getElementById(id);
      if (field && box.contains(field)) {
        field.value = value;
      }
    }
    for (const [id, isOpen] of open) {
      const details = document.getElementById(id);
      if (details && box.contains(details)) {
        details.open = isOpen;
      }
    }
    if (focusedId) {
      const again = document.getElementById(focusedId);
      if (again) {
        again.focus();
      }
    }
    const after = box.querySelector(".run-head");
    if (status && after && (!before || before.dataset.state !== after.dataset.state)) {
      status.textContent = "The run is now " + after.dataset.state.replace(/_/g, " ") + ".";
    }
  }

  const source = new EventSource(box.dataset.events);
  for (const kind of KINDS) {
    source.addEventListener(kind, schedule);
  }
  source.addEventListener("end", function () {
    source.close(); // the run ended: no reconnection
    box.dataset.live = "off";
    schedule();
  });
})();
