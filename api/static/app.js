// larkfleet dashboard: sign in with a token, then follow the events stream (no polling).
// API data is only ever written with textContent, never parsed as HTML; no inline
// script or style anywhere, so the page runs under a strict Content-Security-Policy.
"use strict";

import { ApiError, Unauthorized, api, followEvents, token } from "./api.js";
import { FleetView } from "./fleet.js";
import { BotView } from "./bot.js";

const $ = (selector) => document.querySelector(selector);
const RECONNECT_MS = 2000;

// ---- the model: every bot the caller sees, with its live status ----

export const model = {
  bots: new Map(),       // id -> bot body (GET /api/feishu/bots)
  statuses: new Map(),   // id -> latest status record from the stream
  isAdmin: false,
  owners: new Map(),     // user id -> name (admins only: GET /api/users)
  listeners: new Set(),
  changed() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.listeners.forEach((listener) => listener());
    });
  },
};

let streamAbort = null;
let listRefresh = null;

async function loadBots() {
  const list = await api("GET", "/api/feishu/bots");
  const bots = Array.isArray(list) ? list : list.bots;
  model.bots = new Map(bots.map((bot) => [bot.id, bot]));
  model.changed();
  // Owner names: only an admin may list users; anyone else sees only their own bots.
  api("GET", "/api/users").then((result) => {
    model.isAdmin = true;
    model.owners = new Map(result.users.map((user) => [user.id, user.name]));
    model.changed();
  }).catch(() => { model.isAdmin = false; });
}

// A record about a bot the list does not know yet: created elsewhere; reload once, soon.
function refreshListSoon() {
  if (listRefresh) return;
  listRefresh = setTimeout(() => {
    listRefresh = null;
    guarded(loadBots).catch((err) => notify(`Cannot list the bots: ${err.message}`, "error"));
  }, 300);
}

function onRecord(record) {
  if (record.kind === "removed") {
    model.statuses.delete(record.botId);
    model.bots.delete(record.botId);
  } else {
    model.statuses.set(record.botId, record);
    if (!model.bots.has(record.botId)) refreshListSoon();
  }
  model.changed();
}

async function follow() {
  const controller = new AbortController();
  streamAbort = controller;
  while (!controller.signal.aborted) {
    try {
      $("#live-status").textContent = "connecting to the events stream…";
      await loadBots();
      const stream = followEvents(onRecord, controller.signal);
      $("#live-status").textContent = "live";
      await stream;
      $("#live-status").textContent = "the stream ended (service stopping?); reconnecting…";
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err instanceof Unauthorized) {
        showSignIn("The API refused the token (401): sign in again.");
        return;
      }
      $("#live-status").textContent = `not live: ${err.message}; retrying…`;
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function stopFollowing() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
}

// ---- notices: action results and failures stay until dismissed ----

export function notify(text, kind = "ok") {
  const item = document.createElement("li");
  item.className = `notice ${kind}`;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  const message = item.appendChild(document.createElement("span"));
  message.textContent = text;
  const close = item.appendChild(document.createElement("button"));
  close.type = "button";
  close.className = "dismiss";
  close.textContent = "×";
  close.title = "Dismiss";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => item.remove());
  $("#notices").prepend(item);
  return item;
}

// Every call from a view goes through here: a 401 sends the operator back to sign in.
export async function guarded(action) {
  try {
    return await action();
  } catch (err) {
    if (err instanceof Unauthorized) {
      showSignIn("The API refused the token (401): sign in again.");
      return undefined;
    }
    throw err;
  }
}

// Run an action for a button; its result or failure becomes a notice.
export async function act(label, action, buttons = []) {
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const result = await guarded(action);
    if (result !== undefined) notify(`${label}: done`, "ok");
    return result;
  } catch (err) {
    notify(`${label}: ${err instanceof ApiError ? err.message : String(err)}`, "error");
    return undefined;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    model.changed();
  }
}

// ---- sign in / out and routing ----

const views = {};

function showSignIn(message) {
  stopFollowing();
  token.clear();
  model.bots.clear();
  model.statuses.clear();
  Object.values(views).forEach((view) => view.hide());
  $("#fleet-view").hidden = true;
  $("#bot-view").hidden = true;
  $("#sign-out").hidden = true;
  $("#signin-view").hidden = false;
  $("#signin-message").textContent = message || "";
  $("#live-status").textContent = "";
  $("#token").focus();
}

function route() {
  if (!token.get()) return;
  const match = /^#\/bots\/(.+)$/.exec(location.hash);
  $("#signin-view").hidden = true;
  $("#sign-out").hidden = false;
  if (match) {
    views.fleet.hide();
    views.bot.show(decodeURIComponent(match[1]));
  } else {
    views.bot.hide();
    views.fleet.show();
  }
}

async function signIn(value) {
  token.set(value);
  try {
    await api("GET", "/api/feishu/ws/status");
  } catch (err) {
    showSignIn(err instanceof Unauthorized
      ? "The API refused the token (401)." : `Cannot reach the API: ${err.message}`);
    return;
  }
  route();
  follow();
}

function start() {
  views.fleet = new FleetView(model);
  views.bot = new BotView(model);
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    $("#token").value = "";
    if (value) signIn(value);
  });
  $("#sign-out").addEventListener("click", () => showSignIn("Signed out."));
  window.addEventListener("hashchange", route);
  if (token.get()) signIn(token.get());
  else showSignIn();
}

start();
