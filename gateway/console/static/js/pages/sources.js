// Live sources: every camera or stream the stack watches (state, rates,
// drops, reconnects, latency), a form to add one, and per source a live view
// (the newest processed frame with its boxes, track ids, zones and lines,
// refreshed several times a second), the counts per zone and line, its
// events, and an editor that draws zones and lines on the frame.

import { api, query } from "../api.js";
import { el, int, num, stateBadge, statTile } from "../format.js";

const LIST_EVERY_MS = 1000;
const FRAME_EVERY_MS = 200;
const EVENTS_EVERY_MS = 2000;
const STATE_CLASS = { live: "serving", connecting: "queued", reconnecting: "queued", failed: "failed", paused: "idle", ended: "idle" };

function badge(status) {
  const state = status.state || "connecting";
  const node = stateBadge(STATE_CLASS[state] || "idle", state);
  if (status.reason) node.title = status.reason;
  return node;
}

function ago(unix) {
  if (!unix) return "–";
  const s = Math.max(0, Date.now() / 1000 - unix);
  return s < 60 ? `${s.toFixed(1)} s ago` : `${Math.round(s / 60)} min ago`;
}

export function mount(view, { params }, ctx) {
  const id = params.get("id");
  return id ? detail(view, id, ctx) : list(view, ctx);
}

// --- the list --------------------------------------------------------------------------

function list(view, ctx) {
  const controller = new AbortController();
  const signal = controller.signal;
  const rows = el("tbody", { id: "source-rows" });
  const formError = el("p", { class: "error", hidden: true });
  const url = el("input", { name: "url", required: true, size: 48, placeholder: "rtsp://camera/stream, https://…/live.m3u8, /videos/shop.mp4" });
  const name = el("input", { name: "name", size: 20, placeholder: "door" });
  const detect = el("select", { name: "detect" }, ...["objects", "faces", "both"].map((d) => el("option", { value: d, text: d })));
  const fps = el("input", { name: "max_fps", type: "number", min: "0.1", max: "60", step: "0.1", value: "5", style: "width:6em" });
  const loop = el("input", { name: "loop", type: "checkbox" });
  let timer = null;

  view.append(
    el("h1", { text: "Live sources" }),
    el("div", { class: "card table-card" },
      el("table", { id: "source-table" },
        el("thead", {}, el("tr", {}, ...["Source", "State", "In fps", "Done fps", "Dropped", "Reconnects", "Latency", "Last frame", "Worker", "URL", ...(ctx.admin ? ["Tenant"] : [])]
          .map((h) => el("th", { text: h, class: /fps|Dropped|Reconnects|Latency/.test(h) ? "num" : "" })))),
        rows)),
    el("details", { class: "card", style: "margin-top:12px" },
      el("summary", { text: "Add a source" }),
      el("form", { class: "form", style: "margin-top:10px", onsubmit: create },
        el("label", {}, "URL (credentials in it are never shown back)", url),
        el("div", { class: "row" },
          el("label", {}, "Name", name), el("label", {}, "Detect", detect),
          el("label", {}, "Frames per second, at most", fps), el("label", { class: "check" }, loop, "Loop (files)")),
        formError,
        el("div", {}, el("button", { type: "submit", class: "primary", text: "Add" })))));

  async function create(event) {
    event.preventDefault();
    formError.hidden = true;
    try {
      const source = await api("sources", {
        method: "POST", signal, headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ url: url.value, name: name.value, detect: detect.value, max_fps: Number(fps.value), loop: loop.checked }),
      });
      location.hash = `#/sources${query({ id: source.id })}`;
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
    }
  }

  async function refresh() {
    try {
      const { sources } = await api("sources", { signal });
      rows.replaceChildren(...(sources.length ? sources.map((s) => {
        const st = s.status;
        return el("tr", { "data-id": s.id },
          el("td", {}, el("a", { href: `#/sources${query({ id: s.id })}`, text: s.name || s.id }), " ", el("span", { class: "muted mono", text: s.name ? s.id : "" })),
          el("td", {}, badge(st)),
          el("td", { class: "num", text: num(st.fps_in) }),
          el("td", { class: "num", text: num(st.fps_processed) }),
          el("td", { class: "num", text: int(st.frames_dropped) }),
          el("td", { class: "num", text: int(st.reconnects) }),
          el("td", { class: "num", text: st.latency_ms ? `${num(st.latency_ms, 0)} ms` : "–" }),
          el("td", { text: ago(st.last_frame_at) }),
          el("td", { class: "mono", text: st.worker || "–" }),
          el("td", { class: "mono", text: s.url }),
          ...(ctx.admin ? [el("td", { text: s.tenant })] : []));
      }) : [el("tr", {}, el("td", { colspan: 11, class: "muted", text: "No sources yet: add one below." }))]));
      ctx.live(true);
    } catch (err) {
      if (err.name !== "AbortError") ctx.live(false, err.message);
    }
    timer = setTimeout(refresh, LIST_EVERY_MS);
  }
  refresh();
  return () => {
    controller.abort();
    clearTimeout(timer);
  };
}

