// The runs page, live: every few seconds the rows of this page (same filters, same cursor) are
// fetched again as server-rendered HTML (?partial=rows) and each row that changed is replaced in
// place. A row holding the keyboard focus, or an open confirmation, is left alone until later.
"use strict";

(function () {
  const table = document.getElementById("runs");
  if (!table || table.dataset.live !== "on") {
    return;
  }
  const INTERVAL_MS = 3000;
  const url = new URL(window.location.href);
  url.searchParams.set("partial", "rows");

  function busy() {
    const dialog = document.getElementById("confirm-dialog");
    return dialog && dialog.open;
  }

  async function refresh() {
    if (document.hidden || busy()) {
      return;
    }
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    } catch (err) {
      return; // the server is away; try again later
    }
    if (response.redirected || !response.ok) {
      return; // logged out or an error: leave the page as it is
    }
    const doc = new DOMParser().parseFromString("<table>" + (await response.text()) + "</table>", "text/html");
    const fresh = doc.getElementById("runs-body");
    const body = document.getElementById("runs-body");
    if (!fresh || !body) {
      return;
    }
    const focused = document.activeElement;
    const old = new Map();
    for (const row of body.querySelectorAll("tr[data-id]")) {
      old.set(row.dataset.id, row);
    }
    const freshRows = Array.from(fresh.querySelectorAll("tr[data-id]"));
    const sameSet = freshRows.length === old.size && freshRows.every((row) => old.has(row.dataset.id));
    if (!sameSet) {
      if (body.contains(focused)) {
        return;
      }
      body.replaceWith(document.adoptNode(fresh));
      return;
    }
    for (const row of freshRows) {
      const current = old.get(row.dataset.id);
      if (current.outerHTML !== row.outerHTML && !current.contains(focused)) {
        current.replaceWith(document.adoptNode(row));
      }
    }
  }

  window.setInterval(refresh, INTERVAL_MS);
})();
