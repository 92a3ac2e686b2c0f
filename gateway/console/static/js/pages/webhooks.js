// Webhooks: the tenant's subscriptions, a form to add one, and per
// subscription its delivery log (event, attempt, status code, latency, next
// try), refreshed live, with "send again" and "send a test event".

import { api, query } from "../api.js";
import { el, int, stateBadge } from "../format.js";

const LIVE_EVERY_MS = 2000;
const TYPES = ["task.succeeded", "task.failed", "task.cancelled", "source.state_changed", "track.started",
  "track.ended", "zone.entered", "zone.left", "line.crossed", "face.identified"];
const OUTCOME_STATE = { succeeded: "succeeded", retry: "queued", failed: "failed" };

// A secret just created or rotated, shown once, across the page's re-mount
// when the new subscription is selected.
let fresh = null;

function time(unix) {
  return unix ? new Date(unix * 1000).toLocaleString("en-GB", { hour12: false }) : "";
}

export function mount(view, { params }, ctx) {
  const controller = new AbortController();
  const signal = controller.signal;
  const selected = params.get("id") || "";
  const subsBody = el("tbody", { id: "webhook-rows" });
  const notice = el("div", { id: "webhook-notice", hidden: true });
  const detail = el("div", { id: "webhook-detail" });
  const formError = el("p", { class: "error", hidden: true });
  const url = el("input", { type: "url", name: "url", required: true, size: 50, placeholder: "https://example.com/hooks" });
  const boxes = TYPES.map((t) => el("input", { type: "checkbox", name: "types", value: t, checked: t.startsWith("task.") }));
  let timer = null;

  view.append(
    el("h1", { text: "Webhooks" }),
    notice,
    el("div", { class: "card table-card" },
      el("table", { id: "webhook-table" },
        el("thead", {}, el("tr", {}, ...["Subscription", "URL", "Events", "Filters", "Enabled", "Created", ...(ctx.admin ? ["Tenant"] : [])]
          .map((h) => el("th", { text: h })))),
        subsBody)),
    el("details", { class: "card", style: "margin-top:12px", open: !selected },
      el("summary", { text: "Add a subscription" }),
      el("form", { class: "form", style: "margin-top:10px", onsubmit: create },
        el("label", {}, "URL Percept POSTs to (signed: Standard Webhooks)", url),
        el("div", { class: "row" }, ...boxes.map((b) => el("label", { class: "check" }, b, b.value))),
        formError,
        el("div", {}, el("button", { type: "submit", class: "primary", text: "Subscribe" })))),
    detail);

  async function create(event) {
    event.preventDefault();
    formError.hidden = true;
    const types = boxes.filter((b) => b.checked).map((b) => b.value);
    try {
      const sub = await api("webhooks", {
        method: "POST", signal, headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ url: url.value, types }),
      });
      fresh = [sub, "Subscribed."];
      url.value = "";
      location.hash = `#/webhooks${query({ id: sub.id })}`;
    } catch (err) {
      formError.textContent = err.message;
      formError.hidden = false;
    }
  }

  function showSecret(sub, what) {
    notice.replaceChildren(el("div", { class: "banner secret" },
      el("strong", { text: `${what} ` }), "Signing secret of ", el("code", { text: sub.id }), ": ",
      el("code", { id: "webhook-secret", text: sub.secret }),
      el("div", { class: "muted", text: "Shown this once: keep it now. Receivers verify with the standardwebhooks library." })));
    notice.hidden = false;
  }

  if (fresh) {
    showSecret(...fresh);
    fresh = null;
  }

  async function loadList() {
    const subs = await api("webhooks", { signal });
    subsBody.replaceChildren(...subs.map((s) => el("tr", { class: s.id === selected ? "on" : "" },
      el("td", {}, el("a", { class: "mono", href: `#/webhooks${query({ id: s.id })}`, text: s.id })),
      el("td", { class: "mono", text: s.url }),
      el("td", { text: s.types.join(", ") }),
      el("td", { text: [...s.kinds.map((k) => `kind ${k}`), ...s.source_ids.map((x) => `source ${x}`)].join(", ") || "–" }),
      el("td", { text: s.enabled ? "yes" : "no" }),
      el("td", { text: time(s.created_at) }),
      ...(ctx.admin ? [el("td", { text: s.tenant })] : []))));
    if (!subs.length) subsBody.append(el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No subscriptions yet." })));
    return subs.find((s) => s.id === selected);
  }

  async function act(path, method = "POST") {
    try {
      return await api(path, { method, signal });
    } catch (err) {
      notice.replaceChildren(el("div", { class: "banner", text: err.message }));
      notice.hidden = false;
      return false;
    }
  }

  const logBody = el("tbody", { id: "delivery-rows" });
  const failedNote = el("span", { id: "failed-note" });

  function renderDetail(sub) {
    if (!sub) {
      detail.replaceChildren();
      return;
    }
    detail.replaceChildren(
      el("div", { class: "row", style: "margin:18px 0 8px" },
        el("h2", { style: "margin:0", text: `Deliveries of ${sub.id}` }),
        el("span", { class: "spacer" }),
        el("button", { id: "send-test", text: "Send a test event", onclick: async () => {
          if ((await act(`webhooks/${sub.id}/test`)) !== false) refresh();
        } }),
        el("button", { text: "Rotate secret", onclick: async () => {
          const rotated = await act(`webhooks/${sub.id}/rotate`);
          if (rotated !== false) showSecret(rotated, "Rotated: the previous secret signs too until " + time(rotated.previous_secret_valid_until) + ".");
        } }),
        el("button", { class: "danger", text: "Delete", onclick: async () => {
          if (!confirm(`Delete ${sub.id} and its pending deliveries?`)) return;
          if ((await act(`webhooks/${sub.id}`, "DELETE")) !== false) location.hash = "#/webhooks";
        } })),
      el("div", { class: "card table-card" },
        el("table", { id: "delivery-table" },
          el("thead", {}, el("tr", {}, ...["Time", "Event", "Type", "Attempt", "Status", "Latency", "Next try", "Error", ""]
            .map((h, i) => el("th", { class: i === 3 || i === 4 || i === 5 ? "num" : "", text: h })))),
          logBody),
        el("div", { class: "table-foot" }, failedNote)));
  }

  async function loadLog() {
    if (!selected) return;
    const log = await api(`webhooks/${selected}/deliveries${query({ limit: 100 })}`, { signal });
    const failed = new Set(log.failed);
    logBody.replaceChildren(...log.attempts.map((a) => el("tr", {},
      el("td", { text: time(a.time) }),
      el("td", { class: "mono", text: a.event_id }),
      el("td", { text: a.event_type }),
      el("td", { class: "num", text: int(a.attempt) }),
      el("td", { class: "num" }, stateBadge(OUTCOME_STATE[a.outcome] || "queued", a.status_code ? String(a.status_code) : "–")),
      el("td", { class: "num", text: a.latency_ms === null ? "–" : `${Math.round(a.latency_ms)} ms` }),
      el("td", { text: a.next_try ? time(a.next_try) : "" }),
      el("td", { class: "muted", text: a.error || "" }),
      el("td", {}, el("button", { class: "link", text: failed.has(a.event_id) ? "Send again" : "Resend",
        onclick: async () => { if ((await act(`webhooks/${selected}/deliveries/${a.event_id}/retry`)) !== false) refresh(); } })))));
    if (!log.attempts.length) logBody.append(el("tr", {}, el("td", { colspan: 9, class: "empty", text: "No deliveries yet: send a test event." })));
    failedNote.textContent = failed.size ? `${int(failed.size)} deliveries ran out of retries: send them again from their row.` : "";
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      await loadLog();
      ctx.live(true);
    } catch (err) {
      if (signal.aborted) return;
      ctx.live(false, err.message);
    }
    if (!signal.aborted) timer = setTimeout(refresh, LIVE_EVERY_MS);
  }

  loadList().then((sub) => {
    renderDetail(sub);
    refresh();
  }, (err) => { if (!signal.aborted) ctx.live(false, err.message); });

  return () => {
    controller.abort();
    clearTimeout(timer);
  };
}
