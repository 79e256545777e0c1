// Runs web/lvo.js under Node with the least of a browser and of ComfyUI's frontend: a DOM of plain objects, an `app`
// that records the extension, node types with addDOMWidget/computeSize/setSize. Creates nodes, sends them
// `executed` messages and prints what the widgets show, as JSON, for tests/test_ui_protocol.py to check.
// Usage: node lvo_js_harness.mjs <folder laid out as ComfyUI serves it: scripts/, extensions/comfyui-lvo/lvo.js>
import { pathToFileURL } from "node:url";
import { join } from "node:path";

class Element {
  constructor(tag) {
    Object.assign(this, { tag, style: {}, children: [], textContent: "", innerHTML: "", width: 0, height: 0 });
  }
  append(...children) { this.children.push(...children); }
  replaceChildren(...children) { this.children = children; }
  addEventListener() {}
  get scrollHeight() { return 120; }
  getContext() {
    const state = {};
    return new Proxy(state, {
      get: (target, key) => (key === "measureText" ? () => ({ width: 10 }) : key in target ? target[key] : () => {}),
      set: (target, key, value) => { target[key] = value; return true; },
    });
  }
}
globalThis.document = { createElement: (tag) => new Element(tag) };

const root = process.argv[2];
await import(pathToFileURL(join(root, "extensions", "comfyui-lvo", "lvo.js")).href);
const extension = globalThis.registeredExtension;

function nodeType() {
  function NodeType() { this.widgets = []; this.size = [200, 100]; }
  NodeType.prototype.addDOMWidget = function (name, type, element) { this.widgets.push({ name, element }); };
  NodeType.prototype.computeSize = function () { return [200, 150]; };
  NodeType.prototype.setSize = function (size) { this.size = size; };
  return NodeType;
}

async function make(name, category = "LVO") {
  const type = nodeType();
  await extension.beforeRegisterNodeDef(type, { name, category });
  const node = new type();
  node.onNodeCreated?.();
  return node;
}

const text = (el) => [el.textContent, el.innerHTML, ...el.children.map(text)].join(" ");
const widgets = (node) => Object.fromEntries(node.widgets.map((w) => [w.name, text(w.element)]));
const out = { created: {}, shown: {} };

const report = { metrics: [{ label: "feature <3>", timestep: 0, seed: 1, activation: 1.5, prior_activation: 0.25,
  ratio: null, rank: 1, num_units: 2 }], complete: true, interrupted: false, seconds: 1.5, extra_memory_mb: 2 };
const profile = Array.from({ length: 101 }, (_, k) => k / 100);
const activity = { kind: "sae", units: [{ unit: 3, profile, peaks: [500], max: profile }] };
const card = { label: "feature 3", hookpoint: "up_blocks.1.attentions.1", kind: "feature", unit: 3,
  notes: ["no activity analysis"], labels: null, activity: null, bank: null, visualizations: [] };
const messages = {
  LVOSAELoader: { text: ["SAE: 5120 features at up_blocks.1.attentions.1"] },
  LVOSteeringInit: { text: ["unit 3: no active timestep", "unit 8: fell back to 500"] },
  LVOActivityAnalysis: { lvo_activity: [JSON.stringify(activity)] },
  LVOOptimize: { lvo_metrics: [JSON.stringify(report)], images: [] },
  LVOFeaturePage: { lvo_feature: [JSON.stringify(card)] },
  LVOFeatureGrid: { text: ["a node that declares no ui key still gets what it sends"] },
};
for (const [name, message] of Object.entries(messages)) {
  const node = await make(name);
  out.created[name] = node.widgets.map((w) => w.name);
  node.onExecuted(message);
  out.shown[name] = widgets(node);
  if (name === "LVOActivityAnalysis") out.activityUnits = node.lvoActivity.units.map((u) => u.unit);
}
const other = await make("ShowText", "utils");
out.otherPackTouched = Boolean(other.onExecuted || other.widgets.length);
console.log(JSON.stringify(out));
