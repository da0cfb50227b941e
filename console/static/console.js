// lodestone console: relative times and live updates from the server's event stream (EventSource, no polling).
// Pages work without it; it only adds what arrives after the page loaded. Data is inserted as text, never HTML.
(function () {
  "use strict";

  function ago(t) {
    var s = (Date.now() - t.getTime()) / 1000;
    if (s < 0) return "just now";
    if (s < 60) return Math.floor(s) + "s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 172800) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " days ago";
  }
  function exact(t) { return t.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"); }
  function timeEl(iso) {
    var t = new Date(iso), el = document.createElement("time");
    el.dateTime = t.toISOString();
    el.title = exact(t);
    el.textContent = ago(t);
    return el;
  }
  function refreshTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var t = new Date(el.getAttribute("datetime"));
      if (!isNaN(t) && t.getFullYear() > 1970) el.textContent = ago(t);
    });
  }
  setInterval(refreshTimes, 15000);

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }
  function cell(tr, content) {
    var td = document.createElement("td");
    if (typeof content === "string") td.textContent = content; else if (content) td.appendChild(content);
    tr.appendChild(td);
  }
  var faultTypes = ["HardFault", "MemManage", "BusFault", "UsageFault"];
  var devURL = function (id) { return "/ui/devices/" + encodeURIComponent(id); };

  function describe(e) {
    var d = e.data || {};
    switch (e.type) {
      case "fault": return (faultTypes[d.fault_type] || "fault") + " at " + d.pc;
      case "metric": return d.key + " = " + d.value;
      case "heartbeat": return "uptime " + d.uptime_ticks + " ticks";
      case "reboot": return "reason " + d.reason;
      case "device_online": return "came online";
      case "device_offline": return "went offline";
      case "ota_progress": return "update " + d.status;
    }
    return e.type;
  }

  function addFeed(list, e) {
    var li = document.createElement("li"), kind = document.createElement("span");
    li.className = "new";
    kind.className = "kind";
    kind.textContent = e.type.replace("_", " ");
    li.appendChild(kind);
    li.appendChild(link(devURL(e.device_id), e.device_id));
    li.appendChild(document.createTextNode(" " + describe(e) + " · "));
    li.appendChild(timeEl(e.time));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  // addRow prepends an event to a table, filling the columns its header names.
  function addRow(table, e) {
    var tbody = table.tBodies[0], tr = document.createElement("tr"), d = e.data || {};
    tr.className = "new";
    table.querySelectorAll("thead th").forEach(function (th) {
      switch (th.textContent.trim()) {
        case "When": cell(tr, timeEl(e.time)); break;
        case "Device": cell(tr, link(devURL(e.device_id), e.device_id)); break;
        case "Type": cell(tr, faultTypes[d.fault_type] || String(d.fault_type)); break;
        case "PC": var c = document.createElement("code"); c.textContent = d.pc; cell(tr, c); break;
        case "Issue": cell(tr, "pending"); break;
        case "Uptime ticks": cell(tr, String(d.uptime_ticks)); break;
        default: cell(tr, "");
      }
    });
    tbody.insertBefore(tr, tbody.firstChild);
    var none = table.parentNode.querySelector(".none");
    if (none) none.remove();
  }

  // seen moves a device to the top of a recently-seen table, adding it when it is new.
  function seen(table, e) {
    if (!e.device_id || e.type === "device_offline") return;
    var tbody = table.tBodies[0], row = null;
    tbody.querySelectorAll("tr").forEach(function (tr) {
      var a = tr.querySelector("a");
      if (a && a.textContent === e.device_id) row = tr;
    });
    if (!row) {
      refreshTotals(); // perhaps a device never seen before
      row = document.createElement("tr");
      cell(row, link(devURL(e.device_id), e.device_id));
      var st = document.createElement("span");
      st.className = "status status-online";
      st.textContent = "online";
      cell(row, st);
      cell(row, (e.data && e.data.firmware_version) || "");
      cell(row, timeEl(e.time));
    } else {
      var last = row.lastElementChild;
      last.textContent = "";
      last.appendChild(timeEl(e.time));
    }
    row.className = "new";
    tbody.insertBefore(row, tbody.firstChild);
    var none = table.parentNode.querySelector(".none");
    if (none) none.remove();
  }

  // refreshTotals asks for the overview's device cards again after an event that can change them; several events
  // in a burst make one request.
  var totalsTimer = null;
  function refreshTotals() {
    if (!document.getElementById("total-devices") || totalsTimer || !window.fetch) return;
    totalsTimer = setTimeout(function () {
      totalsTimer = null;
      fetch("/ui/api/totals", { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.json() : null;
      }).then(function (t) {
        if (!t) return;
        document.getElementById("total-devices").textContent = String(t.devices);
        document.getElementById("total-online").textContent = String(t.online);
        document.getElementById("total-offline").textContent = String(t.offline);
      }).catch(function () {});
    }, 500);
  }

  function live(url) {
    var state = document.getElementById("live-state");
    if (state) state.textContent = "Connecting to the live stream…";
    var es = new EventSource(url);
    es.onopen = function () { if (state) state.textContent = "Live: new events appear here as they arrive."; };
    es.onerror = function () { if (state) state.textContent = "Reconnecting to the live stream…"; };
    es.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      if (e.type !== "metric" && e.device_id) { // campaign-wide events (ota_campaign) name no device
        document.querySelectorAll("[data-feed=all]").forEach(function (l) { addFeed(l, e); });
      }
      document.querySelectorAll("table[data-feed=device]").forEach(function (t) { seen(t, e); });
      document.querySelectorAll("table[data-feed]").forEach(function (t) {
        var dev = t.getAttribute("data-device");
        if (t.getAttribute("data-feed") === e.type && (!dev || dev === e.device_id)) addRow(t, e);
      });
      if (e.type === "device_online" || e.type === "device_offline") refreshTotals();
      if (e.type === "fault") {
        var n = document.getElementById("faults24");
        if (n && /^\d+$/.test(n.textContent)) n.textContent = String(Number(n.textContent) + 1);
      }
      if (e.type === "metric" && window.lodestoneCharts) window.lodestoneCharts.changed(e.device_id, e.data && e.data.key);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var url = document.body.getAttribute("data-live");
    if (url && window.EventSource) live(url);
  });
})();
