// bnlab serve's page: drawing, looking inside the network, and live training. Plain JS and SVG;
// every request goes to the server that sent this page (routes: tools/bnlab/serve/routes.h).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const state = { info: null, mates: 1, lastLook: null, runs: new Map(), looking: false, again: false, inked: false };

async function api(path, body) {
  const init = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

// ---- drawing: pointer events serve the mouse, a pen and touch alike ----
const pad = $("pad");
const ink = pad.getContext("2d");
function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  state.inked = false;
}
function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}
let drawing = null;
pad.addEventListener("pointerdown", (e) => {
  pad.setPointerCapture(e.pointerId);
  drawing = padPoint(e);
  ink.fillStyle = "#fff";
  ink.beginPath();
  ink.arc(drawing[0], drawing[1], 10, 0, 2 * Math.PI);
  ink.fill();
  state.inked = true;
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = padPoint(e);
  ink.strokeStyle = "#fff";
  ink.lineWidth = 20;
  ink.lineCap = "round";
  ink.beginPath();
  ink.moveTo(drawing[0], drawing[1]);
  ink.lineTo(p[0], p[1]);
  ink.stroke();
  drawing = p;
});
const endStroke = () => { if (drawing) { drawing = null; look(); } };
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
$("clear").onclick = () => { clearPad(); };

// The drawing at 112x112 gray levels: the server centers it to 28x28 as `bnlab predict` does.
function drawingPixels() {
  const side = 112;
  const small = document.createElement("canvas");
  small.width = small.height = side;
  const c = small.getContext("2d");
  c.drawImage(pad, 0, 0, side, side);
  const rgba = c.getImageData(0, 0, side, side).data;
  const pixels = new Array(side * side);
  for (let i = 0; i < pixels.length; ++i) pixels[i] = rgba[4 * i];
  return { width: side, height: side, pixels };
}

// ---- looking: one request at a time; a change during one asks for another after it ----
async function look() {
  if (!state.inked) return;
  if (state.looking) { state.again = true; return; }
  state.looking = true;
  try {
    const r = await api("/api/look", { ...drawingPixels(), mode: $("train-mode").checked ? "train" : "eval",
                                       mates: state.mates, source: $("source").value });
    state.lastLook = r;
    showLook(r);
    $("status").textContent = "";
  } catch (err) {
    $("status").textContent = err.message;
  } finally {
    state.looking = false;
    if (state.again) { state.again = false; look(); }
  }
}

function showLook(r) {
  document.body.dataset.looks = (+(document.body.dataset.looks || 0) + 1).toString();  // for tests: a look arrived
  $("predicted").textContent = r["class"];
  const probs = $("probs");
  probs.innerHTML = "";
  r.probabilities.forEach((p, k) => {
    const row = document.createElement("div");
    row.className = "prob" + (k === r["class"] ? " top" : "");
    row.dataset.class = k;
    row.innerHTML = `<span class="k">${k}</span><span class="bar" style="width:${(p * 100).toFixed(1)}%"></span>` +
                    `<span class="p" id="prob-${k}">${p.toFixed(4)}</span>`;
    probs.appendChild(row);
  });
  const d = $("digit").getContext("2d");
  const img = d.createImageData(28, 28);
  r.digit.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
  d.putImageData(img, 0, 0);
  $("mates-info").textContent = `batch-mates classified right: ${r.batch.mates_correct} of ${r.batch.mates} (draw #${r.batch.seed})`;
  showLayers(r.layers);
  showBnChoices(r.bn);
  showBn();
}

function showLayers(layers) {
  const box = $("layers");
  box.innerHTML = "";
  for (const l of layers) {
    const m = l.map;
    const div = document.createElement("div");
    div.className = "layer";
    div.innerHTML = `<div class="name">${l.name} <i>${l.type}</i> <span>${l.shape.join("x")}` +
                    `${m.channels < m.of_channels ? `, ${m.channels} of ${m.of_channels} maps` : ""}` +
                    ` [${m.min.toPrecision(3)}, ${m.max.toPrecision(3)}]</span></div>`;
    const plane = m.height * m.width;
    for (let c = 0; c < m.channels; ++c) {
      const cv = document.createElement("canvas");
      cv.width = m.width;
      cv.height = m.height;
      cv.className = m.height === 1 ? "strip" : "map";
      const g = cv.getContext("2d");
      const img = g.createImageData(m.width, m.height);
      for (let i = 0; i < plane; ++i) {
        const v = m.values[c * plane + i];
        img.data.set([v, v, Math.min(255, 60 + v), 255], 4 * i);
      }
      g.putImageData(img, 0, 0);
      div.appendChild(cv);
    }
    box.appendChild(div);
  }
}

