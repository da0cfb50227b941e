// lodestone console: the log explorer's live tail. The page lists the query's records; this adds those stored
// after it was drawn, from /ui/logs/tail (Server-Sent Events, the server follows the store by id), and pauses
// and resumes that. Records are inserted as text, never HTML.
(function () {
  "use strict";
  var maxRows = 1000;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function exact(iso) {
    var t = new Date(iso);
    return isNaN(t) ? iso : t.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // row builds what the page's template draws for a record.
  function row(r) {
    var li = el("li", "rec new " + r.sev_class), det = el("details"), sum = el("summary");
    li.setAttribute("data-id", String(r.id));
    var t = el("time", "", r.time_text);
    t.dateTime = r.time;
    sum.appendChild(t);
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("span", "sev " + r.sev_class, r.severity));
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("span", "src", r.device_id));
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("span", "body", r.body));
    det.appendChild(sum);
    var dl = el("dl", "attrs");
    function pair(k, v, cls) {
      var dt = el("dt", cls || "", k), dd = el("dd", cls || "");
      if (typeof v === "string") dd.textContent = v; else dd.appendChild(v);
      dl.appendChild(dt);
      dl.appendChild(dd);
    }
    pair("Project", r.project);
    var a = el("a", "", r.device_id);
    a.href = "/ui/logs?device=" + encodeURIComponent(r.device_id);
    pair("Device", a);
    pair("Severity", r.severity + (r.severity_text ? " (" + r.severity_text + ")" : ""));
    pair("Observed", exact(r.observed_time));
    pair("Received", exact(r.received_at));
    if (r.event_name) pair("Event", r.event_name);
    if (r.trace_id) pair("Trace", el("code", "", r.trace_id));
    if (r.span_id) pair("Span", el("code", "", r.span_id));
    (r.attributes || []).forEach(function (kv) { pair(kv[0], kv[1], "attr"); });
    det.appendChild(dl);
    det.appendChild(el("pre", "fullbody", r.body));
    li.appendChild(det);
    return li;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("log-list");
    var url = list && list.getAttribute("data-tail");
    var btn = document.getElementById("tail-toggle"), state = document.getElementById("tail-state");
    if (!url || !window.EventSource || !btn) return;
    var es = null, cursor = null, received = 0, shown = {};
    // A resumed tail starts from the last settled id, so it may send again what is on the page: each id once.
    list.querySelectorAll("li[data-id]").forEach(function (li) { shown[li.getAttribute("data-id")] = true; });

    function say(s) { state.textContent = s; }
    function add(msg) {
      // Rows come oldest first; each goes on top, so the newest ends first as on the page.
      (msg.rows || []).forEach(function (r) {
        if (shown[r.id]) return;
        shown[r.id] = true;
        list.insertBefore(row(r), list.firstChild);
        received++;
      });
      while (list.children.length > maxRows) {
        delete shown[list.lastChild.getAttribute("data-id")];
        list.removeChild(list.lastChild);
      }
      var none = document.getElementById("log-none");
      if (none) none.remove();
      var s = "Live: " + received + " new record" + (received === 1 ? "" : "s") + " since the page loaded.";
      if (msg.skipped) s += " " + msg.skipped + " more arrived too fast to show; narrow the query.";
      say(s);
    }
    function open() {
      var u = url;
      if (cursor !== null) u = u.replace(/([?&])after=\d+/, "$1after=" + cursor);
      say("Connecting to the live tail…");
      es = new EventSource(u);
      es.onopen = function () { say("Live: new records appear at the top as they arrive."); };
      es.onerror = function () { if (es && es.readyState !== EventSource.CLOSED) say("Reconnecting to the live tail…"); };
      es.addEventListener("logs", function (m) {
        var msg;
        try { msg = JSON.parse(m.data); } catch (err) { return; }
        if (m.lastEventId) cursor = m.lastEventId;
        add(msg);
      });
    }
    btn.hidden = false;
    btn.addEventListener("click", function () {
      if (es) {
        es.close();
        es = null;
        btn.textContent = "Resume";
        btn.setAttribute("aria-pressed", "true");
        list.setAttribute("data-paused", "");
        say("Paused: new records wait until you resume.");
      } else {
        btn.textContent = "Pause";
        btn.setAttribute("aria-pressed", "false");
        list.removeAttribute("data-paused");
        open();
      }
    });
    open();
  });
})();
