// ECL dashboard: progressive behaviour shared by every page. The pages work without it.
"use strict";

// Forms with data-confirm ask in a <dialog> before they submit. Without JavaScript the server
// answers such a form with a confirmation page instead (the form carries no "confirmed" field).
(function () {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog || typeof dialog.showModal !== "function") {
    return;
  }
  const text = document.getElementById("confirm-text");
  let pending = null;
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) {
      return;
    }
    event.preventDefault();
    pending = { form: form, submitter: event.submitter || null };
    text.textContent = form.dataset.confirm;
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-yes").focus();
  });
  dialog.addEventListener("close", function () {
    const chosen = pending;
    pending = null;
    if (!chosen || dialog.returnValue !== "confirm") {
      if (chosen && chosen.submitter) {
        chosen.submitter.focus();
      }
      return;
    }
    const confirmed = document.createElement("input");
    confirmed.type = "hidden";
    confirmed.name = "confirmed";
    confirmed.value = "yes";
    chosen.form.appendChild(confirmed);
    chosen.form.submit();
  });
})();

// <time datetime> elements are shown in UTC by the server; a title gives the local time.
(function () {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when.getTime())) {
      el.title = when.toLocaleString();
    }
  }
})();