function showBnChoices(bn) {
  const sel = $("bn-layer");
  const names = bn.map((b) => b.name).join(",");
  if (sel.dataset.names === names) return;
  sel.dataset.names = names;
  sel.innerHTML = bn.map((b, i) => `<option value="${i}">${b.name} (${b.type}, ${b.channels} channels)</option>`).join("") ||
                  "<option>this network has no BN layer</option>";
}
$("bn-layer").onchange = () => showBn();

// ---- small SVG charts ----
function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function scale(lo, hi, a, b) {
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  return (v) => a + (v - lo) / (hi - lo) * (b - a);
}
// A tick's label, short: 102000 -> 102k.
function tick(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  return +v.toPrecision(3);
}
function axes(svg, xlo, xhi, ylo, yhi) {
  const W = svg.viewBox.baseVal.width, H = svg.viewBox.baseVal.height;
  svg.innerHTML = "";
  el("line", { x1: 30, y1: H - 14, x2: W - 4, y2: H - 14, class: "axis" }, svg);
  el("line", { x1: 30, y1: 4, x2: 30, y2: H - 14, class: "axis" }, svg);
  el("text", { x: 27, y: 10, class: "tick", "text-anchor": "end" }, svg).textContent = tick(yhi);
  el("text", { x: 27, y: H - 14, class: "tick", "text-anchor": "end" }, svg).textContent = tick(ylo);
  el("text", { x: W - 4, y: H - 2, class: "tick", "text-anchor": "end" }, svg).textContent = tick(xhi);
  el("text", { x: 30, y: H - 2, class: "tick" }, svg).textContent = tick(xlo);
  return [scale(xlo, xhi, 32, W - 6), scale(ylo, yhi, H - 16, 6)];
}
// series: [{color, points: [[x, y]...], dots: bool, run}]
function chart(svg, series, ylo, yhi) {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) { svg.innerHTML = ""; return; }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [X, Y] = axes(svg, Math.min(...xs), Math.max(...xs), ylo ?? Math.min(...ys), yhi ?? Math.max(...ys));
  for (const s of series) {
    if (s.dots) {
      for (const [x, y] of s.points) el("circle", { cx: X(x), cy: Y(y), r: 1.8, fill: s.color }, svg);
    } else {
      el("polyline", { points: s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" "),
                       fill: "none", stroke: s.color, "stroke-width": s.width || 1.5, class: "series", "data-run": s.run ?? "" }, svg);
    }
  }
}
function bars(svg, h) {
  const n = h.counts.length, top = Math.max(...h.counts);
  const [X, Y] = axes(svg, h.min, h.max, 0, top);
  const w = (X(h.max) - X(h.min)) / n;
  h.counts.forEach((c, i) => el("rect", { x: X(h.min) + i * w, y: Y(c), width: Math.max(w - 0.5, 0.5), height: Y(0) - Y(c), class: "bin" }, svg));
}

function showBn() {
  const r = state.lastLook;
  const i = +$("bn-layer").value;
  const ids = ["bn-mean", "bn-var", "bn-affine", "hist-before", "hist-after"];
  if (!r || !r.bn[i]) { ids.forEach((id) => { $(id).innerHTML = ""; }); return; }
  const b = r.bn[i];
  const pts = (v) => v.map((y, c) => [c, y]);
  chart($("bn-mean"), [{ color: "#999", points: pts(b.running_mean), width: 1 }, { color: COLORS[0], points: pts(b.batch_mean), dots: true }]);
  chart($("bn-var"), [{ color: "#999", points: pts(b.running_var), width: 1 }, { color: COLORS[0], points: pts(b.batch_var), dots: true }], 0);
  chart($("bn-affine"), [{ color: COLORS[0], points: pts(b.gamma), dots: true }, { color: COLORS[3], points: pts(b.beta), dots: true }]);
  bars($("hist-before"), b.hist_before);
  bars($("hist-after"), b.hist_after);
}

// ---- mode switch and batch-mates ----
function modeCaption() {
  const m = state.info ? state.info.batch_mates : 63;
  $("mode-caption").textContent = $("train-mode").checked
    ? `training mode: the digit is normalized together with ${m} test images (a batch of ${m + 1}), with the batch's own mean and variance; dropout off. New batch-mates move its prediction.`
    : `evaluation mode: every BN layer uses its running mean and variance, so the ${m} batch-mates do not change the digit's prediction.`;
}
$("train-mode").onchange = () => { modeCaption(); look(); };
$("new-mates").onclick = () => { state.mates += 1; look(); };
$("source").onchange = () => look();

