// larkfleet dashboard: signs in with an API token, then polls the API every 2 s.
// API data is only ever written with textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "larkfleet.token";
const POLL_MS = 2000;
const STATES = ["connected", "connecting", "reconnecting", "error", "disconnected", "webhook"];
// Create-form input name -> the field the API names in its 400 errors.
const API_FIELDS = {
  name: "name", appId: "appId", appSecret: "appSecret", domain: "domain",
  useWebSocket: "useWebSocket", kind: "handler.kind", url: "handler.url",
  secret: "handler.secret", target: "handler.target",
};

const $ = (selector) => document.querySelector(selector);
const rows = new Map();  // bot id -> {tr, cells}
let pollTimer = null;
let pollGeneration = 0;  // bumped on stop, so a poll in flight never re-arms a stale loop
let logBotId = null;
let serverOffsetMs = 0;  // server clock minus ours, for heartbeat ages across machines
let stateFilter = null;  // a state chip clicked at the top: show only bots in that state

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

class Unauthorized extends ApiError {}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  noteServerClock(response.headers.get("Date"));
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json() : await response.text();
  if (response.ok) return payload;
  const error = (payload && payload.error) || {};
  const message = error.message || `${response.status} ${response.statusText}`;
  const Kind = response.status === 401 ? Unauthorized : ApiError;
  throw new Kind(response.status, error.code, message, error.field);
}

// The Date header has a 1 s resolution: correct only a real skew, not its rounding.
function noteServerClock(header) {
  const offset = header ? Date.parse(header) - Date.now() : NaN;
  if (Number.isFinite(offset)) serverOffsetMs = Math.abs(offset) > 5000 ? offset : 0;
}

// ---- sign in / out ----

function showSignIn(message) {
  stopPolling();
  closeLog();
  sessionStorage.removeItem(TOKEN_KEY);
  rows.forEach(({ tr }) => tr.remove());
  rows.clear();
  $("#fleet-view").hidden = true;
  $("#sign-out").hidden = true;
  $("#signin-view").hidden = false;
  $("#signin-message").textContent = message || "";
  $("#poll-status").textContent = "";
  $("#token").focus();
}

function showFleet() {
  $("#signin-view").hidden = true;
  $("#fleet-view").hidden = false;
  $("#sign-out").hidden = false;
  startPolling();
}

// Every call goes through here: a 401 anywhere sends the operator back to sign in.
async function guarded(action) {
  try {
    return await action();
  } catch (err) {
    if (err instanceof Unauthorized) {
      showSignIn("The API refused the token (401): sign in again.");
    } else {
      throw err;
    }
  }
  return undefined;
}

// ---- the bots table ----

function age(iso) {
  if (!iso) return "—";
  const seconds = Math.max(0, Math.round((Date.now() + serverOffsetMs - Date.parse(iso)) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "medium" }) : "—";
}

function button(label, action, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener("click", onClick);
  return b;
}

function createRow(id) {
  const tr = document.createElement("tr");
  tr.dataset.botId = id;
  const names = ["name", "id", "state", "connectedAt", "heartbeat", "restarts", "queue", "error"];
  const cells = {};
  for (const name of names) {
    cells[name] = tr.appendChild(document.createElement("td"));
    cells[name].className = `col-${name}`;
  }
  cells.state.appendChild(document.createElement("span")).className = "badge";
  const actions = tr.appendChild(document.createElement("td"));
  actions.className = "col-actions";
  actions.append(
    button("Connect", "connect", () => act(id, "connect")),
    button("Disconnect", "disconnect", () => act(id, "disconnect")),
    button("Logs", "logs", () => openLog(id)),
  );
  $("#bots tbody").appendChild(tr);
  return { tr, cells };
}

function fillRow(row, bot, status) {
  const { cells } = row;
  const state = status.state || "unknown";
  const badge = cells.state.firstChild;
  cells.name.textContent = bot.name || "";
  cells.id.textContent = bot.id;
  badge.textContent = state;
  badge.className = `badge state-${state}`;
  cells.connectedAt.textContent = when(status.connectedAt);
  cells.heartbeat.textContent = age(status.lastHeartbeat);
  cells.restarts.textContent = String(status.restarts ?? 0);
  cells.queue.textContent = `${status.pending ?? 0} / ${status.deadLetters ?? 0}`;
  cells.queue.classList.toggle("warn", (status.deadLetters ?? 0) > 0);
  const retry = status.nextRetryAt ? ` (retry ${when(status.nextRetryAt)})` : "";
  const code = status.errorCode ? ` (code ${status.errorCode})` : "";
  cells.error.textContent = status.error ? status.error + code : "";
  if (state === "reconnecting") cells.error.textContent += retry;
  row.tr.querySelector('[data-action="connect"]').disabled = state === "connected";
  row.tr.querySelector('[data-action="disconnect"]').disabled = state === "disconnected";
  row.text = [bot.name, bot.id, state, cells.error.textContent].join(" ").toLowerCase();
  row.state = state;
}

// With hundreds of bots, operators narrow the table to a state or to a few names.
function applyFilter() {
  const words = $("#filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const row of rows.values()) {
    const stateOk = stateFilter === null || row.state === stateFilter;
    row.tr.hidden = !(stateOk && words.every((w) => row.text.includes(w)));
  }
  for (const chip of document.querySelectorAll("#counts .count")) {
    chip.classList.toggle("active", chip.dataset.state === stateFilter);
  }
}

