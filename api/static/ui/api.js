// The REST API as the pages use it: the key in the Authorization header (never in a URL),
// problem+json errors as ApiError, Server-Sent Events read with fetch streaming.

const KEY = "trainapi.key";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetApiKey() {
  sessionStorage.removeItem(KEY);
}

/** An HTTP error with the RFC 9457 problem document the API sent (or one made up for a network failure). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || `HTTP ${status}`;
    this.detail = problem.detail || "";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

let unauthorized = () => {};

/** Called when the API answers 401: the key is missing, wrong or revoked. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function headers(extra = {}) {
  const h = new Headers(extra);
  const key = apiKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  return h;
}

async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return body;
  } catch {
    // not JSON: fall through
  }
  return { title: response.statusText || `HTTP ${response.status}`, detail: text.slice(0, 300) };
}

async function send(path, { method = "GET", json, body, headers: extra, signal } = {}) {
  const h = headers(extra);
  if (json !== undefined) {
    h.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: h, body, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, {
      title: "The service did not answer",
      detail: "Check that trainapi is running and reachable, then retry.",
    });
  }
  if (!response.ok) {
    const error = new ApiError(response.status, await problemOf(response));
    if (response.status === 401) unauthorized(error);
    throw error;
  }
  return response;
}

/** A JSON API call; resolves to the parsed body (null for 204). */
export async function api(path, options) {
  const response = await send(path, options);
  if (response.status === 204) return null;
  return response.json();
}

/** A JSON resource, or null when the API answers 404 (it does not exist, or is another tenant's). */
export async function find(path) {
  try {
    return await api(path);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

/** Download a response as a file (weights): fetched with the key, saved through a blob: URL. */
export async function download(path, filename) {
  const response = await send(path);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Server-Sent Events of `path`, read with fetch so the key travels in a header.
 * Yields {event, id, data} (data parsed as JSON when it is JSON). Reconnects after a dropped
 * connection with Last-Event-ID, and stops after the `end` event or when `signal` aborts.
 */
export async function* events(path, { lastEventId = null, signal } = {}) {
  let last = lastEventId;
  let failures = 0;
  while (!signal?.aborted) {
    const extra = { Accept: "text/event-stream" };
    if (last != null) extra["Last-Event-ID"] = String(last);
    let response;
    try {
      response = await send(path, { headers: extra, signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.status && err.status !== 503) throw err; // 401, 404: retrying cannot help
      failures += 1;
      await pause(Math.min(1000 * 2 ** failures, 15_000), signal);
      continue;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let ended = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
          const message = parseEvent(block);
          if (!message) continue;
          if (message.id != null) last = message.id;
          failures = 0;
          yield message;
          if (message.event === "end") {
            ended = true;
            return;
          }
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      // the connection dropped: reconnect below
    } finally {
      if (!ended) reader.cancel().catch(() => {});
    }
    failures += 1;
    await pause(Math.min(500 * 2 ** failures, 15_000), signal);
  }
}

function parseEvent(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (!data.length) return null;
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain text data
  }
  return { event, id, data: parsed };
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Call `fn` now and every `ms` while the page is open; errors go to `onError` (polling goes on). */
export function every(ms, fn, onError) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try {
      const more = await fn();
      if (more === false) stopped = true;
    } catch (err) {
      onError?.(err);
    }
    if (!stopped) timer = setTimeout(tick, document.hidden ? ms * 4 : ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
