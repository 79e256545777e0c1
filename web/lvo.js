// comfyui-lvo frontend extension: draws results inside the nodes that produced them. Plain ES module, no build.
// Protocol (nodes/ui_protocol.py, docs/comfyui.md): a node's `ui` dict arrives in its `executed` message; each key
// has one renderer in RENDERERS below, and any LVO node that sends that key gets it drawn:
//  - lvo_activity: interactive chart of activity over timesteps (hover for timestep, value, dataset max; peaks).
//  - lvo_metrics: a table of the metrics of every visualization.
//  - lvo_feature: one unit's page — activity chart, top dataset examples, bank histogram and top pool images,
//    each run's visualizations with their metrics.
//  - text: a short summary of what was loaded, selected or found.
// Everything is a DOM widget (addDOMWidget) created with the node (NODE_UI says which keys a node sends) and filled
// when it has run: the classic canvas renderer and Nodes 2.0 (Vue nodes, where canvas drawing hooks never run and
// only widgets that exist when the node is mounted are shown) both display it.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function domWidget(node, name, element, minHeight = 40) {
  const existing = node.widgets?.find((w) => w.name === name);
  if (existing) return existing.element;
  element.style.minHeight = `${minHeight}px`;
  node.addDOMWidget(name, name, element, {
    serialize: false, hideOnZoom: false, getMinHeight: () => parseFloat(element.style.minHeight) || minHeight,
  });
  const size = node.computeSize();
  node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
  return element;
}

function placeholder(text) {
  const el = document.createElement("div");
  el.style.cssText = "font:11px sans-serif;color:#999;white-space:pre-wrap";
  el.textContent = text;
  return el;
}

