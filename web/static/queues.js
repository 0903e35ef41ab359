// The live queue page: numbers, charts, window switch, filters, sort, countdowns.
// Rows arrive as HTML over the socket (htmx ws extension swaps them by id), only
// when their look changes; the numbers arrive as JSON inside the summary, only
// the queues whose numbers moved (web/console/queue_frames.py), and are put
// into the rows and charts here. Chart history comes as plain JSON messages.
(function () {
  "use strict";

  var section, socket = null, totalChart = null, queueChart = null, openQueue = null;
  // Per queue id: [pending, then inbound, attempted, outbound counts of each window].
  var numbers = {};
  var totalPoints = [];   // [[t, numbers of all queues together]]
  var queuePoints = [];   // [[t, numbers]] of the open queue
  var windows = [];       // the window sizes in the order of the counts
  var MAX_POINTS = 120;
  var SERIES = [
    { label: "Inbound", stroke: "#2563eb" },
    { label: "Attempted", stroke: "#f59e0b" },
    { label: "Outbound", stroke: "#16a34a" }
  ];

  function windowSize() { return section.getAttribute("data-window"); }

  // The picked window's rates (per second) in a numbers array: [in, att, out].
  function ratesOf(counts) {
    var w = windowSize(), at = 1 + 3 * windows.indexOf(w);
    return [counts[at] / w, counts[at + 1] / w, counts[at + 2] / w];
  }

  function chartOptions(el) {
    return {
      width: Math.max(280, el.clientWidth),
      height: 200,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.15)]; } } },
      axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return v + "/s"; }); }, size: 56 }],
      series: [{}].concat(SERIES.map(function (s) {
        return { label: s.label, stroke: s.stroke, width: 2, value: function (u, v) { return v == null ? "–" : v.toFixed(1) + "/s"; } };
      }))
    };
  }

  function columns(points) {
    var data = [[], [], [], []];
    points.forEach(function (p) {
      var r = ratesOf(p[1]);
      data[0].push(p[0] / 1000);
      for (var i = 0; i < 3; i++) data[i + 1].push(r[i]);
    });
    return data;
  }

  function drawTotal() {
    var el = document.getElementById("total-chart");
    if (!el || typeof uPlot === "undefined") return;
    var data = columns(totalPoints);
    if (!totalChart) totalChart = new uPlot(chartOptions(el), data, el);
    else totalChart.setData(data);
  }

  function drawQueue() {
    var el = document.getElementById("queue-chart");
    if (!openQueue || !el || typeof uPlot === "undefined") return;
    var data = columns(queuePoints);
    if (!queueChart) queueChart = new uPlot(chartOptions(el), data, el);
    else queueChart.setData(data);
  }

  // A tick's numbers ride in the summary as JSON in a <template>: taken once, then removed.
  function takeNumbers() {
    var block = section.querySelector("#queue-summary template.numbers");
    if (!block) return;
    block.remove();
    var msg = JSON.parse(block.content.textContent);
    // The full state after (re)connecting, else what moved since the last tick.
    if (msg.full) numbers = msg.q;
    else {
      Object.keys(msg.q).forEach(function (id) { numbers[id] = msg.q[id]; });
      (msg.gone || []).forEach(function (id) { delete numbers[id]; });
    }
    totalPoints.push([msg.t, msg.total]);
    if (totalPoints.length > MAX_POINTS) totalPoints.shift();
    drawTotal();
    if (openQueue && numbers[openQueue]) {
      queuePoints.push([msg.t, numbers[openQueue]]);
      if (queuePoints.length > MAX_POINTS) queuePoints.shift();
      drawQueue();
    }
    section.setAttribute("data-tick", String(msg.t));
  }

  function onJson(msg) {
    if (msg.type === "history") {
      totalPoints = msg.points.slice(-MAX_POINTS);
      drawTotal();
    } else if (msg.type === "queue_history" && msg.queue === openQueue) {
      queuePoints = msg.points;
      drawQueue();
    } else if (msg.type === "error") {
      var live = document.getElementById("live");
      live.textContent = msg.message + ": reload the page";
      live.setAttribute("data-state", "closed");
    }
  }

  function openChart(button) {
    var row = button.closest("tbody.queue");
    openQueue = row.id;
    queuePoints = [];
    document.getElementById("queue-chart-name").textContent =
      row.getAttribute("data-user") + " \u2192 " + row.getAttribute("data-domain");
    document.getElementById("queue-chart-card").hidden = false;
    if (queueChart) { queueChart.destroy(); queueChart = null; }
    drawQueue();
    if (socket) socket.send(JSON.stringify({ action: "history", queue: openQueue }));
  }

  function closeChart() {
    openQueue = null;
    document.getElementById("queue-chart-card").hidden = true;
    if (queueChart) { queueChart.destroy(); queueChart = null; }
  }

  // As the server writes them (web/console/templating.py `rate`).
  function formatRate(v) {
    if (!v) return "0";
    if (v < 10) return String(Math.round(v * 10) / 10);
    return Math.round(v).toLocaleString("en-US");
  }

  function rates(row) {
    var q = numbers[row.id];
    return q ? ratesOf(q) : null;
  }

  function pending(row) {
    var q = numbers[row.id];
    return q ? q[0] : 0;
  }

  // The rows leave their numbers to us: pending, and the rates of the picked window.
  function fillNumbers() {
    section.querySelectorAll("tbody.queue").forEach(function (row) {
      var r = rates(row);
      if (!r) return;
      row.querySelector("td.pen").textContent = pending(row).toLocaleString("en-US");
      ["inb", "att", "out"].forEach(function (kind, i) {
        var cell = row.querySelector("td." + kind);
        var unit = document.createElement("span");
        unit.className = "unit";
        unit.textContent = "/s";
        cell.textContent = formatRate(r[i]);
        cell.appendChild(unit);
      });
    });
  }

  function rate(row, i) { var r = rates(row); return r ? r[i] : 0; }

  function arrange() {
    var table = section.querySelector(".queues-table");
    if (!table) return;
    var user = document.getElementById("filter-user").value;
    var domain = document.getElementById("filter-domain").value.trim().toLowerCase();
    var sort = document.getElementById("sort").value;
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody.queue"));
    rows.forEach(function (row) {
      var show = (!user || row.getAttribute("data-user") === user) &&
        (!domain || row.getAttribute("data-domain").indexOf(domain) >= 0);
      row.hidden = !show;
    });
    var key = {
      status: function (r) { return [r.classList.contains("paused") ? 0 : 1, -pending(r)]; },
      pending: function (r) { return [-pending(r)]; },
      outbound: function (r) { return [-rate(r, 2)]; },
      inbound: function (r) { return [-rate(r, 0)]; },
      domain: function (r) { return [r.getAttribute("data-domain"), r.getAttribute("data-user")]; }
    }[sort];
    rows.sort(function (a, b) {
      var ka = key(a), kb = key(b);
      for (var i = 0; i < ka.length; i++) {
        if (ka[i] < kb[i]) return -1;
        if (ka[i] > kb[i]) return 1;
      }
      return 0;
    });
    rows.forEach(function (row) { table.appendChild(row); });
    var shown = rows.filter(function (r) { return !r.hidden; }).length;
    var none = document.getElementById("no-match");
    if (none) none.hidden = shown > 0 || rows.length === 0;
    fillUsers(rows);
  }

  function fillUsers(rows) {
    var select = document.getElementById("filter-user");
    var known = {};
    Array.prototype.forEach.call(select.options, function (o) { known[o.value] = true; });
    rows.forEach(function (r) {
      var u = r.getAttribute("data-user");
      if (!known[u]) {
        known[u] = true;
        var o = document.createElement("option");
        o.value = u; o.textContent = u;
        select.appendChild(o);
      }
    });
  }

  function countdowns() {
    var now = Date.now();
    section.querySelectorAll("time.countdown[datetime]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("datetime")) - now) / 1000;
      var text = left >= 3600 ? window.mailpulse.duration(left)
        : (left >= 60 ? Math.floor(left / 60) + " min " : "") + Math.floor(left % 60) + " s";
      el.textContent = left > 1 ? "in " + text : "any moment now";
    });
  }

  function setWindow(w) {
    section.setAttribute("data-window", w);
    section.querySelectorAll(".window-label").forEach(function (el) { el.textContent = w; });
    var url = new URL(location.href);
    url.searchParams.set("window", w);
    history.replaceState(null, "", url);
    drawTotal();
    drawQueue();
    fillNumbers();
    arrange();
  }

  function setLive(state, text) {
    var live = document.getElementById("live");
    live.setAttribute("data-state", state);
    live.textContent = text;
  }

  document.addEventListener("DOMContentLoaded", function () {
    section = document.getElementById("queues");
    if (!section) return;
    section.querySelectorAll("input[name=window]").forEach(function (input) { windows.push(input.value); });
    section.addEventListener("htmx:wsOpen", function (e) {
      socket = e.detail.socketWrapper;
      setLive("open", "live");
    });
    section.addEventListener("htmx:wsClose", function (e) {
      socket = null;
      if (e.detail.event.code === 4401) { location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); return; }
      setLive("closed", "reconnecting…");
    });
    section.addEventListener("htmx:wsBeforeMessage", function (e) {
      var text = e.detail.message;
      if (typeof text === "string" && text.charAt(0) === "{") {
        e.preventDefault();
        onJson(JSON.parse(text));
      }
    });
    section.addEventListener("htmx:wsAfterMessage", function () {
      takeNumbers();
      fillNumbers();
      arrange();
      countdowns();
      window.mailpulse.refreshTimes(section);
    });
    section.addEventListener("change", function (e) {
      if (e.target.name === "window") setWindow(e.target.value);
      else if (e.target.id === "filter-user" || e.target.id === "sort") arrange();
    });
    document.getElementById("filter-domain").addEventListener("input", arrange);
    section.addEventListener("click", function (e) {
      var button = e.target.closest(".chart-btn");
      if (button) openChart(button);
      else if (e.target.id === "queue-chart-close") closeChart();
    });
    // Charts follow their card's width (window resizes, the queue chart opening beside).
    new ResizeObserver(function () {
      [[totalChart, "total-chart"], [queueChart, "queue-chart"]].forEach(function (c) {
        if (c[0]) c[0].setSize({ width: Math.max(280, document.getElementById(c[1]).clientWidth), height: 200 });
      });
    }).observe(section.querySelector(".charts"));
    arrange();
    countdowns();
    drawTotal();
    setInterval(countdowns, 1000);
  });
})();
