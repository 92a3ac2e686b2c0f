// Results drawn over an image: an SVG overlay whose viewBox is the image's
// own pixel grid, so every box, keypoint and mask is drawn at exactly the
// pixels the API returned. Faces and detections have their own shapes; any
// other kind's result has the generic one (`items`: box, label, score,
// keypoints, mask, track_id, each optional).

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

/** What a result (or a video frame) found: its faces, detections or generic items. */
export function itemsOf(result) {
  return result.faces || result.detections || result.items || [];
}

const NOUNS = { faces: "face", detections: "object", items: "item" };
const pct = (score) => `${(score * 100).toFixed(0)}%`;

/** A generic item's words: its label and score, and its track on an image. */
function genericText(item, index, tracked) {
  const words = [item.label, item.score !== undefined ? pct(item.score) : undefined].filter((w) => w !== undefined && w !== "");
  const what = words.length ? words.join(" ") : `item ${index + 1}`;
  return item.track_id && !tracked ? `${what} · track ${item.track_id}` : what;
}

/** Where a generic item without a box is labelled: its first mask or keypoint. */
function anchorOf(item) {
  if (item.box) return [item.box.left, item.box.top];
  if (item.mask && item.mask.length) return item.mask[0];
  if (item.keypoints && item.keypoints.length) return [item.keypoints[0].x, item.keypoints[0].y];
  return null;
}

function drawMask(group, item) {
  if (item.mask && item.mask.length > 2) {
    group.append(svg("polygon", { class: "mask", points: item.mask.map(([x, y]) => `${x},${y}`).join(" ") }));
  }
}

function drawKeypoints(group, item, perPixel) {
  for (const point of item.keypoints || []) {
    const dot = svg("circle", { class: "keypoint", cx: point.x, cy: point.y, r: 3.5 * perPixel });
    const words = [point.name, point.score !== undefined ? pct(point.score) : undefined].filter(Boolean);
    if (words.length) {
      const title = svg("title", {});
      title.textContent = words.join(" ");
      dot.append(title);
    }
    group.append(dot);
  }
}

/** A label on a tag above `anchor` ([x, y]), about 12 screen pixels tall; returns [tag, text, size]. */
function drawLabel(group, text, [x, y], perPixel) {
  const size = 12 * perPixel;
  const tagY = y - size * 1.35 >= 0 ? y - size * 1.35 : y;
  // sized to the text as drawn (bold): an estimate until the overlay is on screen
  const tag = svg("rect", { class: "tag", x, y: tagY, width: text.length * size * 0.7 + size * 0.6, height: size * 1.35 });
  const label = svg("text", { x: x + size * 0.3, y: tagY + size * 1.05, "font-size": size });
  label.style.fontSize = `${size}px`;
  label.textContent = text;
  group.append(tag, label);
  return [tag, label, size];
}

/** What a face's or a detection's label says. */
function typedText(item, index, ordinal) {
  if (item.label !== undefined) return `${item.label} ${pct(item.confidence)}`;
  if (item.matches !== undefined) return item.subject ?? "unknown"; // identified: the name, or unknown
  return ordinal ? "face" : `face ${index + 1}`;
}

/**
 * Replace what the overlay shows with one result (faces, detections or generic items).
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
  const generic = !result.faces && !result.detections;
  const labels = [];
  itemsOf(result).forEach((item, index) => {
    const b = item.box;
    const group = svg("g", { class: result.faces ? "face" : result.detections ? "detection" : "item", "data-index": index });
    const ordinal = tracks && item.track_id ? tracks.ordinal(item.track_id) : 0;
    if (ordinal) {
      group.setAttribute("data-track", String(item.track_id));
      group.style.setProperty("--box", trackColour(ordinal));
      const trail = tracks.trails.get(item.track_id) || [];
      if (trail.length > 1) {
        group.append(svg("polyline", { class: "trail", points: trail.map(([x, y]) => `${x},${y}`).join(" ") }));
      }
    }
    if (generic) drawMask(group, item);
    if (b) {
      group.append(svg("rect", {
        class: "box", x: b.left, y: b.top, width: b.right - b.left, height: b.bottom - b.top,
        "data-left": b.left, "data-top": b.top, "data-right": b.right, "data-bottom": b.bottom,
      }));
    }
    const anchor = anchorOf(item);
    if (anchor) {
      const what = generic ? genericText(item, index, Boolean(ordinal)) : typedText(item, index, ordinal);
      labels.push(drawLabel(group, ordinal ? `#${ordinal} ${what}` : what, anchor, perPixel));
    }
    if (generic) drawKeypoints(group, item, perPixel); // over the label: a point at the top stays seen
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
  const items = itemsOf(result);
  const noun = NOUNS[Object.keys(NOUNS).find((key) => result[key])] || "item";
  return `${items.length} ${noun}${items.length === 1 ? "" : "s"}`;
}
