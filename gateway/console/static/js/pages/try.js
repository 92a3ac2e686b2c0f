// Try it: upload an image or a video, pick the kind and its options (read
// from /api/kinds, so a new kind or option shows up here by itself), and
// watch the result drawn as it arrives.

import { api, followEvents } from "../api.js";
import { el, kindLabel } from "../format.js";
import { createViewer } from "../viewer.js";

function input(name, schema) {
  const hint = schema.description || "";
  if (schema.type === "boolean") {
    return el("label", { class: "check", title: hint }, el("input", { type: "checkbox", name }), name.replace(/_/g, " "));
  }
  let field;
  if (schema.enum) {
    field = el("select", { name }, el("option", { value: "", text: "default" }), ...schema.enum.map((v) => el("option", { value: v, text: v })));
  } else if (schema.type === "integer" || schema.type === "number") {
    // 0 may mean "unset" below a minimum, so the browser's min is not set then.
    field = el("input", { type: "number", name, max: schema.maximum,
      min: schema["x-zero-means-unset"] ? undefined : schema.minimum ?? schema.exclusiveMinimum,
      step: schema.type === "integer" ? 1 : "any", placeholder: schema.default !== undefined ? `default ${schema.default}` : "" });
    field.addEventListener("input", () => field.setCustomValidity(outOfRange(schema, field.value)));
  } else {
    field = el("input", { type: "text", name, placeholder: schema.default ?? "" });
  }
  return el("label", { title: hint }, name.replace(/_/g, " "), field, el("span", { class: "hint", text: hint }));
}

// What the browser's min and max cannot say: an exclusive minimum, and 0 as
// "unset" (x-zero-means-unset); "" when the value is in range. The server
// checks again, so this only saves a round trip.
function outOfRange(schema, text) {
  const value = Number(text);
  if (text === "" || (value === 0 && schema["x-zero-means-unset"])) return "";
  if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return `Must be more than ${schema.exclusiveMinimum}.`;
  if (schema.minimum !== undefined && value < schema.minimum) return `Must be at least ${schema.minimum}${schema["x-zero-means-unset"] ? " (or 0 for the default)" : ""}.`;
  return "";
}

// How each kind of work reads in the picker; a kind not listed shows its name.
const OPERATIONS = {
  face_detection: "Detect faces",
  object_detection: "Detect objects",
  face_identification: "Identify faces (a collection)",
};

export function mount(view, _route, ctx) {
  const controller = new AbortController();
  let kinds = [];
  let running = null; // AbortController of the task being followed

  const file = el("input", { type: "file", name: "file", accept: "image/*,video/*,.avi,.mkv", required: true });
  const operation = el("select", { name: "kind" });
  const options = el("div", { class: "form", id: "try-options" });
  const submit = el("button", { type: "submit", class: "primary", text: "Run" });
  const form = el("form", { class: "card form", id: "try-form" },
    el("h2", { text: "Try it" }),
    el("label", {}, "Image or video", file),
    el("label", {}, "What", operation),
    el("h3", { text: "Options", style: "margin-top:6px" }), options, submit);
  const out = el("div", { class: "grid", id: "try-result" },
    el("div", { class: "card empty", text: "Pick an image or a video and press Run: the result is drawn here as it arrives." }));
  view.append(el("div", { class: "try-grid" }, form, out));

  function media() {
    const f = file.files[0];
    if (!f) return "image";
    return f.type.startsWith("video/") || /\.(avi|mkv|mp4|mov|webm)$/i.test(f.name) ? "video" : "image";
  }

  function kind() {
    return kinds.find((k) => k.kind === operation.value && k.media === media());
  }

  function renderOptions() {
    const k = kind();
    options.replaceChildren(...(k ? Object.entries(k.options).map(([name, schema]) => input(name, schema)) : []));
  }

  file.addEventListener("change", renderOptions);
  operation.addEventListener("change", renderOptions);

  api("kinds", { signal: controller.signal }).then((data) => {
    kinds = data.kinds;
    const names = [...new Set(kinds.map((k) => k.kind))];
    operation.replaceChildren(...names.map((n) => el("option", { value: n, text: OPERATIONS[n] || n })));
    renderOptions();
    ctx.live(true);
  }, (err) => ctx.live(false, err.message));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const k = kind();
    const f = file.files[0];
    if (!k || !f) return;
    if (running) running.abort();
    running = new AbortController();
    const body = new FormData();
    body.append("file", f);
    for (const field of options.querySelectorAll("input, select")) {
      if (field.type === "checkbox") { if (field.checked) body.append(field.name, "true"); }
      else if (field.value !== "") body.append(field.name, field.value);
    }
    const viewer = createViewer(k.media, { file: f });
    const status = el("span", { class: "state queued", id: "try-status", text: "uploading" });
    const link = el("a", { id: "try-task-link", hidden: true, text: "open the task page →" });
    const cancel = el("button", { class: "danger", id: "try-cancel", text: "Cancel", hidden: k.media !== "video" });
    const error = el("div", { class: "banner", hidden: true });
    out.replaceChildren(el("section", { class: "card" },
      el("div", { class: "row", style: "justify-content:space-between;margin-bottom:8px" },
        el("h2", { style: "margin:0", text: `${kindLabel(k.kind, k.media)}: ${f.name}` }), el("div", { class: "row" }, status, link, cancel)),
      error, viewer.root));
    const setStatus = (s) => { status.className = `state ${s}`; status.textContent = s; cancel.hidden = k.media !== "video" || ["succeeded", "failed", "cancelled"].includes(s); };
    submit.disabled = true;
    try {
      // The kind's route, relative to /api/ (so it stays under any path prefix).
      const accepted = await api(k.path.replace(/^\/api\//, ""), { method: "POST", body, signal: running.signal });
      link.href = `#/task/${accepted.task_id}`;
      link.hidden = false;
      out.dataset.task = accepted.task_id;
      setStatus("queued");
      cancel.onclick = () => api(`task/${accepted.task_id}`, { method: "DELETE" }).catch((err) => { error.textContent = err.message; error.hidden = false; });
      await followEvents(accepted.task_id, (e) => {
        if (e.type === "progress") viewer.setProgress(e.data.done, e.data.total);
        else if (e.type === "frame") viewer.addFrame(e.data);
        else if (e.type === "status") {
          setStatus(e.data.status);
          const t = e.data.task;
          if (t && t.media === "image") viewer.setImage(t.result);
          if (t && t.result && t.result.frames) viewer.setFrames(t.result.frames);
          if (t && t.error) { error.textContent = `${t.error.code}: ${t.error.message}`; error.hidden = false; }
        }
      }, running.signal);
    } catch (err) {
      if (!running.signal.aborted) {
        setStatus("failed");
        error.textContent = err.message;
        error.hidden = false;
        if (!link.href) viewer.root.hidden = true; // refused at upload: nothing to draw on
      }
    } finally {
      submit.disabled = false;
    }
  });

  return () => {
    controller.abort();
    if (running) running.abort();
  };
}
