// Small shared renderers: state badges, times, errors (short, full text on demand).
"use strict";

const SHORT_ERROR = 60;

export function badge(state) {
  const span = document.createElement("span");
  span.className = `badge state-${state}`;
  span.textContent = state;
  return span;
}

// A time: just the clock within the last day, with the date beyond it.
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  if (Math.abs(Date.now() - date.getTime()) < 86400000) {
    return date.toLocaleTimeString([], { timeStyle: "medium" });
  }
  return date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 1 ? `${(value * 1000).toFixed(value < 0.01 ? 1 : 0)} ms` : `${value.toFixed(2)} s`;
}

export function bytes(value) {
  if (!value) return "—";
  return `${(value / 1048576).toFixed(1)} MiB`;
}

// An error as one short line; the whole text (and the retry time) behind a disclosure.
export function errorCell(status) {
  const parts = [];
  if (status.error) parts.push(status.error);
  if (status.errorCode) parts.push(`(code ${status.errorCode})`);
  if (status.state === "reconnecting" && status.nextRetryAt) parts.push(`retry ${when(status.nextRetryAt)}`);
  if (status.flapping) parts.push("flapping");
  const text = parts.join(" ");
  if (!text) return document.createTextNode("");
  const firstLine = text.split("\n")[0];
  if (firstLine.length <= SHORT_ERROR && firstLine === text) {
    const span = document.createElement("span");
    span.className = "error-short";
    span.textContent = text;
    return span;
  }
  const details = document.createElement("details");
  details.className = "error-details";
  const summary = details.appendChild(document.createElement("summary"));
  summary.textContent = `${firstLine.slice(0, SHORT_ERROR)}…`;
  summary.title = "show the whole error";
  const full = details.appendChild(document.createElement("pre"));
  full.textContent = text;
  return details;
}
