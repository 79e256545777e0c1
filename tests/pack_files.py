"""Generate the pack's frontend files from the node schemas (the one source): node docs, translations, subgraph
blueprints and the app workflow. ``python tests/pack_files.py`` rewrites them; ``tests/test_pack_files.py`` checks
that regenerating changes nothing, so they cannot drift from the nodes.

- ``web/docs/<Node>.md`` and ``web/docs/<Node>/<locale>.md``: the frontend's node library fetches
  ``/extensions/<pack>/docs/<Node>/<locale>.md``, then ``…/docs/<Node>.md`` (ComfyUI_frontend ``nodeHelpService``).
  Pictures live in ``web/docs/img/`` (crops of ``docs/demo_concepts.png``, the toy world's measured sheet).
- ``locales/<lang>/main.json`` and ``nodeDefs.json`` at the pack root: ComfyUI's ``/i18n`` merges every pack's
  ``locales/<lang>/main.json`` with ``nodeDefs.json`` under the key ``nodeDefs`` (``app/custom_node_manager.py``).
- ``subgraphs/*.json``: subgraph blueprints (a workflow whose one node is a subgraph in ``definitions.subgraphs``),
  listed by cores that serve ``/global_subgraphs`` from ``custom_nodes/<pack>/subgraphs/``.
- The App-mode workflow (``example_workflows/lvo_app_find_features.json``) is a template like the others, built
  by ``tests/workflow_tools.py`` with ``extra.linearMode`` and ``extra.linearData``.

A node added later gets its doc page and English locale entries with no edit here; its strings stay English in
``zh``/``ja`` until ``tests/pack_i18n.py`` translates them (``--untranslated`` lists them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pack_i18n  # noqa: E402
import workflow_tools as wt  # noqa: E402

ROOT = wt.ROOT
DOCS, LOCALES, SUBGRAPHS = ROOT / "web" / "docs", ROOT / "locales", ROOT / "subgraphs"
APP = wt.TEMPLATES / "lvo_app_find_features.json"  # built by workflow_tools with the other templates
LANGS = ("en", "zh", "ja")
SOURCE_SHEET = ROOT / "docs" / "demo_concepts.png"

HEAD = {"en": ("Inputs", "Outputs", "What it looks like", "Cost of a first run", "input", "what it is",
               "advanced"),
        "zh": ("输入", "输出", "效果图", "首次运行的开销", "输入", "说明", "高级"),
        "ja": ("入力", "出力", "出力の例", "初回実行のコスト", "入力", "説明", "詳細設定")}

# Crops of docs/demo_concepts.png (1094 x 1500): (left, top, right, bottom) and what they show.
PICTURES = {
    "examples": ((150, 30, 550, 395), "Top dataset examples of two toy-world features (ring, white)."),
    "paper": ((550, 30, 820, 395), "The paper's LVO pictures of the same two features: they rarely show the concept."),
    "faithful": ((820, 30, 1094, 395), "Faithful pictures of the same features: the concept is visible."),
    "row": ((0, 30, 1094, 395), "One line per feature: dataset examples, paper pictures, faithful pictures."),
}
# The picture for each node and what a first run costs with its defaults (SD1.5 figures measured on 2 CPU cores,
# README "Performance": 111 s per 25-step DDIM sample, 7.8 s per polish step of one unit; a GPU is far faster).
NODE_DOCS = {
    "LVOSAELoader": ("row", "Seconds: reads the SAE file once (cached while ComfyUI runs)."),
    "LVOFeatureHook": ("row", "Instant: checks the SAE against the block, runs nothing."),
    "LVOActivityAnalysis": ("examples", "One 50-step CFG generation per prompt: 4 prompts ≈ 30 min on 2 CPU cores "
                                        "at SD1.5 size, about a minute on a GPU."),
    "LVODatasetExamples": ("examples", "One UNet pass per image: seconds."),
    "LVOSteering": ("faithful", "Free until sampled: it only wraps the model; sampling costs what it always does."),
    "LVOSteeringInit": ("paper", "One 50-step generation per unit × seed (5 seeds: ≈ 18 min a unit on 2 CPU "
                                 "cores at SD1.5 size)."),
    "LVOOptimize": ("paper", "100 steps per unit × timestep × seed (≈ 3 h a feature for the paper's protocol on 2 "
                             "CPU cores at SD1.5 size; batching many rows lowers it)."),
    "LVOFeatureGrid": ("row", "Instant: lays out images."),
    "LVOSampleBank": ("faithful", "The big one, once per model and block: 160 samples × 25 steps ≈ 5 h to sample "
                                  "and 40 min to score on 2 CPU cores at SD1.5 size; every later run reuses it."),
    "LVOFaithful": ("faithful", "With a bank: 30 polish steps per unit × seed (4 seeds ≈ 16 min a feature on 2 "
                                "CPU cores at SD1.5 size)."),
    "LVOFeatureSearch": ("examples", "One UNet pass of the image; with a bank, the bank's scores (computed once)."),
    "LVOFeaturePage": ("row", "Seconds with its inputs already computed; it scores the bank once if needed."),
    "LVOLabelSearch": ("faithful", "Instant: reads a label table. Making one (`python -m lvo_core label`, once per "
                                   "SAE) generates 24 images per vocabulary phrase: about 6 min for the toy SAE on 2 "
                                   "CPU cores, hours on a GPU for SD1.5 with the shipped 1 268-phrase list."),
}
DEFAULT_DOC = ("row", "See the node's description.")


# ------------------------------------------------------------------------------------------------ schemas
def schemas() -> dict:
    """Each node's schema (id → V3-style Schema), the pack imported as ComfyUI imports it."""
    core = wt.core_reference()
    with wt.loaded_pack(core) as pack:
        return {node_id: cls.define_schema() for node_id, cls in wt.node_classes(pack).items()}


