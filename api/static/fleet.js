// The fleet view: every bot in a paged table, sorted by any column and filtered by
// state, owner and text. Only the rows of the current page exist in the DOM, so a
// thousand bots cost the same as fifty; counts come from the whole model.
"use strict";

import { api, botPath } from "./api.js";
import { act, notify } from "./app.js";
import { BotForm } from "./form.js";
import { badge, errorCell, when } from "./show.js";

const $ = (selector) => document.querySelector(selector);
const STATES = ["connected", "connecting", "reconnecting", "error", "disconnected", "webhook"];
const NUMERIC = new Set(["restarts", "eventsReceived", "repliesSent", "pending", "deadLetters"]);

export class FleetView {
  constructor(model) {
    this.model = model;
    this.visible = false;
    this.page = 0;
    this.sort = { key: "name", descending: false };
    this.stateFilter = null;
    this.rendered = new Map();  // id -> {signature, tr}: unchanged rows are reused as they are
    this.openErrors = new Set();  // ids whose full error the operator opened
    this.createForm = new BotForm($("#create-slot"), { mode: "create", onSaved: (bot) => {
      notify(`Created ${bot.name} (${bot.id})`, "ok");
      this.model.bots.set(bot.id, bot);
      this.model.changed();
    } });
    model.listeners.add(() => { if (this.visible) this.render(); });
    $("#filter").addEventListener("input", () => { this.page = 0; this.render(); });
    $("#owner-filter").addEventListener("change", () => { this.page = 0; this.render(); });
    $("#page-size").addEventListener("change", () => { this.page = 0; this.render(); });
    $("#page-prev").addEventListener("click", () => { this.page -= 1; this.render(); });
    $("#page-next").addEventListener("click", () => { this.page += 1; this.render(); });
    document.querySelectorAll("#bots th[data-sort]").forEach((th) => {
      th.tabIndex = 0;
      th.setAttribute("aria-sort", "none");
      const sortBy = () => this.sortBy(th.dataset.sort);
      th.addEventListener("click", sortBy);
      th.addEventListener("keydown", (event) => { if (event.key === "Enter") sortBy(); });
    });
  }

  show() {
    this.visible = true;
    $("#fleet-view").hidden = false;
    this.render();
  }

  hide() {
    this.visible = false;
    $("#fleet-view").hidden = true;
  }

