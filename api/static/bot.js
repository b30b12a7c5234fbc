// The page of one bot: live status (from the events stream), its last day (timeline and
// per-minute counts from /history), latencies, dead letters with retry, the log tail
// following, and the form that edits every field.
"use strict";

import { api, botPath } from "./api.js";
import { act, guarded, notify } from "./app.js";
import { barChart } from "./chart.js";
import { BotForm } from "./form.js";
import { badge, bytes, errorCell, seconds, when } from "./show.js";

const $ = (selector) => document.querySelector(selector);
const LOG_MS = 2000;
const HISTORY_MS = 10000;
const LOG_LINES = 200;

export class BotView {
  constructor(model) {
    this.model = model;
    this.id = null;
    this.timers = [];
    this.form = new BotForm($("#edit-slot"), { mode: "edit", onSaved: (bot, fields) => {
      notify(`Saved ${bot.name}: ${fields.join(", ")}`, "ok");
      this.model.bots.set(bot.id, bot);
      this.model.changed();
    } });
    model.listeners.add(() => { if (this.id) this.renderStatus(); });
    for (const button of document.querySelectorAll("#bot-view [data-action]")) {
      button.addEventListener("click", () => this.action(button));
    }
  }

  show(id) {
    if (this.id !== id) this.hide();
    this.id = id;
    $("#bot-view").hidden = false;
    $("#log-text").textContent = "";
    $("#edit-panel").open = false;
    this.formFilled = false;
    this.renderStatus();
    this.refreshHistory();
    this.refreshDeadLetters();
    this.followLog();
    this.timers = [setInterval(() => this.followLog(), LOG_MS),
      setInterval(() => this.refreshHistory(), HISTORY_MS)];
  }

  hide() {
    this.timers.forEach(clearInterval);
    this.timers = [];
    this.id = null;
    $("#bot-view").hidden = true;
  }

  renderStatus() {
    const bot = this.model.bots.get(this.id);
    const status = this.model.statuses.get(this.id) || {};
    if (!bot) {
      $("#bot-name").textContent = this.id;
      return;
    }
    if (!this.formFilled) {
      this.form.fill(bot);
      this.formFilled = true;
    }
    const state = status.state || "unknown";
    $("#bot-name").textContent = bot.name;
    $("#bot-id").textContent = bot.id;
    $("#bot-state").replaceWith(Object.assign(badge(state), { id: "bot-state" }));
    $("#bot-mode").textContent = bot.useWebSocket ? "long connection" : "webhook";
    const webhook = !bot.useWebSocket;
    const connect = $('#bot-view [data-action="connect"]');
    const disconnect = $('#bot-view [data-action="disconnect"]');
    connect.disabled = webhook || state === "connected" || state === "connecting";
    disconnect.disabled = webhook || state === "disconnected";
    const error = $("#bot-error");
    error.hidden = !status.error;
    error.replaceChildren(errorCell(status));
    const facts = [
      ["Owner", this.model.owners.get(bot.owner) || bot.owner], ["App ID", bot.appId], ["Domain", bot.domain],
      ["Handler", bot.handler ? bot.handler.kind : "echo"],
      ["Connected at", when(status.connectedAt)], ["Last heartbeat", when(status.lastHeartbeat)],
      ["Pid", status.pid ?? "—"], ["Restarts", status.restarts ?? 0],
      ["Attempt", status.attempt ?? 0], ["Next retry", when(status.nextRetryAt)],
      ["Events received", status.eventsReceived ?? 0], ["Replies sent", status.repliesSent ?? 0],
      ["Pending", status.pending ?? 0], ["Dead letters", status.deadLetters ?? 0],
      ["Private memory", bytes(status.privateBytes)],
    ];
    fillFacts($("#bot-status"), facts);
    if ((status.deadLetters ?? 0) !== this.shownDeadLetters) this.refreshDeadLetters();
  }

  async refreshHistory() {
    const id = this.id;
    try {
      const history = await guarded(() => api("GET", botPath(id, "history")));
      if (!history || id !== this.id) return;
      this.renderChart(history.perMinute);
      this.renderTimeline(history.timeline);
      fillFacts($("#bot-latency"), [
        ["ACK p50 / p99", `${upTo(history.ackLatency.p50)} / ${upTo(history.ackLatency.p99)}`],
        ["Reply p50 / p99", `${upTo(history.replyLatency.p50)} / ${upTo(history.replyLatency.p99)}`],
        ["Events measured", history.ackLatency.count],
      ]);
    } catch (err) {
      if (id === this.id) $("#timeline").replaceChildren(item(`Cannot read the history: ${err.message}`));
    }
  }

