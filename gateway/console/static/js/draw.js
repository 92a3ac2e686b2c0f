// Detections drawn over an image: an SVG overlay whose viewBox is the image's
// own pixel grid, so every box is drawn at exactly the pixels the API returned.

import { el, svg } from "./format.js";


const CLOSED = new Set(["left_eye", "right_eye", "top_lip", "bottom_lip"]);

/** A stage: the picture (an <img>, a <video> or a blank of the image's size) with an overlay. */
export function stage(picture, width, height) {
  const overlay = svg("svg", { class: "overlay", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const root = el("div", { class: "stage" }, picture, overlay);
  return { root, overlay, picture };
}

export function blank(width, height) {
  // as wide as the image (at most 960 px), never wider than the screen
  const wide = Math.min(width, 960);
  return el("div", { class: "blank", style: `width:min(${wide}px, calc(100vw - 64px));aspect-ratio:${width}/${height}` });
}

/** A track's colour: hues far apart for tracks numbered 1, 2, 3... */
export function trackColour(ordinal) {
  return `hsl(${Math.round((ordinal * 137.508) % 360)} 85% 60%)`;
}

/**
 * Replace what the overlay shows with one result (faces or detections).
 * tracks (videos): {ordinal(trackId) -> 1, 2, ...; trails: Map trackId -> [[x, y]...]}:
 * each tracked box in its track's colour, labelled with its number, with a short trail.
 */
export function drawResult(overlay, result, tracks = null) {
  overlay.replaceChildren();
  if (!result) return;
  overlay.setAttribute("viewBox", `0 0 ${result.image_width} ${result.image_height}`);
  // labels about 12 screen pixels tall, whatever the image's scale on screen
  const shown = overlay.getBoundingClientRect().width;
  const perPixel = shown > 0 ? result.image_width / shown : Math.max(1, Math.max(result.image_width, result.image_height) / 800);
  const items = result.faces || result.detections || [];
  const labels = [];
  items.forEach((item, index) => {
    const b = item.box;
    const group = svg("g", { class: result.faces ? "face" : "detection", "data-index": index });
    const ordinal = tracks && item.track_id ? tracks.ordinal(item.track_id) : 0;
    const colour = ordinal ? trackColour(ordinal) : null;
    if (ordinal) {
      group.setAttribute("data-track", String(item.track_id));
      group.style.setProperty("--box", colour);
      const trail = tracks.trails.get(item.track_id) || [];
      if (trail.length > 1) {
        group.append(svg("polyline", { class: "trail", points: trail.map(([x, y]) => `${x},${y}`).join(" ") }));
      }
    }
    group.append(svg("rect", {
      class: "box", x: b.left, y: b.top, width: b.right - b.left, height: b.bottom - b.top,
      "data-left": b.left, "data-top": b.top, "data-right": b.right, "data-bottom": b.bottom,
    }));
    const what =
      item.label !== undefined
        ? `${item.label} ${(item.confidence * 100).toFixed(0)}%`
        : item.matches !== undefined // identified: the name, or unknown
          ? item.subject ?? "unknown"
          : ordinal ? "face" : `face ${index + 1}`;
    const text = ordinal ? `#${ordinal} ${what}` : what;
    const size = 12 * perPixel;
    const tagY = b.top - size * 1.35 >= 0 ? b.top - size * 1.35 : b.top;
    // sized to the text as drawn (bold): an estimate until the overlay is on screen
    const tag = svg("rect", { class: "tag", x: b.left, y: tagY, width: text.length * size * 0.7 + size * 0.6, height: size * 1.35 });
    group.append(tag);
    const label = svg("text", { x: b.left + size * 0.3, y: tagY + size * 1.05, "font-size": size });
    label.style.fontSize = `${size}px`;
    label.textContent = text;
    group.append(label);
    labels.push([tag, label, size]);
    if (item.landmarks) {
      const marks = svg("g", { class: "landmarks" });
      for (const [part, points] of Object.entries(item.landmarks)) {
        const list = CLOSED.has(part) ? [...points, points[0]] : points;
        marks.append(svg("polyline", { points: list.map(([x, y]) => `${x},${y}`).join(" "), "data-part": part }));
      }
      group.append(marks);
    }
    overlay.append(group);
  });
  for (const [tag, label, size] of labels) {
    const drawn = overlay.isConnected ? label.getComputedTextLength() : 0;
    if (drawn > 0) tag.setAttribute("width", drawn + size * 0.6);
  }
}

/** How many things a result found, in words. */
export function found(result) {
  if (!result) return "";
  if (result.frames) return `${result.frames.length} frames`;
  const items = result.faces || result.detections || [];
  const noun = result.faces ? "face" : "object";
  return `${items.length} ${noun}${items.length === 1 ? "" : "s"}`;
}