  sortBy(key) {
    this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : false };
    this.render();
  }

  // One row's values, flat, for sorting and filtering.
  rows() {
    const out = [];
    for (const [id, bot] of this.model.bots) {
      const status = this.model.statuses.get(id) || {};
      out.push({
        id, bot, status,
        name: bot.name || "", ownerId: bot.owner || "",
        owner: this.model.owners.get(bot.owner) || bot.owner || "", appId: bot.appId || "",
        state: status.state || (bot.useWebSocket ? "unknown" : "webhook"),
        connectedAt: status.connectedAt || "", error: status.error || "",
        restarts: status.restarts ?? 0, eventsReceived: status.eventsReceived ?? 0,
        repliesSent: status.repliesSent ?? 0, pending: status.pending ?? 0,
        deadLetters: status.deadLetters ?? 0,
      });
    }
    return out;
  }

  filtered(rows) {
    const words = $("#filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    const owner = $("#owner-filter").value;
    return rows.filter((row) => {
      if (this.stateFilter && row.state !== this.stateFilter) return false;
      if (owner && row.ownerId !== owner) return false;
      if (!words.length) return true;
      const text = `${row.name} ${row.id} ${row.appId} ${row.state} ${row.error}`.toLowerCase();
      return words.every((word) => text.includes(word));
    });
  }

  sorted(rows) {
    const { key, descending } = this.sort;
    const sign = descending ? -1 : 1;
    const compare = NUMERIC.has(key)
      ? (a, b) => a[key] - b[key]
      : (a, b) => String(a[key]).localeCompare(String(b[key]), undefined, { numeric: true });
    return rows.sort((a, b) => sign * (compare(a, b) || a.id.localeCompare(b.id)));
  }

  render() {
    const all = this.rows();
    this.renderCounts(all);
    this.renderOwners(all);
    const rows = this.sorted(this.filtered(all));
    const size = Number($("#page-size").value);
    const pages = Math.max(1, Math.ceil(rows.length / size));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const shown = rows.slice(this.page * size, (this.page + 1) * size);
    const rendered = new Map();
    const trs = shown.map((row) => {
      const signature = JSON.stringify([row.status, row.bot, this.openErrors.has(row.id)]);
      const previous = this.rendered.get(row.id);
      const tr = previous && previous.signature === signature ? previous.tr : this.renderRow(row);
      rendered.set(row.id, { signature, tr });
      return tr;
    });
    this.rendered = rendered;
    const body = $("#bots tbody");
    if (trs.length !== body.children.length || trs.some((tr, i) => body.children[i] !== tr)) {
      body.replaceChildren(...trs);
    }
    const first = rows.length ? this.page * size + 1 : 0;
    const of = rows.length === all.length ? "" : ` (filtered from ${all.length})`;
    $("#page-info").textContent =
      `${first}-${this.page * size + shown.length} of ${rows.length}${of} · page ${this.page + 1} of ${pages}`;
    $("#page-prev").disabled = this.page === 0;
    $("#page-next").disabled = this.page >= pages - 1;
    $("#no-bots").hidden = all.length > 0;
    document.body.classList.toggle("is-admin", this.model.isAdmin);
    document.querySelectorAll("#bots th[data-sort]").forEach((th) => {
      const active = th.dataset.sort === this.sort.key;
      th.setAttribute("aria-sort", active ? (this.sort.descending ? "descending" : "ascending")
        : "none");
    });
  }

  renderCounts(all) {
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const row of all) counts[row.state] = (counts[row.state] || 0) + 1;
    const chips = Object.entries(counts).map(([state, n]) => {
      const chip = document.createElement("li");
      const button = chip.appendChild(document.createElement("button"));
      button.type = "button";
      button.className = `count state-${state}`;
      button.dataset.state = state;
      button.classList.toggle("active", state === this.stateFilter);
      button.setAttribute("aria-pressed", String(state === this.stateFilter));
      button.title = `show only ${state} bots (click again for all)`;
      button.appendChild(document.createElement("strong")).textContent = String(n);
      button.append(` ${state}`);
      button.addEventListener("click", () => {
        this.stateFilter = this.stateFilter === state ? null : state;
        this.page = 0;
        this.render();
      });
      return chip;
    });
    const total = document.createElement("li");
    total.className = "total";
    total.textContent = `${all.length} bots`;
    $("#counts").replaceChildren(total, ...chips);
  }

  renderOwners(all) {
    const label = $("#owner-filter-label");
    label.hidden = !this.model.isAdmin;
    if (!this.model.isAdmin) return;
    const select = $("#owner-filter");
    const names = new Map(all.map((row) => [row.ownerId, row.owner]));
    const owners = [...names.keys()].sort((a, b) => names.get(a).localeCompare(names.get(b)));
    const have = [...select.options].slice(1).map((o) => `${o.value}=${o.text}`);
    if (have.join() === owners.map((id) => `${id}=${names.get(id)}`).join()) return;
    const current = select.value;
    const options = owners.map((id) => new Option(names.get(id), id));
    select.replaceChildren(new Option("every owner", ""), ...options);
    select.value = owners.includes(current) ? current : "";
  }

  renderRow(row) {
    const tr = document.createElement("tr");
    tr.dataset.botId = row.id;
    const cell = (name, content) => {
      const td = tr.appendChild(document.createElement("td"));
      td.className = `col-${name}`;
      if (content instanceof Node) td.append(content);
      else td.textContent = content;
      return td;
    };
    const link = document.createElement("a");
    link.href = `#/bots/${encodeURIComponent(row.id)}`;
    link.textContent = row.name || row.id;
    cell("name", link);
    cell("id", row.id);
    cell("owner", row.owner).classList.add("admin-only");
    cell("state", badge(row.state));
    cell("connectedAt", when(row.status.connectedAt));
    for (const key of NUMERIC) cell(key, String(row[key])).classList.add("num");
    tr.querySelector(".col-deadLetters").classList.toggle("warn", row.deadLetters > 0);
    const error = cell("error", errorCell(row.status)).firstChild;
    if (error instanceof HTMLDetailsElement) {
      error.open = this.openErrors.has(row.id);
      error.addEventListener("toggle", () => {
        if (error.open) this.openErrors.add(row.id);
        else this.openErrors.delete(row.id);
      });
    }
    const actions = cell("actions", "");
    const webhook = row.bot.useWebSocket === false;
    const connect = this.button("Connect", "connect", row, actions);
    const disconnect = this.button("Disconnect", "disconnect", row, actions);
    connect.disabled = webhook || row.state === "connected" || row.state === "connecting";
    disconnect.disabled = webhook || row.state === "disconnected";
    if (webhook) {
      connect.title = disconnect.title = "a webhook bot is always served: nothing to connect";
    }
    return tr;
  }

  button(label, verb, row, parent) {
    const b = parent.appendChild(document.createElement("button"));
    b.type = "button";
    b.textContent = label;
    b.dataset.action = verb;
    b.addEventListener("click", () => act(`${label} ${row.name} (${row.id})`,
      () => api("POST", botPath(row.id, "ws", verb)), [b]));
    return b;
  }
}
