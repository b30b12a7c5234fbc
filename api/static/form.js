// The bot form, for creating a bot and for editing every field of one.
// Secrets are write-only: the API never returns them, the form never shows them, and an
// edit sends a secret only when one was typed (an empty secret keeps the stored one).
"use strict";

import { ApiError, api, botPath } from "./api.js";
import { guarded } from "./app.js";

const SECRETS = ["appSecret", "verificationToken", "encryptKey"];
const HANDLER_SECRETS = { forward: ["secret"], openai: ["apiKey"] };
// Form input -> the field path the API names in its errors (`$.handler.url`).
const API_FIELDS = {
  forwardTimeout: "handler.timeout", openaiTimeout: "handler.timeout", url: "handler.url",
  secret: "handler.secret", target: "handler.target", baseUrl: "handler.baseUrl",
  model: "handler.model", apiKey: "handler.apiKey", systemPrompt: "handler.systemPrompt",
  historyTurns: "handler.historyTurns", stream: "handler.stream", kind: "handler.kind",
  answerAtAll: "options.answerAtAll", answerBots: "options.answerBots",
  replyFallback: "options.replyFallback", proxy: "options.proxy",
};

function handlerOf(f) {
  const kind = f.kind.value;
  const handler = { kind };
  if (kind === "forward") {
    Object.assign(handler, { url: f.url.value.trim(), timeout: Number(f.forwardTimeout.value) });
    if (f.secret.value) handler.secret = f.secret.value;
  } else if (kind === "python") {
    handler.target = f.target.value.trim();
  } else if (kind === "openai") {
    Object.assign(handler, {
      baseUrl: f.baseUrl.value.trim(), model: f.model.value.trim(),
      systemPrompt: f.systemPrompt.value, historyTurns: Number(f.historyTurns.value),
      timeout: Number(f.openaiTimeout.value), stream: f.stream.checked,
    });
    if (f.apiKey.value) handler.apiKey = f.apiKey.value;
  }
  return handler;
}

function optionsOf(f) {
  const proxy = f.proxy.value.trim();
  return { answerAtAll: f.answerAtAll.checked, answerBots: f.answerBots.checked,
    replyFallback: f.replyFallback.value, proxy: proxy || null };
}

// Equal as JSON whatever the key order (the API's and the form's orders differ).
function same(a, b) {
  const canonical = (value) => JSON.stringify(value, (key, v) => (
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x.localeCompare(y))) : v));
  return canonical(a) === canonical(b);
}

export class BotForm {
  constructor(slot, { mode, onSaved }) {
    this.mode = mode;
    this.onSaved = onSaved;
    this.bot = null;
    slot.replaceChildren(document.querySelector("#bot-form-template").content.cloneNode(true));
    this.form = slot.querySelector("form");
    this.form.querySelector('button[type="submit"]').textContent =
      mode === "create" ? "Create" : "Save changes";
    this.form.querySelector(".secrets-note").hidden = mode === "create";
    this.form.elements.kind.addEventListener("change", () => this.showHandlerFields());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.showHandlerFields();
  }

  showHandlerFields() {
    const kind = this.form.elements.kind.value;
    this.form.querySelectorAll("[data-kind]").forEach((label) => {
      label.hidden = label.dataset.kind !== kind;
    });
  }