  renderChart(perMinute) {
    const now = Math.floor(Date.now() / 60000) * 60;
    const minutes = Array.from({ length: 60 }, (_, i) => now - (59 - i) * 60);
    const byMinute = new Map(perMinute.map((m) => [m.minute, m]));
    const series = minutes.map((minute) => {
      const m = byMinute.get(minute) || {};
      return { label: new Date(minute * 1000).toLocaleTimeString([], { timeStyle: "short" }),
        values: [m.eventsReceived || 0, m.repliesSent || 0] };
    });
    $("#chart").replaceChildren(barChart(series, ["events", "replies"]));
  }

  renderTimeline(entries) {
    const list = $("#timeline");
    if (!entries.length) {
      list.replaceChildren(item("No state change since the service started."));
      return;
    }
    list.replaceChildren(...entries.slice().reverse().map((entry) => {
      const li = document.createElement("li");
      const time = li.appendChild(document.createElement("time"));
      time.dateTime = new Date(entry.at * 1000).toISOString();
      time.textContent = when(time.dateTime);
      li.append(" ", badge(entry.fromState || "—"), " → ", badge(entry.toState || "removed"),
        ` ${entry.why}`);
      if (entry.error) li.append(" ", errorCell({ error: entry.error }));
      return li;
    }));
  }

  async refreshDeadLetters() {
    const id = this.id;
    try {
      const result = await guarded(() => api("GET", botPath(id, "dead-letters")));
      if (!result || id !== this.id) return;
      const letters = result.deadLetters;
      this.shownDeadLetters = letters.length;
      $("#no-dead-letters").hidden = letters.length > 0;
      $("#dead-letters tbody").replaceChildren(...letters.map((letter) => {
        const tr = document.createElement("tr");
        tr.dataset.eventId = letter.eventId;
        for (const value of [letter.eventId, letter.eventType, letter.chatId, letter.attempts]) {
          tr.appendChild(document.createElement("td")).textContent = String(value);
        }
        tr.appendChild(document.createElement("td")).append(errorCell({ error: letter.lastError }));
        tr.appendChild(document.createElement("td")).textContent = when(letter.updatedAt);
        const retry = tr.appendChild(document.createElement("td"))
          .appendChild(document.createElement("button"));
        retry.type = "button";
        retry.textContent = "Retry";
        retry.dataset.action = "retry";
        retry.addEventListener("click", async () => {
          await act(`Retry ${letter.eventId}`, () => api("POST",
            botPath(id, "dead-letters", encodeURIComponent(letter.eventId), "retry")), [retry]);
          this.refreshDeadLetters();
        });
        return tr;
      }));
    } catch (err) {
      if (id === this.id) notify(`Dead letters of ${id}: ${err.message}`, "error");
    }
  }

  async followLog() {
    const id = this.id;
    const pre = $("#log-text");
    try {
      const text = await guarded(() => api("GET", `${botPath(id, "logs")}?tail=${LOG_LINES}`));
      if (text === undefined || id !== this.id) return;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text || "(the log is empty)";
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    } catch (err) {
      if (id === this.id) pre.textContent = `Cannot read the log: ${err.message}`;
    }
  }

  async action(button) {
    const id = this.id;
    const bot = this.model.bots.get(id);
    const verb = button.dataset.action;
    const name = bot ? bot.name : id;
    if (verb === "delete") {
      if (!confirm(`Delete ${name}? Its spool, dead letters and log are removed too.`)) return;
      const done = await act(`Delete ${name} (${id})`, () => api("DELETE", botPath(id)), [button]);
      if (done !== undefined) {
        this.model.bots.delete(id);
        this.model.statuses.delete(id);
        location.hash = "#/";
      }
      return;
    }
    await act(`${verb[0].toUpperCase()}${verb.slice(1)} ${name} (${id})`,
      () => api("POST", botPath(id, "ws", verb)), [button]);
  }
}

// Quantiles come from histogram buckets: the bucket's upper bound, or beyond the last one.
function upTo(value) {
  return value === null || value === undefined ? "—" : `≤ ${seconds(value)}`;
}

function fillFacts(dl, facts) {
  dl.replaceChildren(...facts.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    return [dt, dd];
  }));
}

function item(text) {
  const li = document.createElement("li");
  li.className = "muted";
  li.textContent = text;
  return li;
}
