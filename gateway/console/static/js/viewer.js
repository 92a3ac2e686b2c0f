// What a task found, drawn over what it was given: one image, or a video's
// frames one by one as they arrive (a slider to go back to any of them).

import { blank, drawResult, found, itemsOf, stage, trackColour } from "./draw.js";
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
  // tracks (videos): numbered 1, 2, ... in order of first appearance
  const ordinals = new Map();
  const TRAIL = 12; // frames of trail behind each tracked box
  const trackRows = el("tbody");
  const trackTable = el("div", { class: "tracks", id: "tracks", hidden: true },
    el("h4", { text: "Tracks" }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Track", "Id", "Who / what", "First seen", "Last seen", "Frames"].map(
      (t, i) => el("th", { class: i === 0 || i >= 3 ? "num" : "", text: t })))), trackRows));
  const ordinal = (trackId) => {
    if (!ordinals.has(trackId)) ordinals.set(trackId, ordinals.size + 1);
    return ordinals.get(trackId);
  };

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
  root.append(holder, note, bar, barLabel, slider, frameTable, trackTable);

  function place(result) {
    lastResult = result;
    const wanted = picture || blank(result.image_width, result.image_height);
    if (!view || view.picture !== wanted) {
      view = stage(wanted, result.image_width, result.image_height);
      holder.replaceChildren(view.root);
    }
    drawResult(view.overlay, result, media === "video" ? { ordinal, trails: trailsUpTo(result) } : null);
  }

  /** Each track's recent box centres up to the frame shown (its own included). */
  function trailsUpTo(frame) {
    const trails = new Map();
    const at = frames.indexOf(frame);
    for (const f of frames.slice(Math.max(0, at - TRAIL + 1), at + 1)) {
      for (const item of itemsOf(f)) {
        if (!item.track_id || !item.box) continue;
        const b = item.box;
        if (!trails.has(item.track_id)) trails.set(item.track_id, []);
        trails.get(item.track_id).push([(b.left + b.right) / 2, (b.top + b.bottom) / 2]);
      }
    }
    return trails;
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
      for (const item of itemsOf(frame)) if (item.track_id) ordinal(item.track_id);
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
    /** The video's tracks (result.summary.tracks): a list; a click shows the track's best frame. */
    setTracks(tracks) {
      trackTable.hidden = !tracks || tracks.length === 0;
      if (trackTable.hidden) return;
      const when = (i, t) => `frame ${int(i)} · ${num(t, 2)} s`;
      trackRows.replaceChildren(...tracks.map((t) => {
        const n = ordinal(t.track_id);
        const identifying = frames.some((f) => (f.faces || []).some((x) => x.matches !== undefined));
        const who = t.face_id ? `${t.subject} (${num(t.distance, 3)})` : t.label || (identifying ? "unknown" : "face");
        return el("tr", { "data-track": t.track_id, title: `best frame ${t.best_frame_index}`,
          onclick: () => {
            const i = frames.findIndex((f) => f.frame_index === t.best_frame_index);
            if (i >= 0) { follow = false; showFrame(i); }
          } },
        el("td", { class: "num" }, el("span", { class: "swatch", style: `background:${trackColour(n)}` }), `#${n}`),
        el("td", { class: "mono", text: String(t.track_id) }),
        el("td", { text: who }),
        el("td", { class: "num", text: when(t.first_frame_index, t.first_timestamp) }),
        el("td", { class: "num", text: when(t.last_frame_index, t.last_timestamp) }),
        el("td", { class: "num", text: int(t.frames_seen) }));
      }));
    },
    get shown() {
      return shown;
    },
  };
}
