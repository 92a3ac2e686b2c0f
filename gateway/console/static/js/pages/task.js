// One task: what was asked, when it ran and where, and what it found drawn
// over the image. A running video shows its progress and each frame live.

import { API, api, followEvents } from "../api.js";
import { between, el, int, kindLabel, seconds, stateBadge, when } from "../format.js";
import { createViewer } from "../viewer.js";

const ENDED = new Set(["succeeded", "failed", "cancelled"]);

export function mount(view, { match }, ctx) {
  const id = match[1];
  const controller = new AbortController();
  let viewer = null;
  let task = null;
  let privateKinds = null; // "kind:media" of kinds whose uploads are never kept
  api("kinds", { signal: controller.signal }).then(
    ({ kinds }) => new Set(kinds.filter((k) => k.private).map((k) => `${k.kind}:${k.media}`)),
    () => new Set(),
  ).then((found) => { privateKinds = found; if (task) render(); });

  const title = el("div", { class: "row", style: "justify-content:space-between;margin-bottom:12px" });
  const facts = el("dl", { class: "facts", id: "task-facts" });
  const side = el("div", { class: "grid" });
  const main = el("div", { class: "grid" });
  view.append(title, el("div", { class: "task-grid" }, main, side));

  function header() {
    const cancel = el("button", { class: "danger", id: "cancel", text: "Cancel task", hidden: ENDED.has(task.status),
      onclick: async () => {
        cancel.disabled = true;
        try {
          task = await api(`task/${id}`, { method: "DELETE" });
          render();
        } catch (err) {
          cancel.disabled = false;
          alert(err.message);
        }
      } });
    title.replaceChildren(
      el("div", {}, el("h1", { style: "margin:0" }, `${kindLabel(task.kind, task.media)} task `, stateBadge(task.status)),
        el("div", { class: "mono muted", text: id })),
      cancel);
  }

  function render() {
    header();
    const waited = between(task.created_at, task.started_at);
    const ran = between(task.started_at, task.finished_at);
    const replica = !task.replica ? "–"
      : ctx.admin ? el("a", { class: "mono", href: `#/replicas?replica=${encodeURIComponent(task.replica)}`, text: task.replica })
        : el("span", { class: "mono", text: task.replica });
    facts.replaceChildren(...[
      ["Status", stateBadge(task.status)],
      ["Queued", when(task.created_at)],
      ["Started", when(task.started_at)],
      ["Finished", when(task.finished_at)],
      ["Waited", seconds(waited)],
      ["Ran", seconds(ran)],
      ["Attempts", int(task.attempts)],
      ["Replica", replica],
      ["Expires", when(task.expires_at)],
      ...(task.tenant ? [["Tenant", el("span", { class: "mono", text: task.tenant })]] : []),
    ].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { "data-fact": k.toLowerCase() }, v)]));
    const blocks = [el("section", { class: "card" }, el("h3", { text: "Timings" }), facts),
      el("section", { class: "card" }, el("h3", { text: "Options" }),
        el("pre", { class: "json", id: "task-options", text: JSON.stringify(task.options, null, 2) }))];
    if (task.error) blocks.push(el("section", { class: "card" }, el("h3", { text: "Error" }),
      el("div", { class: "error", id: "task-error" }, el("strong", { text: task.error.code }), ": ", task.error.message)));
    side.replaceChildren(...blocks);
    // an image waits to know whether its upload is kept (a video's never is)
    if (!viewer && privateKinds === null && task.media === "image") return;
    if (!viewer) {
      const kept = !(privateKinds && privateKinds.has(`${task.kind}:${task.media}`));
      const source = task.media !== "image" ? null
        : kept ? { url: `${API}task/${id}/input` }
        : { note: "Identification uploads are never kept (they are personal data): boxes drawn on a blank of the image's size." };
      viewer = createViewer(task.media, source);
      main.replaceChildren(el("section", { class: "card" }, el("h3", { text: "Result" }), viewer.root),
        el("section", { class: "card" }, el("details", { id: "task-json" }, el("summary", { text: "The task as JSON" }), el("pre", { class: "json" }))));
    }
    main.querySelector("#task-json pre").textContent = JSON.stringify(task, null, 2);
    if (task.media === "image") viewer.setImage(task.result);
    else {
      viewer.setProgress(task.progress.done, task.progress.total);
      if (task.result) {
        viewer.setFrames(task.result.frames);
        viewer.setTracks(task.result.summary ? task.result.summary.tracks : []);
      }
    }
  }

  async function start() {
    try {
      task = await api(`task/${id}`, { signal: controller.signal });
      render();
      ctx.live(true);
      // an ended video without a result (failed, cancelled): its frames are in its events
      if (ENDED.has(task.status) && !(task.media === "video" && !task.result)) return;
      await followEvents(id, (event) => {
        if (event.type === "progress") { if (viewer) viewer.setProgress(event.data.done, event.data.total); }
        else if (event.type === "frame") { if (viewer) viewer.addFrame(event.data); }
        else if (event.type === "status" && event.data.task) {
          task = event.data.task;
          render();
        } else if (event.type === "status") {
          api(`task/${id}`, { signal: controller.signal }).then((t) => { task = t; render(); }, () => {});
        }
        ctx.live(true);
      }, controller.signal);
    } catch (err) {
      if (controller.signal.aborted) return;
      view.replaceChildren(el("h1", { text: "Task" }), el("div", { class: "banner", text: err.message }));
      ctx.live(false, err.message);
    }
  }
  start();
  return () => controller.abort();
}