function drawActivity(canvas, data, hover) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, l = 36, r = 8, t = 10, b = 22;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#1e1e1e"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#555"; ctx.strokeRect(l, t, w - l - r, h - t - b);
  const x = (ts) => l + ((1000 - ts) / 1000) * (w - l - r);   // sampling runs left to right: 1000 → 0
  const y = (v) => h - b - v * (h - t - b);
  ctx.fillStyle = "#aaa"; ctx.font = "10px sans-serif";
  for (const ts of [1000, 750, 500, 250, 0]) ctx.fillText(String(ts), x(ts) - 8, h - 8);
  for (const v of [0, 0.5, 1]) ctx.fillText(v.toFixed(1), 4, y(v) + 3);
  data.units.forEach((u, i) => {
    ctx.strokeStyle = COLORS[i % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
    u.profile.forEach((v, k) => { const px = x(k * 10), py = y(v); k ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
    ctx.stroke();
    for (const p of u.peaks) {
      ctx.fillStyle = COLORS[i % COLORS.length];
      ctx.beginPath(); ctx.arc(x(p), y(u.profile[Math.round(p / 10)] ?? 0), 4, 0, 2 * Math.PI); ctx.fill();
    }
  });
  if (hover) {
    ctx.strokeStyle = "#eee"; ctx.setLineDash([3, 3]); ctx.beginPath();
    ctx.moveTo(x(hover.ts), t); ctx.lineTo(x(hover.ts), h - b); ctx.stroke(); ctx.setLineDash([]);
  }
}

function activityElement(node, getData = () => node.lvoActivity) {
  const box = document.createElement("div");
  box.style.cssText = "display:flex;flex-direction:column;gap:2px;font:11px sans-serif;color:#ddd";
  const canvas = document.createElement("canvas");
  canvas.width = 360; canvas.height = 160; canvas.style.width = "100%";
  const readout = document.createElement("div");
  readout.textContent = "hover the chart for values";
  box.append(canvas, readout);
  canvas.addEventListener("mousemove", (event) => {
    const data = getData(); if (!data) return;
    const rect = canvas.getBoundingClientRect();
    const frac = (event.clientX - rect.left) / rect.width;
    const ts = Math.max(0, Math.min(1000, Math.round((1 - (frac * canvas.width - 36) / (canvas.width - 44)) * 1000 / 10) * 10));
    const k = ts / 10;
    readout.textContent = `t=${ts}  ` + data.units.map((u) =>
      `${data.kind === "sae" ? "feature" : "channel"} ${u.unit}: ${u.profile[k]} (max ${u.max[k]})` +
      (u.peaks.includes(ts) ? " ★peak" : "")).join("  ·  ");
    drawActivity(canvas, data, { ts });
  });
  canvas.addEventListener("mouseleave", () => getData() && drawActivity(canvas, getData(), null));
  return { box, canvas, readout };
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function metricsTable(report) {
  const rows = report.metrics.map((m) =>
    `<tr><td>${escapeHtml(m.label)}</td><td>${m.timestep}</td><td>${m.seed}</td><td>${m.activation.toFixed(3)}</td>` +
    `<td>${m.prior_activation.toFixed(3)}</td><td>${m.ratio === null ? "—" : m.ratio.toFixed(2)}</td>` +
    `<td>${m.rank}/${m.num_units}</td></tr>`).join("");
  const state = report.complete ? "complete" : report.interrupted ? "interrupted (partial result)" : "stopped";
  return `<div style="font:11px sans-serif;color:#ddd">${state}, ${report.seconds}s, extra memory ` +
    `${report.extra_memory_mb} MB<table style="border-collapse:collapse;width:100%">` +
    `<tr><th>unit</th><th>t</th><th>seed</th><th>reached</th><th>prior</th><th>÷max</th><th>rank</th></tr>` +
    `${rows}</table></div>`;
}

// ------------------------------------------------------------------ feature page
const viewURL = (ref) => api.apiURL(`/view?filename=${encodeURIComponent(ref.filename)}&type=${encodeURIComponent(
  ref.type)}&subfolder=${encodeURIComponent(ref.subfolder ?? "")}&rand=${Math.random()}`);
const num = (v, digits = 3) => (v === null || v === undefined ? "—" : Number(v).toPrecision(digits));

function section(title) {
  const el = document.createElement("div");
  el.style.cssText = "margin-top:6px";
  const head = document.createElement("div");
  head.style.cssText = "font-weight:bold;color:#fff;margin-bottom:2px";
  head.textContent = title;
  el.append(head);
  return el;
}

function thumbs(entries, caption) {
  const row = document.createElement("div");
  row.style.cssText = "display:flex;flex-wrap:wrap;gap:4px";
  for (const e of entries) {
    if (!e.image) continue;
    const cell = document.createElement("figure");
    cell.style.cssText = "margin:0;width:72px;font-size:9px;line-height:11px;color:#bbb;overflow-wrap:anywhere";
    const img = document.createElement("img");
    img.src = viewURL(e.image); img.style.cssText = "width:72px;height:72px;object-fit:cover;display:block";
    img.title = caption(e);
    const text = document.createElement("figcaption");
    text.textContent = caption(e);
    cell.append(img, text);
    row.append(cell);
  }
  return row;
}

function drawHistogram(canvas, bank) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, l = 30, r = 8, t = 8, b = 18;
  const counts = bank.histogram.counts, edges = bank.histogram.edges, peak = Math.max(1, ...counts);
  ctx.fillStyle = "#1e1e1e"; ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = "#555"; ctx.strokeRect(l, t, w - l - r, h - t - b);
  const bw = (w - l - r) / counts.length;
  ctx.fillStyle = COLORS[0];
  counts.forEach((c, i) => {
    const bh = (c / peak) * (h - t - b);
    ctx.fillRect(l + i * bw + 1, h - b - bh, Math.max(1, bw - 2), bh);
  });
  ctx.fillStyle = "#aaa"; ctx.font = "10px sans-serif";
  ctx.fillText(String(peak), 4, t + 8); ctx.fillText("0", 4, h - b);
  ctx.fillText(num(edges[0]), l, h - 5);
  const last = num(edges[edges.length - 1]);
  ctx.fillText(last, w - r - ctx.measureText(last).width, h - 5);
  ctx.fillText("score →", l + (w - l - r) / 2 - 18, h - 5);
}

function runTable(run) {
  const rows = run.rows.map((m) =>
    `<tr><td>${m.timestep}</td><td>${m.seed}</td><td>${num(m.activation)}</td><td>${num(m.ratio)}</td>` +
    `<td>${m.rank ?? "—"}/${m.num_units ?? "—"}</td><td>${m.pool_index ?? "—"}</td></tr>`).join("");
  return `<table style="border-collapse:collapse;width:100%;font-size:10px"><tr><th>t</th><th>seed</th>` +
    `<th>reached</th><th>÷max</th><th>rank</th><th>pool</th></tr>${rows}</table>`;
}

function renderFeature(view, card) {
  const box = view.box;
  box.replaceChildren();
  const title = document.createElement("div");
  title.style.cssText = "font-size:13px;font-weight:bold;color:#fff";
  title.textContent = `${card.label} · ${card.hookpoint}`;
  box.append(title);
  for (const note of card.notes) box.append(placeholder(note));
  const labels = card.labels;
  if (labels) {
    const part = section(labels.items.length ? `labels (held-out detection AUROC; trusted ≥ ${labels.threshold})`
      : "labels");
    if (!labels.items.length) part.append(placeholder("no phrase of the vocabulary raises this unit"));
    else {
      if (!labels.trusted) part.append(placeholder(`no label predicts this unit (no score ≥ ${labels.threshold})`));
      const rows = labels.items.map((l) => {
        const score = l.score === null || l.score === undefined ? "–" : num(l.score, 2);
        const color = l.score >= labels.threshold ? "#7d7" : "#db7";
        return `<tr><td>${escapeHtml(l.phrase)}</td><td style="color:${color}">${score}</td>` +
          `<td>${num(l.normalised, 2)}</td></tr>`;
      }).join("");
      const table = document.createElement("div");
      table.innerHTML = `<table style="border-collapse:collapse;width:100%;font-size:10px"><tr><th>phrase</th>` +
        `<th>score</th><th>lift (normalised)</th></tr>${rows}</table>`;
      part.append(table);
    }
    box.append(part);
  }
  const act = card.activity;
  if (act) {
    const part = section(`activity over timesteps (top-${act.top_n} share, ${act.generations} generations)`);
    view.activity = { kind: card.kind === "feature" ? "sae" : "raw", units: [{ unit: card.unit, profile: act.profile,
      peaks: act.peaks, max: act.max }] };
    const chart = activityElement(null, () => view.activity);
    chart.readout.textContent = `peaks ${act.peaks.join(", ") || "none"} · dataset max ${num(act.dataset_max)} at ` +
      `t ${act.dataset_max_t} · active ${act.active_range ? act.active_range.join("–") : "never"} (hover for values)`;
    part.append(chart.box);
    drawActivity(chart.canvas, view.activity, null);
    if (act.examples.length) {
      const ex = section("top dataset examples");
      ex.append(act.examples.some((e) => e.image)
        ? thumbs(act.examples, (e) => `#${e.rank} ${num(e.value)} t${e.timestep} ${e.prompt ?? ""}`)
        : placeholder(act.examples.map((e) => `#${e.rank} ${num(e.value)} at t ${e.timestep}: ${e.prompt ?? ""}`)
          .join("\n")));
      part.append(ex);
    }
    box.append(part);
  }
  const bank = card.bank;
  if (bank) {
    const part = section(`sample bank: ${bank.size} samples at t ${bank.timestep}`);
    const canvas = document.createElement("canvas");
    canvas.width = 360; canvas.height = 110; canvas.style.width = "100%";
    const stats = document.createElement("div");
    stats.textContent = `density ${(bank.density * 100).toFixed(0)} % (score > 0) · mean ${num(bank.mean)} · ` +
      `median ${num(bank.median)} · max ${num(bank.max)}`;
    part.append(canvas, stats, thumbs(bank.top, (e) => `#${e.rank} pool ${e.index}: ${num(e.score)}` +
      (e.lift === null ? "" : ` (${num(e.lift, 2)}× mean)`)));
    drawHistogram(canvas, bank);
    box.append(part);
  }
  for (const run of card.visualizations) {
    const part = section(`${run.name}: median ${run.median_ratio === null ? "activation " +
      num(run.median_activation) : "÷max " + num(run.median_ratio)}`);
    part.append(thumbs(run.rows, (r) => `t${r.timestep} s${r.seed}: ${r.ratio === null || r.ratio === undefined
      ? num(r.activation) : num(r.ratio) + "× max"}`));
    const table = document.createElement("div");
    table.innerHTML = runTable(run);
    part.append(table);
    box.append(part);
  }
}

function featureView(node) {
  const box = document.createElement("div");
  box.style.cssText = "font:11px sans-serif;color:#ddd;overflow:auto;max-height:900px";
  box.append(placeholder("run the node to see the feature's page"));
  return { box, activity: null };
}

function fit(node, element, height) {
  element.style.minHeight = `${height}px`;
  node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
}

// ui key → renderer: `create(node)` makes the widget (state kept in node.lvo[key]); `show(node, state, value)` draws
// the key's value (always a list). Keys and their payloads: nodes/ui_protocol.py.
const RENDERERS = {
  lvo_activity: {
    create(node) {
      const chart = activityElement(node);
      domWidget(node, "lvo_activity_chart", chart.box, 200);
      chart.readout.textContent = "run the node to see its units' activity over the timesteps";
      return chart;
    },
    show(node, chart, value) {
      node.lvoActivity = JSON.parse(value[0]);
      chart.readout.textContent = "hover the chart for values";
      drawActivity(chart.canvas, node.lvoActivity, null);
    },
  },
  lvo_metrics: {
    create(node) {
      return domWidget(node, "lvo_metrics", placeholder("metrics appear here after a run"), 60);
    },
    show(node, element, value) {
      const report = JSON.parse(value[0]);
      element.innerHTML = metricsTable(report);
      fit(node, element, 60 + 16 * report.metrics.length);
    },
  },
  lvo_feature: {
    create(node) {
      const view = featureView(node);
      domWidget(node, "lvo_feature_page", view.box, 80);
      return view;
    },
    show(node, view, value) {
      renderFeature(view, JSON.parse(value[0]));
      fit(node, view.box, Math.min(900, view.box.scrollHeight + 8));
    },
  },
  text: {
    create(node) {
      return domWidget(node, "lvo_summary", placeholder(""), 20);
    },
    show(node, element, value) {
      element.textContent = value.join("\n");
    },
  },
};

// node id → the ui keys it sends, so their widgets exist from the start (equal to nodes/ui_protocol.py NODE_UI).
const NODE_UI = {
  LVOSAELoader: ["text"],
  LVOFeatureHook: ["text"],
  LVOActivityAnalysis: ["lvo_activity"],
  LVOSteeringInit: ["text"],
  LVOOptimize: ["lvo_metrics", "images"],
  LVOFaithful: ["lvo_metrics", "images"],
  LVOFeatureSearch: ["text"],
  LVOLabelSearch: ["text"],
  LVOFeaturePage: ["lvo_feature"],
};

function widgetFor(node, key) {
  node.lvo ??= {};
  node.lvo[key] ??= RENDERERS[key].create(node);
  return node.lvo[key];
}

app.registerExtension({
  name: "comfyui-lvo",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData.category?.startsWith("LVO")) return;  // only this pack's nodes; other packs' `text` is theirs
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      for (const key of NODE_UI[nodeData.name] ?? []) if (RENDERERS[key]) widgetFor(this, key);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      for (const [key, value] of Object.entries(message ?? {})) {
        if (!RENDERERS[key] || !Array.isArray(value) || !value.length) continue;  // `images`: ComfyUI draws them
        RENDERERS[key].show(this, widgetFor(this, key), value);
      }
    };
  },
});
