// Overview: the whole system at a glance, live. Per task kind: queue, rate,
// outcomes and run times as big numbers, and the last hour (or 6/24 h) as charts.
// Everything comes from Redis (/api/stats), so a restarted gateway shows the same.

import { api, query } from "../api.js";
import { drawChart } from "../chart.js";
import { el, int, kindLabel, ms, msParts, num, pct, statTile } from "../format.js";

const STATS_EVERY_MS = 2000;
const REPLICAS_EVERY_MS = 1000;
const COLORS = { succeeded: "var(--ok)", failed: "var(--bad)", cancelled: "var(--idle)", p50: "var(--accent)", p95: "var(--accent-2)" };

// The tiles, [key, label, line under]: the totals, then each kind's.
const TOTALS = [
  ["queued", "Queued", "all kinds, now"],
  ["running", "Running", "all kinds, now"],
  ["succeeded", "Succeeded", "tasks kept (24 h)"],
  ["failed", "Failed", "tasks kept (24 h)"],
  ["cancelled", "Cancelled", "tasks kept (24 h)"],
  ["replicas", "Replicas serving", ""],
];
const PER_KIND = [
  ["queued", "Queued", "waiting now"],
  ["running", "Running", "now"],
  ["oldest", "Oldest waiting", "age of the oldest queued"],
  ["rate", "Tasks / min", "last 5 min"],
  ["success", "Success", "last 5 min"],
  ["failure", "Failure", "last 5 min"],
  ["p50", "Run time p50", "last 5 min"],
  ["p95", "Run time p95", "last 5 min"],
  ["p95h", "Run time p95", "last 60 min"],
];

function tileRow(rows, attrs = {}) {
  return el("div", { class: "stats", ...attrs }, rows.map(([key, label, sub]) => statTile(label, "–", sub, key)));
}

function set(root, key, value, unit = "", sub = null, state = "") {
  const node = root.querySelector(`[data-stat="${key}"]`);
  const v = node.querySelector(".value");
  v.replaceChildren(value, ...(unit ? [el("small", { text: unit })] : []));
  if (sub !== null) node.querySelector(".sub").textContent = sub;
  node.classList.remove("ok", "warn", "bad");
  if (state) node.classList.add(state);
}

function setMs(root, key, value, sub = null) {
  const [n, unit] = msParts(value);
  set(root, key, n, unit, sub);
}

