// lodestone console, administration: the copy button of a secret shown once, and a confirmation step before a
// form that revokes, deletes or disables. Without it, secrets can be selected by hand and forms post directly.
(function () {
  "use strict";

  // copyText uses the Clipboard API where the page is a secure context (HTTPS or localhost); elsewhere it selects
  // the text and asks the browser to copy the selection.
  function copyText(el) {
    var text = el.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var range = document.createRange(), sel = window.getSelection();
    range.selectNodeContents(el);
    sel.removeAllRanges();
    sel.addRange(range);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest("button[data-copy]") : null;
    if (!btn) return;
    var el = document.getElementById(btn.getAttribute("data-copy"));
    var state = btn.parentNode.querySelector(".copy-state");
    if (!el) return;
    copyText(el).then(function () {
      btn.textContent = "Copied";
      if (state) state.textContent = "Copied to the clipboard.";
    }, function () {
      if (state) state.textContent = "Copying was refused: the text is selected, press Ctrl+C (⌘C).";
    });
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target, msg = form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
})();
