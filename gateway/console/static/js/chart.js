// Small SVG time-series charts: one point a minute, stacked bars and/or lines,
// a y axis with its unit, an x axis with clock times. No library.

import { svg } from "./format.js";

function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 8, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function hhmm(t) {
  return new Date(t * 1000).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false });
}

/**
 * Draw into `box` (a .chart element).
 * spec = {title, unit, format(v) -> label, times: [unix s], series: [{name, color, type: "bar"|"line",
 *         values: [number|null], dash?}], height?}
 */
export function drawChart(box, spec) {
  const { times, series, unit, format = String, height = 200, least = 0 } = spec;
  const width = Math.max(240, box.clientWidth - 20);
  const m = { left: 54, right: 10, top: 16, bottom: 20 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const n = times.length;
  const bars = series.filter((s) => s.type === "bar");
  const lines = series.filter((s) => s.type !== "bar");
  let max = 0;
  for (let i = 0; i < n; i++) {
    max = Math.max(max, bars.reduce((sum, s) => sum + (s.values[i] || 0), 0));
    for (const s of lines) if (s.values[i] !== null && s.values[i] !== undefined) max = Math.max(max, s.values[i]);
  }
  const top = niceCeiling(Math.max(max * 1.05, least));
  const x = (i) => m.left + (n ? (i / n) * w : 0);
  const y = (v) => m.top + h - (v / top) * h;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  root.setAttribute("aria-label", unit ? `${spec.title} (${unit})` : spec.title);
  // y axis: gridlines and labels, unit on top
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    root.append(svg("line", { x1: m.left, x2: m.left + w, y1: y(v), y2: y(v), class: "grid-line" }));
    const label = svg("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = format(v);
    root.append(label);
  }
  const unitLabel = svg("text", { x: 2, y: 10, "text-anchor": "start" });
  unitLabel.textContent = unit;
  root.append(unitLabel);
  // x axis: about five clock times
  const every = Math.max(1, Math.ceil(n / 5));
  for (let i = 0; i < n; i += every) {
    const label = svg("text", { x: x(i), y: height - 5, "text-anchor": i === 0 ? "start" : "middle" });
    label.textContent = hhmm(times[i]);
    root.append(label);
  }
  // bars, stacked
  const barWidth = Math.max(1, (w / Math.max(n, 1)) * 0.8);
  for (let i = 0; i < n; i++) {
    let base = 0;
    for (const s of bars) {
      const v = s.values[i] || 0;
      if (v > 0) {
        root.append(svg("rect", { x: x(i) + 0.1 * (w / n), y: y(base + v), width: barWidth,
                                  height: Math.max(0.5, y(base) - y(base + v)), fill: s.color }));
      }
      base += v;
    }
  }
  // lines, broken where there is no value
  for (const s of lines) {
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      const px = x(i) + w / n / 2;
      d += `${pen ? "L" : "M"}${px.toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
    });
    const attrs = { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round" };
    if (s.dash) attrs["stroke-dasharray"] = s.dash;
    root.append(svg("path", attrs));
    // lone points (a minute with data between empty ones) get a dot
    s.values.forEach((v, i) => {
      const before = s.values[i - 1];
      const after = s.values[i + 1];
      if (v !== null && v !== undefined && (before === null || before === undefined) && (after === null || after === undefined)) {
        root.append(svg("circle", { cx: x(i) + w / n / 2, cy: y(v), r: 2.5, fill: s.color }));
      }
    });
  }
  root.append(svg("line", { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, stroke: "#444a55" }));
  const legend = document.createElement("div");
  legend.className = "legend";
  const title = document.createElement("strong");
  title.textContent = spec.title;
  title.style.color = "var(--text)";
  legend.append(title);
  for (const s of series) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    item.append(swatch, s.name);
    legend.append(item);
  }
  box.replaceChildren(legend, root);
}