export function mount(view, { params }, ctx) {
  let minutes = Number(params.get("minutes")) || 60;
  const timers = [];
  const controller = new AbortController();
  const totals = tileRow(TOTALS, { id: "totals" });
  const range = el("div", { class: "range", role: "group", "aria-label": "Chart range" },
    ...[[60, "1 h"], [360, "6 h"], [1440, "24 h"]].map(([m, label]) =>
      el("button", { "data-minutes": m, class: m === minutes ? "on" : "", text: label,
        onclick: () => { minutes = m; for (const b of range.children) b.classList.toggle("on", Number(b.dataset.minutes) === m); refresh(); } })));
  const kinds = el("div", { id: "kinds" });
  view.append(
    el("div", { class: "row", style: "justify-content:space-between;margin-bottom:10px" },
      el("h1", { text: "Overview" }), el("div", { class: "row" }, el("span", { class: "muted", text: "Charts:" }), range)),
    totals, kinds);
  const sections = new Map();

  function section(k) {
    let s = sections.get(k.id);
    if (s) return s;
    const tiles = tileRow(PER_KIND);
    const throughput = el("div", { class: "chart", "data-chart": "throughput" });
    const runtime = el("div", { class: "chart", "data-chart": "runtime" });
    const root = el("section", { class: "kind", "data-kind": k.id },
      el("div", { class: "kind-head" }, el("h2", { text: kindLabel(k.kind, k.media) }),
        el("a", { href: `#/tasks?kind=${k.id}`, text: "tasks →" })),
      el("div", { class: "kind-body" }, tiles, throughput, runtime));
    kinds.append(root);
    s = { root, tiles, throughput, runtime };
    sections.set(k.id, s);
    return s;
  }

  async function refresh() {
    try {
      const stats = await api(`stats${query({ minutes })}`, { signal: controller.signal });
      for (const status of ["succeeded", "failed", "cancelled"]) set(totals, status, int(stats.counts[status] || 0));
      set(totals, "queued", int(stats.kinds.reduce((a, k) => a + k.queued, 0)));
      set(totals, "running", int(stats.kinds.reduce((a, k) => a + k.running, 0)));
      for (const k of stats.kinds) {
        const { root, tiles, throughput, runtime } = section(k);
        // the charts as tall as the numbers beside them (less their legend)
        const height = Math.max(150, tiles.clientHeight - 40);
        const s5 = k.last_5m;
        const s60 = k.last_60m;
        set(root, "queued", int(k.queued));
        set(root, "running", int(k.running));
        const [age, ageUnit] = msParts(k.oldest_waiting_s * 1000);
        set(root, "oldest", k.queued ? age : "–", k.queued ? ageUnit : "", null, k.oldest_waiting_s > 60 ? "bad" : k.oldest_waiting_s > 10 ? "warn" : "");
        set(root, "rate", num(s5.per_minute, s5.per_minute < 10 ? 1 : 0), "/min", `last 5 min · ${int(s5.ended)} ended`);
        set(root, "success", pct(s5.success_rate), "", `last 5 min · ${int(s5.cancelled)} cancelled`);
        set(root, "failure", pct(s5.failure_rate), "", `last 5 min · ${int(s5.failed)} failed`, s5.failure_rate > 0.01 ? "bad" : "");
        setMs(root, "p50", s5.run_p50_ms, `last 5 min · wait p50 ${ms(s5.wait_p50_ms)}`);
        setMs(root, "p95", s5.run_p95_ms, `last 5 min · wait p95 ${ms(s5.wait_p95_ms)}`);
        setMs(root, "p95h", s60.run_p95_ms, `last 60 min · p50 ${ms(s60.run_p50_ms)}`);
        const times = k.series.map((p) => p.t);
        const step = Math.max(1, Math.round(k.series.length / 60)); // at most ~60 bars
        const pick = (f) => bucket(k.series, step, f);
        drawChart(throughput, {
          height, title: "Tasks ended", unit: step === 1 ? "tasks / min" : `tasks / ${step} min`, least: 4, format: (v) => num(v, 1),
          times: times.filter((_, i) => i % step === 0),
          series: ["succeeded", "failed", "cancelled"].map((name) => ({
            name, type: "bar", color: COLORS[name], values: pick((rows) => rows.reduce((a, p) => a + p[name], 0)),
          })),
        });
        drawChart(runtime, {
          height, title: "Run time, each minute", unit: "", least: 100, format: (v) => (v === 0 ? "0" : ms(v)),
          times: times.filter((_, i) => i % step === 0),
          series: [
            { name: "p50", type: "line", color: COLORS.p50, values: pick((rows) => worst(rows, "run_p50_ms")) },
            { name: "p95", type: "line", color: COLORS.p95, dash: "5 3", values: pick((rows) => worst(rows, "run_p95_ms")) },
          ],
        });
      }
      ctx.live(true);
    } catch (err) {
      if (!controller.signal.aborted) ctx.live(false, err.message);
    }
  }

  async function refreshReplicas() {
    try {
      const { replicas } = await api("replicas", { signal: controller.signal });
      const current = replicas.filter((r) => r.state !== "gone");
      const serving = current.filter((r) => r.state === "serving").length;
      const down = current.filter((r) => r.state === "unreachable").length;
      set(totals, "replicas", int(serving), `/ ${current.length}`,
        down ? `${down} unreachable` : current.length ? "all answering" : "none found", down ? "bad" : serving ? "ok" : "warn");
    } catch (err) {
      if (!controller.signal.aborted) ctx.live(false, err.message);
    }
  }

  refresh();
  refreshReplicas();
  timers.push(setInterval(refresh, STATS_EVERY_MS), setInterval(refreshReplicas, REPLICAS_EVERY_MS));
  const onResize = () => refresh();
  window.addEventListener("resize", onResize);
  return () => {
    controller.abort();
    timers.forEach(clearInterval);
    window.removeEventListener("resize", onResize);
  };
}

function bucket(series, step, reduce) {
  const out = [];
  for (let i = 0; i < series.length; i += step) out.push(reduce(series.slice(i, i + step)));
  return out;
}

function worst(rows, key) {
  const values = rows.map((r) => r[key]).filter((v) => v !== null && v !== undefined);
  return values.length ? Math.max(...values) : null;
}