def output_name(output) -> str:
    return output.display_name or output.io_type


def tr(lang: str, text: str | None) -> str | None:
    """``text`` in ``lang``; None when untranslated (the frontend then shows the English definition)."""
    if text is None or lang == "en":
        return text
    return pack_i18n.TEXT[lang].get(text)


def name_tr(lang: str, name: str) -> str | None:
    return name if lang == "en" else pack_i18n.NAMES[lang].get(name)


def untranslated(all_schemas: dict | None = None) -> dict[str, list[str]]:
    """Per locale, the English strings (names by id, texts by sentence) still missing from the table."""
    all_schemas = all_schemas or schemas()
    missing: dict[str, set[str]] = {lang: set() for lang in LANGS[1:]}
    for schema in all_schemas.values():
        texts = [schema.display_name, schema.description, schema.category]
        texts += [i.tooltip for i in schema.inputs] + [o.tooltip for o in schema.outputs]
        names = [i.id for i in schema.inputs] + [output_name(o) for o in schema.outputs]
        for lang in missing:
            missing[lang] |= {t for t in texts if t and tr(lang, t) is None}
            missing[lang] |= {f"name:{n}" for n in names if name_tr(lang, n) is None}
    return {lang: sorted(items) for lang, items in missing.items()}


# ------------------------------------------------------------------------------------------------ locales
def _pruned(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if v is not None}


def node_defs(lang: str, all_schemas: dict) -> dict:
    """``nodeDefs.json``: node id → display_name, description, inputs {id: {name, tooltip}}, outputs {"i": …}."""
    out = {}
    for node_id, s in sorted(all_schemas.items()):
        inputs = {i.id: _pruned({"name": name_tr(lang, i.id), "tooltip": tr(lang, i.tooltip)}) for i in s.inputs}
        outputs = {str(k): _pruned({"name": name_tr(lang, output_name(o)), "tooltip": tr(lang, o.tooltip)})
                   for k, o in enumerate(s.outputs)}
        out[node_id] = _pruned({"display_name": tr(lang, s.display_name), "description": tr(lang, s.description),
                                "inputs": {k: v for k, v in inputs.items() if v},
                                "outputs": {k: v for k, v in outputs.items() if v}})
    return out


