// lodestone console charts: draws the buckets the console's series endpoint returns (never raw points) as SVG.
// One line per device (the bucket average), or for the fleet a min–max band around the average.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg", W = 960, H = 260, L = 64, R = 12, T = 10, B = 26;

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) {
    var a = Math.abs(v);
    if (a >= 1e6 || (a > 0 && a < 1e-3)) return v.toExponential(2);
    return String(Math.round(v * 1000) / 1000);
  }
  function clock(ms, span) {
    var d = new Date(ms);
    if (span > 2 * 86400000) return (d.getMonth() + 1) + "/" + d.getDate();
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function draw(fig, data) {
    var old = fig.querySelector(".plot");
    if (old) old.remove();
    var box = document.createElement("div");
    box.className = "plot";
    fig.appendChild(box);
    var series = data.series || [], lo = Infinity, hi = -Infinity, n = 0, fleet = false;
    series.forEach(function (s) {
      if (!s.device_id) fleet = true;
      s.buckets.forEach(function (b) {
        var mn = fleet ? b[2] : b[4], mx = fleet ? b[3] : b[4];
        if (mn !== null && mn < lo) lo = mn;
        if (mx !== null && mx > hi) hi = mx;
        n++;
      });
    });
    if (!n) {
      var p = document.createElement("p");
      p.className = "hint";
      p.textContent = "No samples in this range.";
      box.appendChild(p);
      return;
    }
    if (lo === hi) { lo -= 1; hi += 1; }
    var x = function (t) { return L + (t - data.from) / (data.to - data.from) * (W - L - R); };
    var y = function (v) { return T + (hi - v) / (hi - lo) * (H - T - B); };
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": (fig.getAttribute("data-title") || "metric") + ": " + n + " buckets from " + fmt(lo) + " to " + fmt(hi)});
    box.appendChild(svg);
    el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, "class": "axis"}, svg);
    el("line", {x1: L, y1: T, x2: L, y2: H - B, "class": "axis"}, svg);
    [hi, (hi + lo) / 2, lo].forEach(function (v) {
      el("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, svg).textContent = fmt(v);
    });
    var span = data.to - data.from;
    [0, 0.5, 1].forEach(function (f) {
      var t = data.from + f * span;
      el("text", {x: x(t), y: H - 8, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle"}, svg).textContent = clock(t, span);
    });
    var legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach(function (s, i) {
      var cls = "s" + (i % 5), pts = [], up = [], down = [];
      s.buckets.forEach(function (b) {
        var cx = x(b[0] + s.step_ms / 2);
        if (b[4] !== null) pts.push(cx.toFixed(1) + "," + y(b[4]).toFixed(1));
        if (!s.device_id && b[2] !== null && b[3] !== null) {
          up.push(cx.toFixed(1) + "," + y(b[3]).toFixed(1));
          down.unshift(cx.toFixed(1) + "," + y(b[2]).toFixed(1));
        }
      });
      if (up.length) el("polygon", {points: up.concat(down).join(" "), "class": "band " + cls}, svg);
      if (pts.length === 1) {
        var p0 = pts[0].split(",");
        el("circle", {cx: p0[0], cy: p0[1], r: 3, "class": cls}, svg);
      } else {
        el("polyline", {points: pts.join(" "), "class": "line " + cls}, svg);
      }
      var li = document.createElement("li"), sw = document.createElement("span");
      sw.className = "swatch " + cls;
      li.appendChild(sw);
      var last = s.buckets.length ? s.buckets[s.buckets.length - 1][5] : null;
      li.appendChild(document.createTextNode((s.device_id || "fleet (min–max, avg)") +
        (last !== null ? " · last " + fmt(last) : "")));
      legend.appendChild(li);
    });
    box.appendChild(legend);
    fig.setAttribute("data-drawn", String(n));
  }

  function load(fig) {
    fetch(fig.getAttribute("data-series"), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, j: j}; }); })
      .then(function (res) {
        if (!res.ok) throw new Error(res.j.error || "the chart's data could not be loaded");
        draw(fig, res.j);
      })
      .catch(function (err) {
        var p = fig.querySelector(".plot") || document.createElement("p");
        p.className = "plot error-text";
        p.textContent = err.message;
        fig.appendChild(p);
      });
  }

  var pending = {};
  // changed redraws a device's chart for key at most every few seconds while samples arrive live.
  function changed(device, key) {
    document.querySelectorAll("figure.chart[data-series]").forEach(function (fig) {
      var u = new URL(fig.getAttribute("data-series"), location.href);
      if (u.searchParams.get("key") !== key) return;
      var devs = (u.searchParams.get("device") || "").split(",");
      if (u.searchParams.get("fleet") !== "1" && devs.indexOf(device) < 0) return;
      if (pending[u.href]) return;
      pending[u.href] = setTimeout(function () { delete pending[u.href]; load(fig); }, 3000);
    });
  }
  window.lodestoneCharts = {changed: changed};

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("figure.chart[data-series]").forEach(load);
  });
})();
