// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="ID" hidden>: shown only when JavaScript runs,
  // they copy the value of the input they name and say so.
  function setUpCopy(button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copy);
      if (!input) return;
      var status = document.getElementById(button.dataset.copy + "-status");
      function done(text) { if (status) status.textContent = text; }
      input.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { done("Copied."); },
          function () { done("Selected: press Ctrl+C (or \u2318C) to copy."); }
        );
      } else {
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok ? "Copied." : "Selected: press Ctrl+C (or \u2318C) to copy.");
      }
    });
  }

  // The top three on a phone: collapsed to its heading line at first, so the
  // questions keep the screen; a tap opens it. Wide screens keep it open.
  function collapseOnPhone() {
    var box = document.getElementById("preview-box");
    if (box && window.matchMedia("(max-width: 59.99rem)").matches) box.open = false;
  }

  // After a refused submit, move the focus to the summary of what needs fixing,
  // so keyboard and screen-reader users start there.
  function focusErrors() {
    var summary = document.getElementById("form-errors");
    if (summary) summary.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-copy]").forEach(setUpCopy);
    collapseOnPhone();
    focusErrors();
  });
})();
