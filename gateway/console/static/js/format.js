// Numbers for people: units always, few digits, tabular.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (charts and detection overlays). */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export function int(n) {
  return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
}

export function num(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function pct(rate) {
  if (rate === null || rate === undefined) return "–";
  const p = rate * 100;
  return `${p >= 99.95 || p === 0 ? p.toFixed(0) : p < 1 ? p.toFixed(2) : p.toFixed(1)}%`;
}

/** A duration given in ms: "850 ms", "2.4 s", "3m 10s", "2h 5m" (short: tiles and axes). */
export function ms(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
  const s = value / 1000;
  if (s < 59.95) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
  const whole = Math.round(s);
  if (whole < 3600) return `${Math.floor(whole / 60)}m ${whole % 60}s`;
  const minutes = Math.round(whole / 60);
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

export const seconds = (s) => ms(s === null || s === undefined ? s : s * 1000);

/** [number, unit] for a big-number tile. */
export function msParts(value) {
  const text = ms(value);
  const at = text.lastIndexOf(" ");
  return at < 0 || /\d[hm] /.test(text) ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}

export function ago(unixSeconds) {
  if (!unixSeconds) return "–";
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 2) return "just now";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function clock(date) {
  const d = date instanceof Date ? date : new Date(date * 1000);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString("en-GB", { hour12: false });
  return today ? time : `${d.toISOString().slice(0, 10)} ${time}`;
}

export const KIND_NAMES = {
  face_detection: "Face",
  object_detection: "Object",
  face_identification: "Face identification",
};

export function kindLabel(kind, media) {
  return `${KIND_NAMES[kind] || kind} · ${media}`;
}

/** Seconds between two ISO times, or null. */
export function between(a, b) {
  if (!a || !b) return null;
  return (new Date(b) - new Date(a)) / 1000;
}

/** A stat tile: a label, a big value, a line under it; `key` (data-stat) finds it again. */
export function statTile(label, value, sub = "", key = undefined) {
  return el("div", { class: "stat", "data-stat": key },
    el("div", { class: "label", text: label }),
    el("div", { class: "value" }, value),
    el("div", { class: "sub", text: sub }));
}

export function stateBadge(state, text = state) {
  return el("span", { class: `state ${state}`, text: text.replace("_", " ") });
}
