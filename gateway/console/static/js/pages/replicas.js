// Replicas: every face and object replica the gateway can reach, as the
// monitor saw it a moment ago (/api/replicas, refreshed every second).

import { api } from "../api.js";
import { ago, el, int, num, seconds, stateBadge } from "../format.js";

const EVERY_MS = 1000;
const STATE_TEXT = { serving: "serving", not_serving: "not serving", unreachable: "unreachable", gone: "gone" };

export function mount(view, { params }, ctx) {
  const controller = new AbortController();
  const focus = params.get("replica");
  const head = el("div", { class: "row", style: "justify-content:space-between;margin-bottom:10px" },
    el("h1", { text: "Replicas" }), el("span", { class: "muted", id: "replica-note" }));
  const body = el("div", { id: "replica-tables" });
  view.append(head, body);

  function row(r) {
    const workers = r.workers === undefined || r.workers === null ? "–" : `${r.workers_ready} / ${r.workers}`;
    const down = r.state === "unreachable";
    const since = r.state_since ? ago(r.state_since).replace(" ago", "") : "";
    return el("tr", {
        class: [down ? "down" : "", r.state === "gone" ? "gone" : "", r.stale ? "stale" : "", focus && r.replica === focus ? "focus" : ""].join(" ").trim(),
        "data-address": r.address, "data-state": r.state, "data-replica": r.replica || "",
      },
      el("td", {}, stateBadge(r.state, STATE_TEXT[r.state] || r.state),
        el("div", { class: "muted", style: "font-size:11px", text: r.stale ? "no recent probe" : `for ${since}` })),
      el("td", { class: "mono", text: r.address }),
      el("td", { class: "mono", text: r.replica || "–" }),
      el("td", {}, r.model || "–", r.engine ? el("div", { class: "muted", style: "font-size:11px", text: `${r.engine} · ${r.device}` }) : null),
      el("td", { class: "num", "data-field": "workers", text: workers }),
      el("td", { class: "num", "data-field": "in_flight", text: int(r.calls_in_flight) }),
      el("td", { class: "num", "data-field": "served", text: int(r.calls_served) }),
      el("td", { class: `num${r.calls_failed ? " error" : ""}`, "data-field": "failed", text: int(r.calls_failed), title: "failed through the replica's fault" }),
      el("td", { class: "num muted", "data-field": "refused", text: int(r.calls_refused), title: "bad input, or cancelled by the caller" }),
      el("td", { class: "num", "data-field": "rate", text: r.calls_per_s === null || r.calls_per_s === undefined ? "–" : num(r.calls_per_s, 1) }),
      el("td", { class: "num", text: r.calls_served || r.calls_failed || r.calls_refused ? seconds(r.mean_call_seconds) : "–" }),
      el("td", { class: "num", text: int(r.worker_restarts) }),
      el("td", { text: r.started_at ? ago(r.started_at).replace(" ago", "") : "–" }),
      el("td", { text: r.last_seen ? ago(r.last_seen) : "never", title: r.error || "" },
        r.error && r.state !== "serving" ? el("div", { class: "error", style: "font-size:11px;max-width:260px;white-space:normal", text: r.error }) : null));
  }

  function table(backend, replicas, target) {
    const serving = replicas.filter((r) => r.state === "serving").length;
    const live = replicas.filter((r) => r.state !== "gone").length;
    return el("section", { class: "card table-card", style: "margin-bottom:16px", "data-backend": backend },
      el("div", { class: "table-foot", style: "color:var(--text)" },
        el("h2", { style: "margin:0", text: `${backend[0].toUpperCase()}${backend.slice(1)} replicas` }),
        el("span", { class: "pill", text: `${serving} / ${live} serving` }),
        el("span", { class: "muted mono", text: target })),
      el("table", {},
        el("thead", {}, el("tr", {}, ...["State", "Address", "Name", "Model", "Workers", "In flight", "Served", "Failed", "Refused", "Calls/s", "Mean time", "Restarts", "Up for", "Last seen"]
          .map((h, i) => el("th", { class: i >= 4 && i <= 11 ? "num" : "", text: h })))),
        el("tbody", {}, ...(replicas.length ? replicas.map(row) : [el("tr", {}, el("td", { colspan: 14, class: "empty", text: "No replica found at this target." }))]))));
  }

  async function refresh() {
    try {
      const data = await api("replicas", { signal: controller.signal });
      const backends = Object.keys(data.targets);
      body.replaceChildren(...backends.map((b) => table(b, data.replicas.filter((r) => r.backend === b), data.targets[b])));
      document.getElementById("replica-note").textContent =
        `probed every ${num(data.probe_interval_s)} s by ${data.monitor || "no gateway (monitor off?)"} · gone or unreachable for ${int(data.forget_after_s)} s: dropped`;
      ctx.live(true);
    } catch (err) {
      if (!controller.signal.aborted) ctx.live(false, err.message);
    }
  }
  refresh();
  const timer = setInterval(refresh, EVERY_MS);
  return () => {
    controller.abort();
    clearInterval(timer);
  };
}
