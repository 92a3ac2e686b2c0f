// Talking to the gateway. Every URL is relative to the console's own
// (…/console/), so the page works under a reverse proxy's path prefix.
// Credentials: the session cookie (percept_session) rides along with every
// request; a 401 shows the sign-in screen. Every state-changing request also
// sends the session's CSRF token (X-CSRF-Token), which only this page can read
// (from GET /api/session): the gateway refuses the cookie's requests without it.

export const API = "../api/";

let csrfToken = "";
/** The session's CSRF token, from the sign-in or GET /api/session answer. */
export function setCsrfToken(token) {
  csrfToken = token || "";
}
/** Headers a state-changing request signed in by the session must carry. */
export function csrfHeaders() {
  return csrfToken ? { "X-CSRF-Token": csrfToken } : {};
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

async function failure(response) {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    /* not JSON */
  }
  if (response.status === 401) onUnauthorized();
  return new ApiError(response.status, code, message);
}

/** GET (or another method) a JSON API: `path` is relative to /api/. */
export async function api(path, { method = "GET", body, signal, headers } = {}) {
  const response = await fetch(API + path, {
    method,
    body,
    signal,
    headers: { Accept: "application/json", ...(method === "GET" ? {} : csrfHeaders()), ...headers },
    credentials: "same-origin",
  });
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

/** Query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * A task's Server-Sent Events (status, progress, frame), read with fetch so
 * that a 401 is seen and the cookie is sent; reopened with Last-Event-ID when
 * the stream drops before the task ends. Calls onEvent({type, data, id}).
 */
export async function followEvents(taskId, onEvent, signal) {
  let last = null;
  for (let tries = 0; tries < 20 && !signal.aborted; tries++) {
    const headers = { Accept: "text/event-stream" };
    if (last) headers["Last-Event-ID"] = last;
    let response;
    try {
      response = await fetch(`${API}task/${taskId}/events`, { headers, signal, credentials: "same-origin" });
    } catch (err) {
      if (signal.aborted) return;
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!response.ok) throw await failure(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let ended = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = { type: "message", data: "", id: null };
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event.type = line.slice(7);
            else if (line.startsWith("data: ")) event.data += line.slice(6);
            else if (line.startsWith("id: ")) event.id = line.slice(4);
          }
          if (!event.data) continue; // a keep-alive comment
          if (event.id) last = event.id;
          event.data = JSON.parse(event.data);
          if (event.type === "status" && event.data.task) ended = true;
          onEvent(event);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
    }
    if (ended) return;
    await new Promise((r) => setTimeout(r, 300));
  }
}
