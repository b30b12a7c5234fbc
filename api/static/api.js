// The API from the browser: JSON calls with the session's token, and the events stream.
// The token lives in sessionStorage only: this tab, until it closes or the user signs out.
"use strict";

const TOKEN_KEY = "larkfleet.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    // The API names the field as `$.field` in its 400 messages.
    const match = /\$\.([A-Za-z.]+)/.exec(message || "");
    this.field = match ? match[1] : null;
  }
}

export class Unauthorized extends ApiError {}

function headers(extra) {
  return { Authorization: `Bearer ${token.get()}`, ...extra };
}

async function failure(response) {
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => ({})) : {};
  const error = (payload && payload.error) || {};
  const message = error.message || `${response.status} ${response.statusText}`;
  const Kind = response.status === 401 ? Unauthorized : ApiError;
  return new Kind(response.status, error.code, message);
}

export async function api(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const botPath = (id, ...rest) =>
  ["/api/feishu/bots", encodeURIComponent(id), ...rest].join("/");

// GET /api/feishu/events with the Authorization header (EventSource cannot send one):
// calls onRecord(record) for every `data:` line until the stream ends or `signal` aborts.
export async function followEvents(onRecord, signal) {
  const response = await fetch("/api/feishu/events", {
    headers: headers({ Accept: "text/event-stream" }), signal, cache: "no-store",
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, "");
      buffer = buffer.slice(end + 1);
      if (line.startsWith("data:")) onRecord(JSON.parse(line.slice(5)));
    }
  }
}
