// lodestone console, updates pages: upload progress for firmware and ELF files (the form still works without this
// script; it posts the same multipart form), and live campaign pages: on a campaign event from the server's
// stream, the page fetches itself again and swaps in the parts marked data-upd-live. The new parts are the
// server's own escaped template output, parsed by DOMParser (which runs no script) — never event data as HTML.
(function () {
  "use strict";

  function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }

  function upload(form) {
    var file = form.querySelector("input[type=file]"), bar = form.querySelector("progress"),
      text = form.querySelector("[aria-live]"), button = form.querySelector("button[type=submit]"),
      max = Number(form.getAttribute("data-max") || 0);
    form.addEventListener("submit", function (ev) {
      if (!window.XMLHttpRequest || !window.FormData) return; // the plain form post does the same, without progress
      ev.preventDefault();
      var f = file.files && file.files[0];
      if (!f) { text.textContent = "Choose a file first."; return; }
      if (max && f.size > max) { text.textContent = "The file is " + mib(f.size) + ", over the " + mib(max) + " limit."; return; }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action"));
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.floor(e.loaded * 100 / e.total);
        bar.value = pct;
        text.textContent = "Uploading: " + mib(e.loaded) + " of " + mib(e.total) + " (" + pct + "%)";
      };
      xhr.upload.onload = function () { text.textContent = "Uploaded; the server is checking and storing it…"; };
      xhr.onload = function () {
        var to = null;
        try { to = JSON.parse(xhr.responseText).location; } catch (err) { to = null; }
        if (xhr.status === 200 && to && to.indexOf("/ui/") === 0) {
          form.setAttribute("data-uploaded", "1");
          // The same page again (perhaps another #fragment) would only scroll: load it anew to show the outcome.
          if (to.split("#")[0] === location.pathname + location.search) location.reload(); else location.assign(to);
          return;
        }
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html"), msg = doc.querySelector("main p");
        text.textContent = "Not uploaded (" + xhr.status + "): " + (msg ? msg.textContent : "the server refused it");
        button.disabled = false;
        bar.hidden = true;
      };
      xhr.onerror = function () {
        text.textContent = "The upload was interrupted (network error). Try again.";
        button.disabled = false;
        bar.hidden = true;
      };
      bar.hidden = false;
      bar.value = 0;
      button.disabled = true;
      text.textContent = "Uploading…";
      xhr.send(new FormData(form));
    });
  }

  // refresh fetches the page again and swaps in its live parts; one at a time, the last request wins.
  var busy = false, again = false, refreshed = 0;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-upd-live][id]").forEach(function (el) {
        var fresh = doc.getElementById(el.id);
        if (fresh) el.replaceWith(document.importNode(fresh, true));
      });
      refreshed++;
      document.body.setAttribute("data-upd-refreshed", String(refreshed));
      if (window.lodestoneCharts) window.lodestoneCharts.changed("", "campaign");
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; setTimeout(refresh, 300); }
    });
  }

  function follow(root) {
    var what = root.getAttribute("data-upd-follow"), id = null, state = document.getElementById("upd-live-state");
    if (what.indexOf("campaign:") === 0) id = Number(what.slice(9));
    if (state) state.textContent = "Connecting to the live stream…";
    var es = new EventSource("/ui/events");
    es.onopen = function () { if (state) state.textContent = "Live: this page updates as devices report."; };
    es.onerror = function () { if (state) state.textContent = "Reconnecting to the live stream…"; };
    es.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (e.type !== "ota_campaign" && e.type !== "ota_progress" && e.type !== "ota_campaign_halted") return;
      if (id !== null && e.data && e.data.campaign_id !== undefined && e.data.campaign_id !== id) return;
      refresh();
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(upload);
    var root = document.querySelector("[data-upd-follow]");
    if (root && window.EventSource && window.fetch && window.DOMParser) follow(root);
  });
})();