  // Edit mode: fill every field from the bot's body (secrets show only whether one is set).
  fill(bot) {
    this.bot = bot;
    const f = this.form.elements;
    f.name.value = bot.name;
    f.appId.value = bot.appId;
    f.domain.value = bot.domain;
    f.useWebSocket.checked = bot.useWebSocket;
    for (const name of SECRETS) {
      const has = bot[`has${name[0].toUpperCase()}${name.slice(1)}`];
      f[name].value = "";
      f[name].placeholder = has ? "set (type to replace)" : "not set";
    }
    const h = bot.handler || { kind: "echo" };
    f.kind.value = h.kind;
    f.url.value = h.url || "";
    f.forwardTimeout.value = h.kind === "forward" ? h.timeout : 10;
    f.target.value = h.target || "";
    f.baseUrl.value = h.baseUrl || "";
    f.model.value = h.model || "";
    f.systemPrompt.value = h.systemPrompt || "";
    f.historyTurns.value = h.historyTurns ?? 10;
    f.openaiTimeout.value = h.kind === "openai" ? h.timeout : 30;
    f.stream.checked = h.stream ?? true;
    f.secret.value = f.apiKey.value = "";
    f.secret.placeholder = h.hasSecret ? "set (type to replace)" : "not set";
    f.apiKey.placeholder = h.hasApiKey ? "set (type to replace)" : "not set";
    const o = bot.options || {};
    f.answerAtAll.checked = Boolean(o.answerAtAll);
    f.answerBots.checked = Boolean(o.answerBots);
    f.replyFallback.value = o.replyFallback || "drop";
    f.proxy.value = o.proxy || "";
    this.showHandlerFields();
  }

  body() {
    const f = this.form.elements;
    const fields = { name: f.name.value.trim(), appId: f.appId.value.trim(),
      domain: f.domain.value.trim() || "feishu", useWebSocket: f.useWebSocket.checked };
    const handler = handlerOf(f);
    const options = optionsOf(f);
    if (this.mode === "create") {
      const body = { ...fields, handler, options };
      for (const name of SECRETS) if (f[name].value) body[name] = f[name].value;
      if (!body.appSecret) body.appSecret = "";
      return body;
    }
    const body = {};
    for (const [key, value] of Object.entries(fields)) {
      if (value !== this.bot[key]) body[key] = value;
    }
    for (const name of SECRETS) if (f[name].value) body[name] = f[name].value;
    const shownHandler = { ...this.bot.handler };
    const typedSecret = (HANDLER_SECRETS[handler.kind] || []).some((k) => k in handler);
    const comparable = { ...handler };
    (HANDLER_SECRETS[handler.kind] || []).forEach((k) => {
      delete comparable[k];
      delete shownHandler[`has${k[0].toUpperCase()}${k.slice(1)}`];
    });
    if (typedSecret || !same(comparable, shownHandler)) body.handler = handler;
    if (!same(options, { ...this.bot.options, proxy: this.bot.options?.proxy ?? null })) {
      body.options = options;
    }
    return body;
  }

  markField(err) {
    this.form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    if (!err.field) return;
    const input = Object.keys(API_FIELDS).find((name) => API_FIELDS[name] === err.field
      && !this.form.elements[name].closest("[hidden]"))
      || (this.form.elements[err.field] ? err.field : null);
    if (input) {
      this.form.elements[input].setAttribute("aria-invalid", "true");
      this.form.elements[input].focus();
    }
  }

  async submit() {
    const error = this.form.querySelector(".form-error");
    const button = this.form.querySelector('button[type="submit"]');
    error.textContent = "";
    const body = this.body();
    if (this.mode === "edit" && !Object.keys(body).length) {
      error.textContent = "Nothing changed.";
      return;
    }
    button.disabled = true;
    try {
      const bot = await guarded(() => (this.mode === "create"
        ? api("POST", "/api/feishu/bots", body)
        : api("PATCH", botPath(this.bot.id), body)));
      if (bot === undefined) return;
      // Typed secrets never stay in the page once sent.
      for (const el of this.form.querySelectorAll('input[type="password"]')) el.value = "";
      this.form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
      if (this.mode === "create") this.form.reset();
      else this.fill(bot);
      this.showHandlerFields();
      this.onSaved(bot, Object.keys(body));
    } catch (err) {
      for (const el of this.form.querySelectorAll('input[type="password"]')) el.value = "";
      error.textContent = err instanceof ApiError ? err.message : String(err);
      if (err instanceof ApiError) this.markField(err);
    } finally {
      button.disabled = false;
    }
  }
}
