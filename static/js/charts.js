// History charts (templates/alerts/charts.html): uPlot over the data the partial carries,
// then each new point the metrics socket swaps into #metrics-point.
(function () {
  "use strict";
  const SERIES = {
    // Reachability first: drawn beneath, it would hide a CPU at 100 %.
    machine: [
      ["reachable", "Reachable %", "#dc2626", "%"],
      ["cpu", "CPU %", "#2563eb", "%"],
      ["memory", "Memory %", "#16a34a", "%"],
      ["disk", "Disk %", "#d97706", "%"],
      ["load", "Load", "#7c3aed", "load"],
    ],
    container: [
      ["healthy", "Healthy %", "#0d9488", "%"],
      ["cpu", "CPU %", "#2563eb", "%"],
      ["memory", "Memory MiB", "#16a34a", "MiB"],
      ["restarts", "Restarts", "#dc2626", "n"],
    ],
  };
  // 0/1 means are drawn as percentages, beside CPU and memory.
  const PERCENT_OF_ONE = new Set(["reachable", "healthy"]);
  const SPAN = { "1h": 3600, "24h": 86400, "7d": 604800, "30d": 2592000 };

  function columns(data, kind) {
    const cols = [data.t || []];
    for (const [key] of SERIES[kind]) {
      const values = data[key] || cols[0].map(() => null);
      cols.push(PERCENT_OF_ONE.has(key) ? values.map((v) => (v == null ? null : v * 100)) : values);
    }
    return cols;
  }

  function draw(el) {
    if (el.uplot || !window.uPlot) return;
    const kind = el.dataset.kind;
    const data = JSON.parse(el.querySelector("script[type='application/json']").textContent);
    const units = [...new Set(SERIES[kind].map((s) => s[3]))];
    const opts = {
      width: Math.max(el.clientWidth, 320),
      height: 220,
      series: [
        {},
        ...SERIES[kind].map(([key, label, stroke, scale]) => ({
          label,
          stroke,
          scale,
          width: PERCENT_OF_ONE.has(key) ? 1 : 2,
          dash: PERCENT_OF_ONE.has(key) ? [4, 4] : undefined,
        })),
      ],
      axes: [{}, ...units.slice(0, 2).map((u, i) => ({ scale: u, side: i ? 1 : 3, label: u, grid: { show: i === 0 } }))],
      scales: { "%": { range: [0, 100] } },
    };
    el.cols = columns(data, kind);
    el.uplot = new uPlot(opts, el.cols, el);
    el.dataset.points = el.cols[0].length;
  }

  function append(el, point) {
    if (!el.uplot) return;
    const cols = el.cols;
    const last = cols[0][cols[0].length - 1];
    if (last !== undefined && point.t <= last) return; // two sockets, one point
    cols[0].push(point.t);
    SERIES[el.dataset.kind].forEach(([key], i) => {
      const v = point[key];
      cols[i + 1].push(v == null ? null : PERCENT_OF_ONE.has(key) ? v * 100 : v);
    });
    // Keep the window: drop what fell out of the chosen range.
    const from = point.t - (SPAN[el.dataset.span] || 86400);
    while (cols[0].length && cols[0][0] < from) cols.forEach((c) => c.shift());
    el.uplot.setData(cols);
    el.dataset.points = cols[0].length;
    const empty = el.querySelector(".chart-empty");
    if (empty) empty.hidden = true;
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", () => drawAll());
  document.addEventListener("htmx:afterSettle", (e) => drawAll(e.detail.elt.parentNode || document));
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    const sink = document.getElementById("metrics-point");
    if (!sink || !sink.dataset.point) return;
    const point = JSON.parse(sink.dataset.point);
    document.querySelectorAll("[data-chart]").forEach((el) => {
      if (el.dataset.container === sink.dataset.container) append(el, point);
    });
  });
})();