// ---- training ----
function presetChoices(presets) {
  $("preset").innerHTML = presets.map((p) => `<option>${p}</option>`).join("") + `<option value="">pasted spec…</option>`;
}
$("preset").onchange = () => { $("spec").hidden = $("preset").value !== ""; };

async function startTraining(body) {
  $("train-error").textContent = "";
  try {
    await api("/api/train", body);
  } catch (err) {
    $("train-error").textContent = err.message;
  }
}
$("start").onclick = () => {
  const body = { batchnorm: $("bn").checked, lr: +$("lr").value, steps: Math.round(+$("steps").value) };
  if ($("preset").value === "") body.spec = $("spec").value; else body.preset = $("preset").value;
  startTraining(body);
};
$("train-first").onclick = () => startTraining({ preset: "seed", batchnorm: true, lr: 1.0, steps: 938 });
$("stop").onclick = () => api("/api/train/stop", {}).catch((err) => { $("train-error").textContent = err.message; });

function runColor(id) { return COLORS[(id - 1) % COLORS.length]; }

function drawCurves() {
  const runs = [...state.runs.values()];
  chart($("loss-chart"), runs.map((r) => ({ color: runColor(r.id), run: r.id, points: r.points.map((p) => [p.step, p.loss]) })), 0);
  chart($("acc-chart"), runs.map((r) => ({ color: runColor(r.id), run: r.id, points: r.points.map((p) => [p.step, p.accuracy]) })), 0, 100);
  const last = runs.filter((r) => r.points.length).pop();
  if (last) {
    const pts = (k) => last.points.map((p) => [p.step, p[k]]);
    chart($("pct-chart"), [{ color: runColor(last.id), points: pts("p15"), width: 1 }, { color: runColor(last.id), points: pts("p50"), width: 2.5 },
                           { color: runColor(last.id), points: pts("p85"), width: 1 }]);
    $("pct-caption").textContent = `15th, 50th, 85th percentiles of the input of the last hidden nonlinearity (${last.points[0].layer}'s output), run ${last.id} (paper, Fig. 1 b/c)`;
  }
}

function drawRuns() {
  const body = $("runs").querySelector("tbody");
  body.innerHTML = "";
  let running = false;
  for (const r of state.runs.values()) {
    running ||= r.info.state === "running";
    const tr = document.createElement("tr");
    tr.id = `run-${r.id}`;
    tr.innerHTML = `<td><span class="swatch" style="background:${runColor(r.id)}"></span>${r.id}</td><td>${r.info.model}</td>` +
                   `<td>${r.info.batchnorm ? "yes" : "no"}</td><td>${r.info.lr}</td><td>${r.step}/${r.info.steps}</td>` +
                   `<td class="state">${r.info.state}${r.info.message ? ": " + r.info.message : ""}</td><td></td>`;
    if (r.info.state !== "running" && r.info.state !== "failed") {
      const save = document.createElement("button");
      save.textContent = "save";
      save.onclick = () => api(`/api/runs/${r.id}/save`, {}).then((s) => { tr.lastChild.append(` saved ${s.weights}`); })
                                                           .catch((err) => { $("train-error").textContent = err.message; });
      const serve = document.createElement("button");
      serve.textContent = "serve";
      serve.className = "serve";
      serve.onclick = () => api(`/api/runs/${r.id}/serve`, {}).then(() => { $("source").value = "served"; refreshInfo(); look(); })
                                                             .catch((err) => { $("train-error").textContent = err.message; });
      tr.lastChild.append(save, serve);
    }
    body.appendChild(tr);
  }
  $("start").disabled = running;
  $("stop").disabled = !running;
}

// Server-sent events: every run's start and end, and each point of its curves.
function listen() {
  const events = new EventSource("/api/events");
  events.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (e.type === "run") {
      const r = state.runs.get(e.run.id) || { id: e.run.id, points: [], step: 0 };
      r.info = e.run;
      r.step = Math.max(r.step, e.run.step);
      state.runs.set(r.id, r);
      drawRuns();
    } else if (e.type === "point") {
      const r = state.runs.get(e.run);
      if (!r) return;
      r.points.push(e);
      r.step = e.step;
      drawCurves();
      drawRuns();
      if ($("source").value === "run") look();  // the run's newest snapshot
    }
  };
}

async function refreshInfo() {
  const info = await api("/api/info");
  state.info = info;
  $("model-label").textContent = info.model || "none yet";
  $("no-model").hidden = !!info.model;
  if (!info.model) $("source").value = "run";
  modeCaption();
  return info;
}

async function main() {
  clearPad();
  const info = await refreshInfo();
  presetChoices(info.presets);
  listen();
}
main().catch((err) => { $("status").textContent = err.message; });
