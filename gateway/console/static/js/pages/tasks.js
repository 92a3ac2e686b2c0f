// Tasks: newest first, filtered by status, kind and time, searched by id,
// paged by cursor (the job table's indexes keep a page cheap however many
// tasks there are). The first page follows new tasks live.

import { api, query } from "../api.js";
import { between, el, int, kindLabel, seconds, stateBadge, when } from "../format.js";
import { found } from "../draw.js";

const PAGE = 50;
const LIVE_EVERY_MS = 2000;
const RANGES = { "": "any time", "300": "last 5 min", "3600": "last hour", "86400": "last 24 h", custom: "between…" };

function localInput(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export function mount(view, { params }, ctx) {
  const controller = new AbortController();
  const filters = {
    status: params.get("status") || "",
    kind: params.get("kind") || "",
    range: params.get("range") || "",
    since: params.get("since") || "",
    until: params.get("until") || "",
    q: params.get("q") || "",
  };
  const cursors = [null]; // cursors[i]: where page i starts
  let page = 0;
  let loading = false;

  const status = el("select", { name: "status" }, ...["", "queued", "running", "succeeded", "failed", "cancelled"]
    .map((s) => el("option", { value: s, text: s || "any status", selected: s === filters.status })));
  const kind = el("select", { name: "kind" }, el("option", { value: "", text: "any kind" }));
  const range = el("select", { name: "range" }, ...Object.entries(RANGES)
    .map(([v, t]) => el("option", { value: v, text: t, selected: v === filters.range })));
  const since = el("input", { type: "datetime-local", name: "since", value: localInput(filters.since) });
  const until = el("input", { type: "datetime-local", name: "until", value: localInput(filters.until) });
  const search = el("input", { type: "search", name: "q", placeholder: "task id (4+ hex digits)", value: filters.q,
    pattern: "[0-9a-f]{4,32}", size: 30, spellcheck: "false" });
  const liveBox = el("input", { type: "checkbox", checked: true });
  const custom = el("span", { class: "row", hidden: filters.range !== "custom" },
    el("label", {}, "from", since), el("label", {}, "to", until));
  const rows = el("tbody", { id: "task-rows" });
  const newer = el("button", { text: "← Newer", disabled: true, onclick: () => go(page - 1) });
  const older = el("button", { text: "Older →", disabled: true, onclick: () => go(page + 1) });
  const info = el("span", { id: "task-info" });
  const timing = el("span", { id: "render-time", class: "mono" });

  view.append(
    el("h1", { text: "Tasks" }),
    el("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); apply(); } },
      el("label", {}, "Status", status), el("label", {}, "Kind", kind), el("label", {}, "Created", range), custom,
      el("label", {}, "Search", search), el("button", { type: "submit", class: "primary", text: "Apply" }),
      el("label", { style: "flex-direction:row;align-items:center;gap:6px" }, liveBox, "live")),
    el("div", { class: "card table-card" },
      el("table", { id: "task-table" },
        el("thead", {}, el("tr", {}, ...["Created", "Task", "Kind", "Status", "Waited", "Ran", "Attempts", "Replica", "Found", ...(ctx.admin ? ["Tenant"] : [])]
          .map((h, i) => el("th", { class: i === 4 || i === 5 || i === 6 ? "num" : "", text: h })))),
        rows),
      el("div", { class: "table-foot" }, newer, older, info, el("span", { class: "spacer" }), timing)));

  for (const select of [status, kind, range]) select.addEventListener("change", () => {
    custom.hidden = range.value !== "custom";
    if (range.value !== "custom") apply();
  });

  api("kinds", { signal: controller.signal }).then(({ kinds }) => {
    for (const k of kinds) {
      const id = `${k.kind}:${k.media}`;
      kind.append(el("option", { value: id, text: kindLabel(k.kind, k.media), selected: id === filters.kind }));
    }
  }, () => {});

  function apply() {
    const p = { status: status.value, kind: kind.value, range: range.value, q: search.value.trim().toLowerCase() };
    if (range.value === "custom") {
      if (since.value) p.since = Math.floor(new Date(since.value).getTime() / 1000);
      if (until.value) p.until = Math.floor(new Date(until.value).getTime() / 1000);
    }
    const hash = `#/tasks${query(p)}`;
    if (location.hash !== hash) location.hash = hash;
    else load();
  }

  function request(cursor) {
    if (filters.q) return `tasks${query({ q: filters.q, limit: PAGE })}`;
    const [k, media] = filters.kind.split(":");
    const p = { status: filters.status, kind: k, media, limit: PAGE, cursor };
    if (filters.range && filters.range !== "custom") p.since = Math.floor(Date.now() / 1000) - Number(filters.range);
    if (filters.range === "custom") Object.assign(p, { since: filters.since, until: filters.until });
    return `tasks${query(p)}`;
  }

  function row(t) {
    const waited = between(t.created_at, t.started_at);
    const ran = between(t.started_at, t.finished_at);
    let what = "";
    if (t.status === "succeeded") what = found(t.result);
    else if (t.status === "failed") what = t.error ? t.error.code : "";
    else if (t.status === "running" && t.media === "video") what = `frame ${t.progress.done}${t.progress.total ? ` / ${t.progress.total}` : ""}`;
    return el("tr", { "data-task": t.task_id },
      el("td", { text: when(t.created_at) }),
      el("td", {}, el("a", { class: "mono", href: `#/task/${t.task_id}`, text: t.task_id.slice(0, 12) })),
      el("td", { text: kindLabel(t.kind, t.media) }),
      el("td", {}, stateBadge(t.status)),
      el("td", { class: "num", text: seconds(waited) }),
      el("td", { class: "num", text: seconds(ran) }),
      el("td", { class: "num", text: int(t.attempts) }),
      el("td", { class: "mono", text: t.replica || "" }),
      el("td", { class: t.status === "failed" ? "error" : "", text: what }),
      ctx.admin ? el("td", { class: "mono", "data-field": "tenant", text: t.tenant || "" }) : null);
  }

  async function load() {
    if (loading) return;
    loading = true;
    const started = performance.now();
    try {
      const data = await api(request(cursors[page]), { signal: controller.signal });
      rows.replaceChildren(...(data.tasks.length ? data.tasks.map(row)
        : [el("tr", {}, el("td", { colspan: ctx.admin ? 10 : 9, class: "empty", text: "No task matches." }))]));
      await new Promise((r) => requestAnimationFrame(() => r()));
      const took = performance.now() - started;
      cursors[page + 1] = data.next_cursor;
      newer.disabled = page === 0;
      older.disabled = !data.next_cursor;
      info.textContent = `page ${page + 1} · ${data.tasks.length} tasks`;
      timing.textContent = `loaded and drawn in ${took.toFixed(0)} ms`;
      view.dataset.renderMs = took.toFixed(1);
      view.dataset.rows = String(data.tasks.length);
      ctx.live(true);
    } catch (err) {
      if (!controller.signal.aborted) {
        rows.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty error", text: err.message })));
        ctx.live(false, err.message);
      }
    } finally {
      loading = false;
    }
  }

  function go(to) {
    if (to < 0 || (to > page && !cursors[to])) return;
    page = to;
    load();
  }

  load();
  const timer = setInterval(() => { if (liveBox.checked && page === 0 && !document.hidden) load(); }, LIVE_EVERY_MS);
  return () => {
    controller.abort();
    clearInterval(timer);
  };
}