// --- one source ------------------------------------------------------------------------

function detail(view, id, ctx) {
  const controller = new AbortController();
  const signal = controller.signal;
  const canvas = el("canvas", { id: "source-canvas", width: 640, height: 480 });
  const g = canvas.getContext("2d");
  const head = el("div", { class: "row", id: "source-head" });
  const tiles = el("div", { class: "stats", id: "source-stats" });
  const counts = el("tbody", { id: "source-counts" });
  const events = el("tbody", { id: "source-events" });
  const rulesList = el("ul", { id: "source-rules", class: "rules" });
  const hint = el("p", { class: "muted", id: "draw-hint", text: "Draw a zone (click its corners, then Finish) or a line (two clicks) on the frame." });
  const saveError = el("p", { class: "error", hidden: true });
  const timers = [];
  let source = null;
  let frame = null; // {image, meta}
  let zones = [];
  let lines = [];
  let drawing = null; // {kind: "zone"|"line", points: [[x, y]]}
  let dirty = false;

  const button = (text, onclick, cls = "") => el("button", { type: "button", text, onclick, class: cls });
  view.append(
    el("p", {}, el("a", { href: "#/sources", text: "← All sources" })),
    head, tiles,
    el("div", { class: "source-layout" },
      el("div", { class: "card" }, canvas,
        el("div", { class: "row", style: "margin-top:8px" },
          button("Draw zone", () => start("zone")), button("Draw line", () => start("line")),
          button("Finish", finish), button("Cancel", () => { drawing = null; paint(); }),
          el("span", { class: "spacer" }), button("Save zones and lines", save, "primary")),
        hint, saveError, rulesList),
      el("div", { class: "grid" },
        el("div", { class: "card" }, el("h3", { text: "Counts" }),
          el("table", {}, el("thead", {}, el("tr", {}, ...["Zone or line", "In / entered", "Out / left", "Inside"].map((h) => el("th", { text: h })))), counts)),
        el("div", { class: "card" }, el("h3", { text: "Events" }),
          el("table", {}, el("thead", {}, el("tr", {}, ...["Time", "Event", "Track", "Details"].map((h) => el("th", { text: h })))), events)))));

  function start(kind) {
    drawing = { kind, points: [] };
    hint.textContent = kind === "zone" ? "Click the zone's corners on the frame, then Finish." : "Click the line's start, then its end (crossing it from its right side to its left is \"in\").";
  }

  function finish() {
    if (!drawing) return;
    const n = drawing.kind === "zone" ? zones.length + lines.length + 1 : zones.length + lines.length + 1;
    if (drawing.kind === "zone" && drawing.points.length >= 3) zones.push({ id: `zone-${n}`, polygon: drawing.points, classes: [] });
    if (drawing.kind === "line" && drawing.points.length === 2) lines.push({ id: `line-${n}`, start: drawing.points[0], end: drawing.points[1], classes: [] });
    drawing = null;
    dirty = true;
    showRules();
    paint();
  }

  canvas.addEventListener("click", (event) => {
    if (!drawing) return;
    const r = canvas.getBoundingClientRect();
    const x = Math.round(((event.clientX - r.left) / r.width) * canvas.width);
    const y = Math.round(((event.clientY - r.top) / r.height) * canvas.height);
    drawing.points.push([x, y]);
    if (drawing.kind === "line" && drawing.points.length === 2) finish();
    else paint();
  });

  function showRules() {
    const item = (kind, rule, remove) => el("li", {}, el("code", { text: rule.id }), ` ${kind} `,
      el("span", { class: "muted", text: JSON.stringify(kind === "zone" ? rule.polygon : [rule.start, rule.end]) }), " ",
      button("remove", () => { remove(); dirty = true; showRules(); paint(); }, "link"));
    rulesList.replaceChildren(
      ...zones.map((z, i) => item("zone", z, () => zones.splice(i, 1))),
      ...lines.map((l, i) => item("line", l, () => lines.splice(i, 1))));
  }

  async function save() {
    saveError.hidden = true;
    try {
      source = await api(`sources/${encodeURIComponent(id)}`, {
        method: "PATCH", signal, headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ zones, lines }),
      });
      dirty = false;
      hint.textContent = "Saved: the worker counts with them now.";
    } catch (err) {
      saveError.textContent = err.message;
      saveError.hidden = false;
    }
  }

  async function act(action) {
    try {
      if (action === "delete") {
        if (!confirm(`Delete source ${id}?`)) return;
        await api(`sources/${encodeURIComponent(id)}`, { method: "DELETE", signal });
        location.hash = "#/sources";
        return;
      }
      source = await api(`sources/${encodeURIComponent(id)}/${action}`, { method: "POST", signal });
      showHead();
    } catch (err) {
      ctx.live(false, err.message);
    }
  }

  function showHead() {
    const st = source.status;
    head.replaceChildren(
      el("h1", { text: source.name || source.id, style: "margin:0" }), badge(st),
      el("span", { class: st.state === "failed" ? "error" : "muted", id: "source-reason", text: st.reason || "" }),
      el("span", { class: "spacer" }),
      source.paused ? button("Resume", () => act("resume")) : button("Pause", () => act("pause")),
      button("Delete", () => act("delete"), "danger"));
    tiles.replaceChildren(
      statTile("Frames in", num(st.fps_in), "per second"),
      statTile("Processed", num(st.fps_processed), "per second"),
      statTile("Dropped", int(st.frames_dropped), "while the model was busy"),
      statTile("Reconnects", int(st.reconnects), st.state),
      statTile("Latency", st.latency_ms ? `${num(st.latency_ms, 0)}` : "–", "ms, capture to counted"),
      statTile("Last frame", ago(st.last_frame_at).replace(" ago", ""), st.worker ? `ago, on ${st.worker}` : "ago"));
    const rows = [];
    for (const z of source.zones) {
      const c = source.counts[z.id] || {};
      rows.push(el("tr", {}, el("td", { text: `zone ${z.id}` }), el("td", { class: "num", text: int(c.entered || 0) }), el("td", { class: "num", text: int(c.left || 0) }), el("td", { class: "num", text: int(c.inside || 0) })));
    }
    for (const l of source.lines) {
      const c = source.counts[l.id] || {};
      rows.push(el("tr", {}, el("td", { text: `line ${l.id}` }), el("td", { class: "num", text: int(c.in || 0) }), el("td", { class: "num", text: int(c.out || 0) }), el("td", { text: "" })));
    }
    counts.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4, class: "muted", text: "No zones or lines: draw some on the frame." }))]));
  }

  function paint() {
    if (frame) {
      canvas.width = frame.meta.width;
      canvas.height = frame.meta.height;
      g.drawImage(frame.image, 0, 0);
    } else {
      g.fillStyle = "#15171c";
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.fillStyle = "#8b93a1";
      g.font = "16px sans-serif";
      g.fillText("waiting for a frame…", 20, 30);
    }
    const scale = Math.max(1, canvas.width / 640);
    g.lineWidth = 2 * scale;
    g.font = `${13 * scale}px sans-serif`;
    for (const z of zones) {
      g.strokeStyle = "#f0b429";
      g.fillStyle = "rgba(240,180,41,0.15)";
      g.beginPath();
      z.polygon.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.closePath();
      g.fill();
      g.stroke();
      g.fillStyle = "#f0b429";
      g.fillText(z.id, z.polygon[0][0] + 4, z.polygon[0][1] + 16 * scale);
    }
    for (const l of lines) {
      g.strokeStyle = "#e5484d";
      g.beginPath();
      g.moveTo(...l.start);
      g.lineTo(...l.end);
      g.stroke();
      g.fillStyle = "#e5484d";
      g.fillText(l.id, l.start[0] + 4, l.start[1] + 16 * scale);
    }
    if (frame) {
      for (const b of frame.meta.boxes) {
        const [x1, y1, x2, y2] = b.box;
        g.strokeStyle = "#4f8cff";
        g.strokeRect(x1, y1, x2 - x1, y2 - y1);
        const label = `${b.track_id ? `#${b.track_id % 10000} ` : ""}${b.subject || b.label}`;
        g.fillStyle = "#4f8cff";
        g.fillRect(x1, y1 - 18 * scale, g.measureText(label).width + 8, 18 * scale);
        g.fillStyle = "#fff";
        g.fillText(label, x1 + 4, y1 - 5 * scale);
      }
    }
    if (drawing && drawing.points.length) {
      g.strokeStyle = "#fff";
      g.setLineDash([6, 4]);
      g.beginPath();
      drawing.points.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.stroke();
      g.setLineDash([]);
    }
  }

  async function refreshSource() {
    try {
      source = await api(`sources/${encodeURIComponent(id)}`, { signal });
      if (!dirty && !drawing) {
        zones = source.zones.map((z) => ({ ...z }));
        lines = source.lines.map((l) => ({ ...l }));
        showRules();
      }
      showHead();
      ctx.live(true);
    } catch (err) {
      if (err.name !== "AbortError") ctx.live(false, err.message);
    }
    timers[0] = setTimeout(refreshSource, LIST_EVERY_MS);
  }

  async function refreshFrame() {
    try {
      const meta = await api(`sources/${encodeURIComponent(id)}/live`, { signal });
      const image = new Image();
      image.src = `data:image/jpeg;base64,${meta.jpeg}`;
      await image.decode();
      frame = { image, meta };
      canvas.dataset.seq = meta.seq;
    } catch (err) {
      if (err.name === "AbortError") return;
      frame = null; // no recent frame (paused, reconnecting)
    }
    paint();
    timers[1] = setTimeout(refreshFrame, FRAME_EVERY_MS);
  }

  async function refreshEvents() {
    try {
      const page = await api(`events${query({ source_id: id, limit: 30 })}`, { signal });
      events.replaceChildren(...page.events.map((e) => {
        const d = e.data;
        const details = e.type === "line.crossed" ? `${d.line_id} ${d.direction}`
          : e.type.startsWith("zone.") ? `${d.zone_id}${d.dwell_s !== undefined ? `, ${num(d.dwell_s)} s inside` : ""}`
            : e.type === "source.state_changed" ? `${d.previous || "–"} → ${d.state}${d.reason ? `: ${d.reason}` : ""}`
              : e.type === "face.identified" ? `${d.subject} (distance ${num(d.distance, 3)})`
                : e.type === "track.ended" ? `${d.label}, ${num(d.duration_s)} s, ${d.frames} frames` : d.label || "";
        return el("tr", {}, el("td", { text: new Date(e.time * 1000).toLocaleTimeString("en-GB", { hour12: false }) }),
          el("td", { text: e.type }), el("td", { class: "mono", text: d.track_id ? `#${d.track_id % 10000}` : "" }), el("td", { text: details }));
      }));
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    timers[2] = setTimeout(refreshEvents, EVENTS_EVERY_MS);
  }

  paint();
  refreshSource();
  refreshFrame();
  refreshEvents();
  return () => {
    controller.abort();
    timers.forEach(clearTimeout);
  };
}