function toggleStateFilter(state) {
  stateFilter = stateFilter === state ? null : state;
  applyFilter();
}

function renderCounts(statuses) {
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const s of statuses) counts[s.state] = (counts[s.state] || 0) + 1;
  const list = $("#counts");
  list.replaceChildren();
  for (const [state, n] of Object.entries(counts)) {
    const item = list.appendChild(document.createElement("li"));
    item.className = `count state-${state}`;
    item.dataset.state = state;
    item.title = `show only ${state} bots (click again for all)`;
    item.appendChild(document.createElement("strong")).textContent = String(n);
    item.append(` ${state}`);
    item.addEventListener("click", () => toggleStateFilter(state));
  }
}

function render(bots, statuses) {
  const byId = new Map(statuses.map((s) => [s.botId, s]));
  const seen = new Set();
  for (const bot of bots) {
    seen.add(bot.id);
    if (!rows.has(bot.id)) rows.set(bot.id, createRow(bot.id));
    fillRow(rows.get(bot.id), bot, byId.get(bot.id) || {});
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $("#no-bots").hidden = bots.length > 0;
  renderCounts(statuses);
  applyFilter();
}

async function refresh() {
  const [list, status] = await Promise.all([
    api("GET", "/api/feishu/bots"),
    api("GET", "/api/feishu/ws/status"),
  ]);
  render(Array.isArray(list) ? list : list.bots, status.connections);
  $("#notice").textContent = "";
  $("#poll-status").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function tick() {
  try {
    await guarded(refresh);
  } catch (err) {
    $("#notice").textContent = `Cannot reach the API: ${err.message}`;
  }
  if (logBotId) await followLog();
}

// Chained timeouts, not setInterval: a slow API never gets overlapping polls.
async function poll(generation) {
  await tick();
  if (generation === pollGeneration) pollTimer = setTimeout(() => poll(generation), POLL_MS);
}

function startPolling() {
  stopPolling();
  poll(pollGeneration);
}

function stopPolling() {
  pollGeneration += 1;
  clearTimeout(pollTimer);
}

async function act(id, verb) {
  const buttons = rows.get(id).tr.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await guarded(() => api("POST", `/api/feishu/bots/${encodeURIComponent(id)}/ws/${verb}`));
  } catch (err) {
    $("#notice").textContent = `${verb} ${id}: ${err.message}`;
  }
  buttons.forEach((b) => { b.disabled = false; });
  await tick();
}

// ---- log tail ----

function openLog(id) {
  logBotId = id;
  $("#log-bot").textContent = id;
  $("#log-text").textContent = "";
  $("#log-panel").hidden = false;
  followLog();
}

function closeLog() {
  logBotId = null;
  $("#log-panel").hidden = true;
}

async function followLog() {
  const id = logBotId;
  const pre = $("#log-text");
  try {
    const text = await guarded(() =>
      api("GET", `/api/feishu/bots/${encodeURIComponent(id)}/logs?tail=200`));
    if (text === undefined || id !== logBotId) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = text || "(the log is empty)";
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  } catch (err) {
    if (id === logBotId) pre.textContent = `Cannot read the log: ${err.message}`;
  }
}

// ---- create form ----

function showHandlerFields() {
  const kind = $("#create-form").elements.kind.value;
  document.querySelectorAll("#create-form [data-kind]").forEach((label) => {
    label.hidden = label.dataset.kind !== kind;
  });
}

function formBody(f) {
  const body = { name: f.name.value.trim(), appId: f.appId.value.trim(),
    appSecret: f.appSecret.value, useWebSocket: f.useWebSocket.checked };
  if (f.domain.value.trim()) body.domain = f.domain.value.trim();
  const kind = f.kind.value;
  body.handler = { kind };
  if (kind === "forward") Object.assign(body.handler, { url: f.url.value.trim(), secret: f.secret.value });
  if (kind === "python") body.handler.target = f.target.value.trim();
  return body;
}

// The API names the field in `error.field`, or else first in its message: mark that input.
function markField(f, err) {
  let best = null;
  for (const [input, apiName] of Object.entries(API_FIELDS)) {
    const at = err.field ? (err.field === apiName ? 0 : -1)
      : err.message.search(new RegExp(`\\b${apiName.replace(".", "\\.")}\\b`));
    if (at >= 0 && (best === null || at < best.at)) best = { input, at };
  }
  if (best) f[best.input].setAttribute("aria-invalid", "true");
}

async function createBot(event) {
  event.preventDefault();
  const f = event.target;
  const body = formBody(f);
  f.appSecret.value = "";
  f.secret.value = "";
  f.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  $("#create-error").textContent = "";
  $("#create-result").textContent = "";
  try {
    const bot = await guarded(() => api("POST", "/api/feishu/bots", body));
    if (bot === undefined) return;
    $("#create-result").textContent = `Created ${bot.name} (${bot.id}).`;
    f.reset();
    showHandlerFields();
    await tick();
  } catch (err) {
    $("#create-error").textContent = err.message;
    markField(f, err);
  }
}

// ---- start ----

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    showFleet();
  });
  $("#sign-out").addEventListener("click", () => showSignIn("Signed out."));
  $("#log-close").addEventListener("click", closeLog);
  $("#create-form").addEventListener("submit", createBot);
  $("#create-form").elements.kind.addEventListener("change", showHandlerFields);
  $("#filter").addEventListener("input", applyFilter);
  if (sessionStorage.getItem(TOKEN_KEY)) showFleet(); else showSignIn("");
});
