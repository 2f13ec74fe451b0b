// The Consumption page's own SVG charts (no library: a few hundred rectangles and a pie): drawBars() and
// drawPie(). Loaded after page.js and before consumption.js. Values come already scaled to the page's unit;
// every text goes in through textContent. A bar that drills down is a keyboard button (Enter or Space).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) if (value !== null && value !== undefined) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Ticks of a value axis: about ``count`` round steps (1, 2, 2.5, 5 x 10^n) covering [low, high].
function niceTicks(low, high, count) {
  if (!(high > low)) high = low + 1;
  const raw = (high - low) / count;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.floor(low / step) * step; v <= high + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  if (out[out.length - 1] < high) out.push(out[out.length - 1] + step);
  return out;
}

// spec: {width, height, buckets: [{label, title, drill}], loads: [{name, colour, v: [number|null], q: [...]}],
// mode: "stacked"|"side", format(value) -> text, unit, words: {partial, missing, open}, onDrill(index)}.
function drawBars(box, spec) {
  const width = Math.max(320, spec.width), height = spec.height || 340;
  const left = 72, right = 12, top = 22, bottom = 46;
  const n = spec.buckets.length;
  const sums = spec.buckets.map((_, i) => spec.loads.reduce((acc, l) => {
    const v = l.v[i];
    if (v > 0) acc.pos += v; else if (v < 0) acc.neg += v;
    return acc;
  }, {pos: 0, neg: 0}));
  const values = spec.loads.flatMap((l) => l.v.filter((v) => v !== null));
  const high = spec.mode === "side" ? Math.max(0, ...values) : Math.max(0, ...sums.map((s) => s.pos));
  const low = spec.mode === "side" ? Math.min(0, ...values) : Math.min(0, ...sums.map((s) => s.neg));
  const ticks = niceTicks(low, high, 5);
  const y0 = ticks[0], y1 = ticks[ticks.length - 1];
  const y = (v) => top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0));
  const svg = svgEl("svg", {width, height, viewBox: "0 0 " + width + " " + height, class: "bar-chart",
                            role: "group", "aria-labelledby": spec.labelledBy});
  const axis = svgEl("g", {class: "axis", "aria-hidden": "true"});
  for (const v of ticks) {
    axis.append(svgEl("line", {x1: left, x2: width - right, y1: y(v), y2: y(v), class: v === 0 ? "zero" : "grid"}));
    axis.append(svgEl("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end"}, spec.format(v)));
  }
  axis.append(svgEl("text", {x: 4, y: 12, class: "unit"}, spec.unit));
  svg.append(axis);
  const slot = (width - left - right) / Math.max(1, n);
  const barWidth = Math.max(2, Math.min(80, slot * 0.72));
  const labelEvery = Math.max(1, Math.ceil(n / Math.max(1, Math.floor((width - left - right) / 64))));
  const shown = spec.loads.length;
  spec.buckets.forEach((bucket, i) => {
    const x = left + slot * i + (slot - barWidth) / 2;
    const qs = spec.loads.map((l) => l.q[i]);
    const missing = shown > 0 && qs.every((q) => q === "missing");
    const partial = !missing && qs.some((q) => q !== "good");
    const group = svgEl("g", {class: "bucket" + (partial ? " partial" : "") + (missing ? " missing" : ""),
                              "data-i": i});
    const total = spec.loads.reduce((acc, l) => acc + (l.v[i] || 0), 0);
    const words = bucket.title + ": " + (missing ? spec.words.missing : spec.format(total) + " " + spec.unit +
      (partial ? " (" + spec.words.partial + ")" : ""));
    group.append(svgEl("title", null, words + (bucket.drill ? " — " + spec.words.open : "")));
    group.append(svgEl("rect", {x: left + slot * i, y: top, width: slot, height: height - top - bottom,
                                class: "hit"}));
    if (spec.mode === "side") {
      const w = barWidth / Math.max(1, shown);
      spec.loads.forEach((l, k) => {
        const v = l.v[i];
        if (v === null || v === 0) return;
        group.append(svgEl("rect", {x: x + k * w, y: Math.min(y(v), y(0)), width: Math.max(1, w - (w > 4 ? 1 : 0)),
                                    height: Math.abs(y(v) - y(0)), fill: l.colour, class: "seg"}));
      });
    } else {
      let pos = 0, neg = 0;
      for (const l of spec.loads) {
        const v = l.v[i];
        if (v === null || v === 0) continue;
        const from = v > 0 ? pos : neg, to = from + v;
        if (v > 0) pos = to; else neg = to;
        group.append(svgEl("rect", {x, y: y(Math.max(from, to)), width: barWidth,
                                    height: Math.max(0.5, Math.abs(y(from) - y(to))), fill: l.colour, class: "seg"}));
      }
    }
    if (missing) group.append(svgEl("text", {x: x + barWidth / 2, y: y(0) - 4, "text-anchor": "middle",
                                              class: "mark"}, "—"));
    else if (partial) group.append(svgEl("text", {x: x + barWidth / 2, y: Math.max(top - 4, y(high) - 6) + 12,
                                                    "text-anchor": "middle", class: "mark"}, "≈"));
    if (i % labelEvery === 0) {
      group.append(svgEl("text", {x: left + slot * i + slot / 2, y: height - bottom + 18, "text-anchor": "middle",
                                  class: "label", "aria-hidden": "true"}, bucket.label));
    }
    if (bucket.drill) {
      group.setAttribute("role", "button");
      group.setAttribute("tabindex", "0");
      group.setAttribute("aria-label", words + " — " + spec.words.open);
      group.classList.add("drill");
      group.addEventListener("click", () => spec.onDrill(i));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); spec.onDrill(i); }
      });
    } else {
      group.setAttribute("role", "img");
      group.setAttribute("aria-label", words);
    }
    svg.append(group);
  });
  box.replaceChildren(svg);
}

// slices: [{name, colour, value > 0}]; the shares of their sum as a pie (a whole circle for one slice).
function drawPie(box, slices, label, format) {
  const size = 220, r = 100, c = size / 2;
  const total = slices.reduce((a, s) => a + s.value, 0);
  const svg = svgEl("svg", {width: size, height: size, viewBox: "0 0 " + size + " " + size, class: "pie-chart",
                            role: "img", "aria-label": label});
  let angle = -Math.PI / 2;
  for (const slice of slices) {
    const share = slice.value / total;
    const title = svgEl("title", null, slice.name + ": " + format(share * 100) + " %");
    if (share >= 0.999999) {
      const whole = svgEl("circle", {cx: c, cy: c, r, fill: slice.colour});
      whole.append(title);
      svg.append(whole);
      break;
    }
    const next = angle + share * 2 * Math.PI;
    const large = next - angle > Math.PI ? 1 : 0;
    const d = "M" + c + " " + c + " L" + (c + r * Math.cos(angle)) + " " + (c + r * Math.sin(angle)) + " A" + r + " " +
      r + " 0 " + large + " 1 " + (c + r * Math.cos(next)) + " " + (c + r * Math.sin(next)) + " Z";
    const path = svgEl("path", {d, fill: slice.colour, stroke: "#fff", "stroke-width": slices.length > 60 ? 0 : 1});
    path.append(title);
    svg.append(path);
    angle = next;
  }
  box.replaceChildren(svg);
}
