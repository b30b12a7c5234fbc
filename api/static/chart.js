// A small grouped bar chart in SVG. Sizes are SVG attributes (not style), so the strict
// Content-Security-Policy (no inline style) holds; colours come from app.css classes.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 140;
const PAD = { left: 32, bottom: 18, top: 8 };

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// series: [{label, values: [a, b, ...]}, ...]; classes: one CSS class per value index.
export function barChart(series, classes) {
  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart",
    preserveAspectRatio: "none" });
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const plotHeight = HEIGHT - PAD.bottom - PAD.top;
  const slot = (WIDTH - PAD.left) / series.length;
  const bar = Math.max(1, (slot - 2) / classes.length);
  svg.append(el("line", { x1: PAD.left, y1: HEIGHT - PAD.bottom, x2: WIDTH,
    y2: HEIGHT - PAD.bottom, class: "axis" }));
  svg.append(el("text", { x: 2, y: PAD.top + 8, class: "tick" }, String(max)));
  svg.append(el("text", { x: 2, y: HEIGHT - PAD.bottom, class: "tick" }, "0"));
  series.forEach((point, i) => {
    point.values.forEach((value, j) => {
      const height = (value / max) * plotHeight;
      const rect = el("rect", {
        x: PAD.left + i * slot + 1 + j * bar, y: HEIGHT - PAD.bottom - height,
        width: bar, height, class: `bar ${classes[j]}`,
      });
      rect.append(el("title", {}, `${point.label}: ${value} ${classes[j]}`));
      svg.append(rect);
    });
    if (i % 15 === 0) {
      svg.append(el("text", { x: PAD.left + i * slot, y: HEIGHT - 4, class: "tick" }, point.label));
    }
  });
  svg.dataset.total = String(series.reduce((sum, s) => sum + s.values[0], 0));
  return svg;
}