def main_json(lang: str, all_schemas: dict) -> dict:
    """``main.json``: the category names the node library shows (``nodeCategories``)."""
    categories = sorted({s.category for s in all_schemas.values()})
    return {"nodeCategories": {c: tr(lang, c) or c for c in categories}}


# ------------------------------------------------------------------------------------------------ docs
def picture(key: str):
    from PIL import Image

    box = PICTURES[key][0]
    image = Image.open(SOURCE_SHEET).convert("RGB").crop(box)
    image.thumbnail((640, 400))
    return image


def doc_page(lang: str, node_id: str, s) -> str:
    """One node's page: what it does, its inputs and outputs, a picture of such output, a first run's cost."""
    h_in, h_out, h_pic, h_cost, h_name, h_what, h_adv = HEAD[lang]
    pic, cost = NODE_DOCS.get(node_id, DEFAULT_DOC)
    lines = [f"# {tr(lang, s.display_name) or s.display_name}", "", tr(lang, s.description) or s.description, "",
             f"## {h_in}", "", f"| {h_name} | {h_what} |", "|---|---|"]
    for i in s.inputs:
        label = name_tr(lang, i.id) or i.id
        advanced = f" *({h_adv})*" if getattr(i, "advanced", None) else ""
        tip = (tr(lang, i.tooltip) or i.tooltip or "").replace("|", "\\|")
        shown = f"`{i.id}`" + (f" {label}" if label != i.id else "")
        lines.append(f"| {shown}{advanced} | {tip} |")
    lines += ["", f"## {h_out}", "", f"| {h_name} | {h_what} |", "|---|---|"]
    for o in s.outputs:
        tip = (tr(lang, o.tooltip) or o.tooltip or "").replace("|", "\\|")
        lines.append(f"| `{output_name(o)}` | {tip} |")
    lines += ["", f"## {h_pic}", "", f"![{PICTURES[pic][1]}](img/{pic}.png)", "", PICTURES[pic][1], "",
              f"## {h_cost}", "", cost, ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ blueprints
BLUEPRINTS = {
    # file stem: (title, description, inner graph (workflow_tools style), subgraph inputs, subgraph outputs)
    # inputs: (name, type, [(node, input)]); outputs: (name, type, node, slot)
    "lvo_explain_feature": (
        "Explain this feature (LVO)",
        "One SAE feature explained: a sample bank of the model's own images, the feature's faithful pictures and "
        "its feature page. Set the feature number in the LVO Feature Hook inside.",
        {1: ("LVOFeatureHook", {"model": ("in", 0), "units": "1234", "sae": ("in", 3)}),
         2: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
         3: ("LVOSampleBank", {"model": ("in", 0), "units": wt.L(1), "empty_prompt": ("in", 2), "latent": wt.L(2)}),
         4: ("LVOFaithful", {"model": ("in", 0), "vae": ("in", 1), "units": wt.L(1), "empty_prompt": ("in", 2),
                             "bank": wt.L(3)}),
         5: ("LVOFeaturePage", {"model": ("in", 0), "vae": ("in", 1), "units": wt.L(1), "empty_prompt": ("in", 2),
                                "bank": wt.L(3), "run1_images": wt.L(4, 1), "run1_metrics": wt.L(4, 2)})},
        [("model", "MODEL"), ("vae", "VAE"), ("empty_prompt", "CONDITIONING"), ("sae", "LVO_SAE")],
        [("page", "IMAGE", 5, 1), ("pictures", "IMAGE", 4, 1), ("card", "STRING", 5, 0)]),
    "lvo_find_features_in_image": (
        "Find features in this image (LVO)",
        "The SAE features an image drives most (ranked by lift over the model's own samples), a heatmap of each "
        "over the image, and a faithful picture of each.",
        {1: ("LVOFeatureHook", {"model": ("in", 0), "units": "0", "sae": ("in", 3)}),
         2: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
         3: ("LVOSampleBank", {"model": ("in", 0), "units": wt.L(1), "empty_prompt": ("in", 2), "latent": wt.L(2)}),
         4: ("LVOFeatureSearch", {"model": ("in", 0), "vae": ("in", 1), "sae": ("in", 3), "image": ("in", 4),
                                  "empty_prompt": ("in", 2), "top": 8, "bank": wt.L(3)}),
         5: ("LVOFaithful", {"model": ("in", 0), "vae": ("in", 1), "units": wt.L(4), "empty_prompt": ("in", 2),
                             "bank": wt.L(3), "seeds": "1"}),
         6: ("LVOFeatureGrid", {"images": wt.L(5, 1), "metrics": wt.L(5, 2)})},
        [("model", "MODEL"), ("vae", "VAE"), ("empty_prompt", "CONDITIONING"), ("sae", "LVO_SAE"),
         ("image", "IMAGE")],
        [("heatmaps", "IMAGE", 4, 1), ("pictures", "IMAGE", 6, 0), ("report", "STRING", 4, 2)]),
    "lvo_feature_for_a_word": (
        "Find the feature for a word (LVO)",
        "The SAE features whose labels (made once per SAE by `python -m lvo_core label`) match a word, best "
        "detection score first, and a faithful picture of each. Type the label folder and the word inside.",
        {1: ("LVOLabelSearch", {"model": ("in", 0), "sae": ("in", 3), "labels": "sd15_SAeUron", "text": "rose"}),
         2: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
         3: ("LVOSampleBank", {"model": ("in", 0), "units": wt.L(1), "empty_prompt": ("in", 2), "latent": wt.L(2)}),
         4: ("LVOFaithful", {"model": ("in", 0), "vae": ("in", 1), "units": wt.L(1), "empty_prompt": ("in", 2),
                             "bank": wt.L(3), "seeds": "1"}),
         5: ("LVOFeatureGrid", {"images": wt.L(4, 1), "metrics": wt.L(4, 2)})},
        [("model", "MODEL"), ("vae", "VAE"), ("empty_prompt", "CONDITIONING"), ("sae", "LVO_SAE")],
        [("pictures", "IMAGE", 5, 0), ("units", "LVO_UNITS", 1, 0), ("report", "STRING", 1, 2)]),
}


def _uuid(stem: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-lvo/subgraphs/{stem}"))


def blueprint(stem: str, specs: dict) -> dict:
    """A subgraph blueprint: a workflow with one node whose type is the subgraph defined in ``definitions``."""
    title, description, graph, inputs, outputs = BLUEPRINTS[stem]
    plain = {k: (t, {n: v for n, v in vals.items() if not (isinstance(v, tuple) and v[0] == "in")})
             for k, (t, vals) in graph.items()}
    inner = wt.build({"nodes": plain}, specs)
    nodes = {n["id"]: n for n in inner["nodes"]}
    links = [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link))
             for link in inner["links"]]
    next_id = len(links) + 1
    sub_inputs = []
    for slot, (name, kind) in enumerate(inputs):
        ids = []
        for node_id, (_t, vals) in graph.items():
            for input_name, value in vals.items():
                if isinstance(value, tuple) and value[0] == "in" and value[1] == slot:
                    node = nodes[node_id]
                    target = [i["name"] for i in node["inputs"]]
                    if input_name not in target:
                        spec_names = [n for n, *_ in wt._inputs(specs[node["type"]])]
                        at = sum(1 for n in spec_names[:spec_names.index(input_name)] if n in target)
                        node["inputs"].insert(at, {"name": input_name, "type": kind, "link": None})
                        for link in links:  # slots of later inputs move one down
                            if link["target_id"] == node_id and link["target_slot"] >= at:
                                link["target_slot"] += 1
                    index = [i["name"] for i in node["inputs"]].index(input_name)
                    node["inputs"][index]["link"] = next_id
                    links.append({"id": next_id, "origin_id": -10, "origin_slot": slot, "target_id": node_id,
                                  "target_slot": index, "type": kind})
                    ids.append(next_id)
                    next_id += 1
        sub_inputs.append({"id": _uuid(f"{stem}/in/{name}"), "name": name, "type": kind, "linkIds": ids,
                           "localized_name": name, "pos": [-60, 100 + 24 * slot]})
    sub_outputs = []
    right = max(n["pos"][0] + n["size"][0] for n in nodes.values()) + 120
    for slot, (name, kind, node_id, out_slot) in enumerate(outputs):
        links.append({"id": next_id, "origin_id": node_id, "origin_slot": out_slot, "target_id": -20,
                      "target_slot": slot, "type": kind})
        nodes[node_id]["outputs"][out_slot]["links"].append(next_id)
        sub_outputs.append({"id": _uuid(f"{stem}/out/{name}"), "name": name, "type": kind, "linkIds": [next_id],
                            "localized_name": name, "pos": [right + 20, 100 + 24 * slot]})
        next_id += 1
    sub_id = _uuid(stem)
    definition = {"id": sub_id, "version": 1, "revision": 0, "name": title, "description": description,
                  "category": "LVO",
                  "state": {"lastGroupId": 0, "lastNodeId": max(nodes), "lastLinkId": next_id - 1,
                            "lastRerouteId": 0},
                  "config": {}, "inputNode": {"id": -10, "bounding": [-260, 80, 180, 40 + 24 * len(inputs)]},
                  "outputNode": {"id": -20, "bounding": [right, 80, 180, 40 + 24 * len(outputs)]},
                  "inputs": sub_inputs, "outputs": sub_outputs, "widgets": [], "nodes": list(nodes.values()),
                  "groups": [], "links": links, "extra": {}}
    host = {"id": 1, "type": sub_id, "pos": [0, 0], "size": [320, 40 + 24 * max(len(inputs), len(outputs))],
            "flags": {}, "order": 0, "mode": 0, "title": title,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in inputs],
            "outputs": [{"name": n, "type": t, "links": []} for n, t, *_ in outputs],
            "properties": {}, "widgets_values": []}
    return {"id": _uuid(f"{stem}/workflow"), "revision": 0, "last_node_id": 1, "last_link_id": 0, "nodes": [host],
            "links": [], "groups": [], "definitions": {"subgraphs": [definition]}, "config": {},
            "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


# ------------------------------------------------------------------------------------------------ all files
def generated() -> dict[Path, bytes]:
    """Every generated file and its bytes."""
    import io

    all_schemas = schemas()
    files: dict[Path, bytes] = {}

    def text(path: Path, content: str) -> None:
        files[path] = content.encode()

    def data(path: Path, obj) -> None:
        text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    for lang in LANGS:
        data(LOCALES / lang / "main.json", main_json(lang, all_schemas))
        data(LOCALES / lang / "nodeDefs.json", node_defs(lang, all_schemas))
    for node_id, s in all_schemas.items():
        text(DOCS / f"{node_id}.md", doc_page("en", node_id, s))
        for lang in LANGS:
            text(DOCS / node_id / f"{lang}.md", doc_page(lang, node_id, s))
    for key in PICTURES:
        buffer = io.BytesIO()
        picture(key).save(buffer, format="PNG", optimize=True)
        files[DOCS / "img" / f"{key}.png"] = buffer.getvalue()
    specs = wt.node_specs()
    for stem in BLUEPRINTS:
        data(SUBGRAPHS / f"{stem}.json", blueprint(stem, specs))
    return files


def stale(files: dict[Path, bytes]) -> list[Path]:
    """Generated-looking files on disk that the generator no longer writes (a removed node's page)."""
    known = set(files)
    on_disk = [p for p in DOCS.rglob("*") if p.is_file()] + [p for p in LOCALES.rglob("*.json")]
    on_disk += list(SUBGRAPHS.glob("*.json"))
    return sorted(p for p in on_disk if p not in known)


def main(argv: list[str]) -> None:
    if "--untranslated" in argv:
        for lang, items in untranslated().items():
            print(f"{lang}: {len(items)} untranslated")
            for item in items:
                print("  ", item[:100])
        return
    files = generated()
    for path in stale(files):
        path.unlink()
        print("removed", path.relative_to(ROOT))
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
            print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main(sys.argv[1:])
