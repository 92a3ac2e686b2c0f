// What a task found, drawn over what it was given: one image, or a video's
// frames one by one as they arrive (a slider to go back to any of them).

import { blank, drawResult, found, stage } from "./draw.js";
import { el, int, num } from "./format.js";

/**
 * media: "image" | "video"; source: {url} (an image URL), {file} (a local File),
 * {note} (no picture, and why), or null (nothing to show under the boxes: a
 * blank of the image's size).
 */
export function createViewer(media, source) {
  const root = el("div", { class: "viewer", "data-media": media });
  const note = el("div", { class: "stage-note", text: (source && source.note) || "" });
  const bar = el("div", { class: "progress", hidden: media !== "video" }, el("div"));
  const barLabel = el("div", { class: "progress-label", hidden: media !== "video" });
  const slider = el("input", { type: "range", min: 0, max: 0, value: 0, hidden: true, "aria-label": "Frame" });
  const frameRows = el("tbody");
  const frameTable = el("div", { class: "frames", hidden: media !== "video" },
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { class: "num", text: "Frame" }), el("th", { class: "num", text: "Time" }), el("th", { text: "Found" }))), frameRows));
  let picture = null;
  let view = null; // {root, overlay}
  let frames = [];
  let shown = -1;
  let follow = true;
  let videoOk = false;

  if (source && source.url) {
    picture = el("img", { src: source.url, alt: "the uploaded image" });
    picture.addEventListener("error", () => {
      note.textContent = "The image is no longer kept (GATEWAY_KEEP_INPUT_S): boxes drawn on a blank of its size.";
      picture = null;
      if (view && lastResult) place(lastResult);
    });
  } else if (source && source.file) {
    const url = URL.createObjectURL(source.file);
    if (media === "image") picture = el("img", { src: url, alt: "the uploaded image" });
    else {
      picture = el("video", { src: url, muted: true, preload: "auto", playsinline: true });
      picture.addEventListener("loadeddata", () => { videoOk = true; });
      picture.addEventListener("error", () => {
        note.textContent = "This browser cannot play the video: boxes drawn on a blank of its size.";
        picture = null;
        if (lastResult) place(lastResult);
      });
    }
  }
  let lastResult = null;
  const holder = el("div");
  if (picture && picture.tagName === "IMG") {
    // drawn again once the picture has its size on screen (labels are sized to it)
    picture.addEventListener("load", () => { if (lastResult) place(lastResult); });
  }
  if (picture && media === "image") {
    view = stage(picture, 1, 1);
    holder.append(view.root);
  }
  root.append(holder, note, bar, barLabel, slider, frameTable);

  function place(result) {
    lastResult = result;
    const wanted = picture || blank(result.image_width, result.image_height);
    if (!view || view.picture !== wanted) {
      view = stage(wanted, result.image_width, result.image_height);
      holder.replaceChildren(view.root);
    }
    drawResult(view.overlay, result);
  }

  function showFrame(i) {
    if (i < 0 || i >= frames.length) return;
    shown = i;
    const frame = frames[i];
    place(frame);
    if (picture && picture.tagName === "VIDEO" && videoOk) picture.currentTime = frame.timestamp;
    slider.value = String(i);
    for (const tr of frameRows.children) tr.classList.toggle("on", Number(tr.dataset.i) === i);
  }

  slider.addEventListener("input", () => {
    follow = Number(slider.value) === frames.length - 1;
    showFrame(Number(slider.value));
  });

  return {
    root,
    /** An image task's result. */
    setImage(result) {
      if (result) place(result);
    },
    /** One more video frame (in order of arrival). */
    addFrame(frame) {
      if (frames.some((f) => f.frame_index === frame.frame_index)) return;
      frames.push(frame);
      frames.sort((a, b) => a.frame_index - b.frame_index);
      const i = frames.indexOf(frame);
      const tr = el("tr", { "data-i": i, "data-frame": frame.frame_index, onclick: () => { follow = false; showFrame(Number(tr.dataset.i)); } },
        el("td", { class: "num", text: int(frame.frame_index) }),
        el("td", { class: "num", text: `${num(frame.timestamp, 2)} s` }),
        el("td", { text: found(frame) }));
      frameRows.append(tr);
      [...frameRows.children].forEach((row, k) => { row.dataset.i = String(k); });
      slider.max = String(frames.length - 1);
      slider.hidden = frames.length < 2;
      if (follow) showFrame(frames.length - 1);
    },
    setFrames(list) {
      for (const f of list || []) this.addFrame(f);
    },
    setProgress(done, total) {
      const fraction = total ? Math.min(1, done / total) : 0;
      bar.firstChild.style.width = `${(fraction * 100).toFixed(1)}%`;
      bar.dataset.done = String(done);
      bar.dataset.total = String(total || "");
      barLabel.textContent = total ? `${int(done)} / ${int(total)} frames (${Math.round(fraction * 100)}%)` : `${int(done)} frames`;
    },
    get shown() {
      return shown;
    },
  };
}
