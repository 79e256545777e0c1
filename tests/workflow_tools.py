"""Build, validate and convert ComfyUI workflows (UI format, as the frontend saves them) against real node
definitions: ComfyUI core from the saved ``/object_info`` of ComfyUI 0.3.64, this pack from its node classes'
``INPUT_TYPES`` (what ComfyUI's ``/object_info`` sends for a V3 node).

``python tests/workflow_tools.py`` rewrites the Browse Templates folder ``example_workflows/`` from the graphs in
:data:`GRAPHS` (the source): each workflow's JSON and a same-name ``.jpg`` thumbnail (a drawing of the graph under its
title). There is no second copy: ComfyUI lists the ``*.json`` of every one of ``example_workflows/``, ``example/``,
``examples/``, ``workflow/`` and ``workflows/`` of a pack, so a git clone with a copy in ``workflows/`` showed every
template twice. No ``index.json``: ComfyUI lists every ``*.json`` there
as a template (an "index" card), and the frontend shows a pack's templates by file name and ``.jpg`` thumbnail only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
from comfy_api_standin import api_modules

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "comfyui-0.3.64-object_info-core.json"
# ComfyUI's saved /object_info (its tooltips are ComfyUI's prose, so it is not shipped in the pack): it sits next to
# the project's checkout in CI and on the development machines; a clone without it skips the checks that need it.
MISSING_REFERENCE = "" if REFERENCE.is_file() else (
    f"needs ComfyUI 0.3.64's saved core /object_info at {REFERENCE} (with the txt2img reference workflows beside it); "
    "a plain clone of the pack does not carry it")
needs_reference = pytest.mark.skipif(bool(MISSING_REFERENCE), reason=MISSING_REFERENCE)
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}
NOTE = "Note"  # a frontend-only node (text shown on the canvas); never sent to the server
EXTRA_HEIGHT = {"LVOActivityAnalysis": 210, "LVOOptimize": 80, "LVOFaithful": 80, "LVOSAELoader": 30,
                "LVOFeatureHook": 30, "LVOFeaturePage": 860}  # DOM widgets
CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SAE = "SAeUron"


@contextlib.contextmanager
def loaded_pack(core: dict):
    """This pack imported as ComfyUI imports it (V3 through the stand-in ``comfy_api``, ComfyUI's sampler names from
    the saved core specs)."""
    samplers = core["KSampler"]["input"]["required"]
    stub = types.ModuleType("comfy.samplers")
    stub.KSampler = types.SimpleNamespace(SAMPLERS=samplers["sampler_name"][0], SCHEDULERS=samplers["scheduler"][0])
    comfy = sys.modules.get("comfy") or types.ModuleType("comfy")
    api = api_modules()
    saved = {k: sys.modules.get(k) for k in ("comfy", "comfy.samplers", *api)}
    sys.modules["comfy"], sys.modules["comfy.samplers"] = comfy, stub
    sys.modules.update(api)
    comfy.samplers = stub
    try:
        spec = importlib.util.spec_from_file_location("comfyui_lvo_wf", ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = pack
        spec.loader.exec_module(pack)
        pack_glue = sys.modules["comfyui_lvo_wf.nodes.comfy_glue"]
        pack_glue.list_saes = lambda: [SAE]
        yield pack
    finally:
        for name in [n for n in sys.modules if n.startswith("comfyui_lvo_wf")]:
            sys.modules.pop(name)
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


def node_classes(pack) -> dict[str, type]:
    """The pack's node classes by id, from its V3 entry point (as ComfyUI gets them)."""
    extension = asyncio.run(pack.comfy_entrypoint())
    return {cls.__name__: cls for cls in asyncio.run(extension.get_node_list())}  # named as its id


def _pack_specs(core: dict) -> dict:
    """/object_info-style specs of this pack's nodes (imported as ComfyUI imports the pack)."""
    with loaded_pack(core) as pack:
        return {node_id: {"input": cls.INPUT_TYPES(), "output": list(cls.RETURN_TYPES),
                          "output_name": list(cls.RETURN_NAMES), "name": node_id}
                for node_id, cls in node_classes(pack).items()}


def core_reference() -> dict:
    """ComfyUI core's node definitions (``/object_info`` of ComfyUI 0.3.64)."""
    if MISSING_REFERENCE:
        raise FileNotFoundError(MISSING_REFERENCE)
    return json.loads(REFERENCE.read_text())


def node_specs() -> dict:
    core = core_reference()
    return {**core, **_pack_specs(core)}


def _inputs(spec: dict) -> list[tuple[str, str, dict, bool]]:
    """(name, type, options, is_widget) in definition order, required before optional."""
    result = []
    order = spec.get("input_order") or {g: list(spec["input"].get(g, {})) for g in ("required", "optional")}
    for group in ("required", "optional"):
        for name in order.get(group, []):
            entry = spec["input"][group][name]
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            type_name = "COMBO" if isinstance(kind, list) else kind
            widget = type_name in WIDGET_TYPES and not options.get("forceInput")
            result.append((name, type_name, options, widget))
    return result


def _has_control(name: str, options: dict) -> bool:
    return name in SEED_NAMES or bool(options.get("control_after_generate"))


# ------------------------------------------------------------------------------------------------ building
def build(graph: dict, specs: dict) -> dict:
    """UI-format workflow from ``{"nodes": {id: (type, {input: value or ("link", src_id, slot)}), …}}``."""
    nodes, links = [], []
    incoming: dict[tuple[int, str], int] = {}
    for node_id, (type_name, values) in graph["nodes"].items():
        for name, value in values.items():
            if isinstance(value, tuple) and value and value[0] == "link":
                link_id = len(links) + 1
                src, slot = value[1], value[2]
                src_type = specs[graph["nodes"][src][0]]["output"][slot]
                links.append([link_id, src, slot, node_id, None, src_type])
                incoming[(node_id, name)] = link_id
    for order, (node_id, (type_name, values)) in enumerate(graph["nodes"].items()):
        if type_name == NOTE:
            nodes.append({"id": node_id, "type": NOTE, "pos": [0, 0], "size": [330, 150], "flags": {}, "order": order,
                          "mode": 0, "inputs": [], "outputs": [], "properties": {"text": ""},
                          "widgets_values": [values["text"]], "color": "#432", "bgcolor": "#653"})
            continue
        spec = specs[type_name]
        node_inputs, widgets = [], []
        for name, kind, options, widget in _inputs(spec):
            link = incoming.get((node_id, name))
            if widget and link is None:
                if name in values:
                    value = values[name]
                else:
                    choices = spec["input"]["required"].get(name, [[None]])[0] if kind == "COMBO" else [None]
                    value = options.get("default", choices[0] if choices else None)
                widgets.append(value)
                if _has_control(name, options):
                    widgets.append("fixed")
                continue
            if link is None and not widget:
                continue  # an optional socket left unconnected
            entry = {"name": name, "type": kind, "link": link}
            if widget:
                entry["widget"] = {"name": name}
            node_inputs.append(entry)
        for link in links:
            if link[3] == node_id and link[0] in [i["link"] for i in node_inputs]:
                link[4] = [i["link"] for i in node_inputs].index(link[0])
        outputs = [{"name": n, "type": t, "links": [l[0] for l in links if l[1] == node_id and l[2] == i]}
                   for i, (n, t) in enumerate(zip(spec.get("output_name") or spec["output"], spec["output"]))]
        multiline = sum(1 for n, k, o, w in _inputs(spec) if w and o.get("multiline") and (node_id, n) not in incoming)
        height = (50 + 24 * (len(widgets) + len(node_inputs) + len(outputs)) + 90 * multiline
                  + EXTRA_HEIGHT.get(type_name, 0))
        nodes.append({"id": node_id, "type": type_name, "pos": [0, 0], "size": [330, height], "flags": {},
                      "order": order, "mode": 0, "inputs": node_inputs, "outputs": outputs,
                      "properties": {"Node name for S&R": type_name}, "widgets_values": widgets})
    groups = _layout(nodes, links, graph.get("groups") or [("", list(graph["nodes"]))])
    return {"id": "00000000-0000-0000-0000-000000000000", "revision": 0, "last_node_id": max(graph["nodes"]),
            "last_link_id": len(links), "nodes": nodes, "links": links, "groups": groups, "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}, "frontendVersion": "1.27.10", "lvo": graph.get("note", ""),
                      **graph.get("extra", {})},
            "version": 0.4}


GROUP_COLORS = ("#3f789e", "#8a6d3b", "#4f7a4f", "#7a4f7a")


def _layout(nodes: list[dict], links: list[list], groups: list[tuple[str, list[int]]]) -> list[dict]:
    """Each group is one band, bands stacked top to bottom; inside a band, left to right by pipeline stage (a
    node's column is its longest path from a source within the band). Returns the UI-format groups (titled frames)."""
    parents: dict[int, list[int]] = {}
    for link in links:
        parents.setdefault(link[3], []).append(link[1])
    by_id = {n["id"]: n for n in nodes}
    frames, top = [], 40
    for index, (title, members) in enumerate(groups):
        inside = set(members)
        depth: dict[int, int] = {}

        def column(node_id: int) -> int:
            if node_id not in depth:
                depth[node_id] = 1 + max((column(p) for p in parents.get(node_id, []) if p in inside), default=-1)
            return depth[node_id]

        heights: dict[int, int] = {}
        band_top = top + (110 if title else 0)  # room for a title readable at fit-to-view zoom
        for node in sorted((by_id[m] for m in members), key=lambda n: (column(n["id"]), n["order"])):
            col = column(node["id"])
            node["pos"] = [30 + 370 * col, band_top + heights.get(col, 0)]
            heights[col] = heights.get(col, 0) + node["size"][1] + 40
        bottom = band_top + max(heights.values()) - 40
        if title:
            width = 370 * (max(depth.values()) + 1) - 10
            frames.append({"id": index + 1, "title": title, "bounding": [10, top, width, bottom - top + 20],
                           "color": GROUP_COLORS[index % len(GROUP_COLORS)], "font_size": 72, "flags": {}})
        top = bottom + 80
    return frames


# ------------------------------------------------------------------------------------------------ checking
def validate(workflow: dict, specs: dict) -> list[str]:
    """Problems with a UI-format workflow: unknown node types, broken links, widget values that do not fit."""
    problems = []
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link in workflow["links"]:
        link_id, src, slot, dst, dst_slot, kind = link
        if src not in nodes or dst not in nodes:
            problems.append(f"link {link_id} joins missing nodes")
            continue
        out = nodes[src]["outputs"][slot]
        inp = nodes[dst]["inputs"][dst_slot]
        if link_id not in out["links"] or inp["link"] != link_id:
            problems.append(f"link {link_id} is not recorded on both ends")
        if not (out["type"] == inp["type"] == kind):
            problems.append(f"link {link_id}: {out['type']} → {inp['type']} (declared {kind})")
    for node in workflow["nodes"]:
        if node["type"] == NOTE:
            if not (isinstance(node.get("widgets_values"), list) and len(node["widgets_values"]) == 1):
                problems.append(f"node {node['id']} (Note): needs exactly its text")
            continue
        spec = specs.get(node["type"])
        if spec is None:
            problems.append(f"node {node['id']}: unknown type {node['type']}")
            continue
        linked = {i["name"] for i in node["inputs"] if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        for name, kind, options, widget in _inputs(spec):
            required = name in spec["input"].get("required", {})
            if widget and name not in linked:
                if not values:
                    problems.append(f"node {node['id']} ({node['type']}): no value for widget {name}")
                    break
                value = values.pop(0)
                if _has_control(name, options):
                    values.pop(0) if values else problems.append(f"node {node['id']}: missing control of {name}")
                problems += [f"node {node['id']} ({node['type']}).{name}: {p}" for p in _check_value(value, kind,
                                                                                                     spec, name, options)]
            elif not widget and required and name not in linked:
                problems.append(f"node {node['id']} ({node['type']}): required input {name} is not connected")
        if values:
            problems.append(f"node {node['id']} ({node['type']}): {len(values)} widget values too many")
    return problems


MODEL_FILES = ("ckpt_name", "sae_name", "unet_name", "clip_name1", "clip_name2", "vae_name")


def _check_value(value, kind: str, spec: dict, name: str, options: dict) -> list[str]:
    if kind == "COMBO":
        choices = (spec["input"].get("required", {}).get(name) or spec["input"]["optional"][name])[0]
        if name in MODEL_FILES:  # model files: whatever the user's models folder holds
            return [] if isinstance(value, str) and value else ["empty file name"]
        return [] if value in choices else [f"{value!r} is not one of the choices"]
    if kind == "INT" and not (isinstance(value, int) and not isinstance(value, bool)):
        return [f"{value!r} is not an integer"]
    if kind == "FLOAT" and not isinstance(value, (int, float)):
        return [f"{value!r} is not a number"]
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return [f"{value!r} is not a boolean"]
    if kind == "STRING" and not isinstance(value, str):
        return [f"{value!r} is not a string"]
    for bound, test in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        if kind in ("INT", "FLOAT") and bound in options and not test(value, options[bound]):
            return [f"{value} is outside {bound} {options[bound]}"]
    return []


def to_api(workflow: dict, specs: dict) -> dict:
    """The API-format prompt the frontend would send for a UI-format workflow (``app.graphToPrompt``)."""
    links = {l[0]: l for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] == NOTE:
            continue  # the frontend leaves virtual nodes out of the prompt
        spec = specs[node["type"]]
        values = list(node.get("widgets_values") or [])
        inputs = {}
        linked = {i["name"]: i["link"] for i in node["inputs"] if i.get("link") is not None}
        for name, kind, options, widget in _inputs(spec):
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
                continue
            if widget:
                inputs[name] = values.pop(0)
                if _has_control(name, options):
                    values.pop(0)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


# ------------------------------------------------------------------------------------------------ the examples
def L(src: int, slot: int = 0) -> tuple:  # noqa: N802 - reads like a link in the graphs below
    return ("link", src, slot)


PROMPTS = "a portrait of a woman\na red rose in a vase\na waterfall in a forest\na city street at night"
GET_MODELS_NOTE = ("Models this workflow needs:\n"
                   "- checkpoint: Stable Diffusion 1.5 (v1-5-pruned-emaonly.safetensors) in models/checkpoints\n"
                   "- SAE: SAeUron from the hub repo bcywinski/SAeUron, folder models/sae/SAeUron\n"
                   "  (SDXL: sdxl-unbox, hub repo surkovv/sdxl-unbox)\n"
                   "Symlinked folders and extra_model_paths.yaml 'sae:' folders work too.")
BASE = {99: (NOTE, {"text": GET_MODELS_NOTE}),
        1: ("CheckpointLoaderSimple", {"ckpt_name": CHECKPOINT}),
        2: ("CLIPTextEncode", {"clip": L(1, 1), "text": ""}),
        3: ("LVOSAELoader", {"sae_name": SAE, "hookpoint": "up_blocks.1.attentions.1", "k": 0})}


def _feature_chain(first: int, hook_inputs: dict, prefix: str) -> dict:
    a, s, o, g, save, chart = range(first, first + 6)
    return {
        a: ("LVOActivityAnalysis", {"model": L(1), "clip": L(1, 1), "vae": L(1, 2), "units": L(first - 1),
                                    "prompts": PROMPTS, "steps": 50, "cfg": 7.5}),
        s: ("LVOSteeringInit", {"model": L(1), "units": L(first - 1), "empty_prompt": L(2), "activity": L(a)}),
        o: ("LVOOptimize", {"model": L(1), "vae": L(1, 2), "units": L(first - 1), "empty_prompt": L(2),
                            "prior": L(s, 1), "activity": L(a)}),
        g: ("LVOFeatureGrid", {"images": L(o, 1), "metrics": L(o, 2)}),
        save: ("SaveImage", {"images": L(g), "filename_prefix": prefix}),
        chart: ("PreviewImage", {"images": L(a, 1)}),
        first - 1: ("LVOFeatureHook", hook_inputs),
    }


LOAD = "Load: checkpoint, empty prompt, SAE"
LOADERS = [99, 1, 2, 3]
# An image, the bank built beside it and the features it drives most: the feature-search template and the app share it.
IMAGE_SEARCH = {**BASE, 4: ("LoadImage", {"image": "example.png"}),
                5: ("LVOFeatureHook", {"model": L(1), "units": "0", "sae": L(3)}),
                6: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                7: ("LVOSampleBank", {"model": L(1), "units": L(5), "empty_prompt": L(2), "latent": L(6),
                                      "name": "sd15_up_blocks.1.attentions.1"}),
                8: ("LVOFeatureSearch", {"model": L(1), "vae": L(1, 2), "sae": L(3), "image": L(4),
                                         "empty_prompt": L(2), "top": 8, "bank": L(7)})}
GRAPHS = {
    "lvo_faithful_feature.json": {
        "title": "LVO: faithful feature pictures",
        "note": "The default recipe: a sample bank of the model's own images (built once, kept under "
                "output/lvo_banks/), each feature's best one at t = 200, polished for 30 steps.",
        "groups": [(LOAD, LOADERS), ("Features 1234 and 77: sample bank -> faithful pictures", [4, 5, 6, 7, 8, 9])],
        "nodes": {**BASE, 4: ("LVOFeatureHook", {"model": L(1), "units": "1234, 77", "sae": L(3)}),
                  5: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                  6: ("LVOSampleBank", {"model": L(1), "units": L(4), "empty_prompt": L(2), "latent": L(5),
                                        "name": "sd15_up_blocks.1.attentions.1"}),
                  7: ("LVOFaithful", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                      "bank": L(6)}),
                  8: ("LVOFeatureGrid", {"images": L(7, 1), "metrics": L(7, 2)}),
                  9: ("SaveImage", {"images": L(8), "filename_prefix": "lvo_faithful"})}},
    "lvo_sdxl_turbo_faithful.json": {
        "title": "LVO on SDXL-Turbo (sdxl-unbox)",
        "note": "SDXL-Turbo with an sdxl-unbox SAE on up_blocks.0.attentions.1 (read as the block's update, "
                "output - input, as it was trained): a 4-step sample bank (Turbo is sampled from t = 999), each "
                "feature's best pool image at t = 200, polished for 30 steps.",
        "groups": [("Load: SDXL-Turbo, empty prompt, sdxl-unbox SAE", [99, 1, 2, 3]),
                   ("Features 10 and 1024: 4-step sample bank -> faithful pictures", [4, 5, 6, 7, 8, 9])],
        "nodes": {99: (NOTE, {"text": "Models this workflow needs:\n"
                                      "- checkpoint: SDXL-Turbo (sd_xl_turbo_1.0_fp16.safetensors from the hub repo "
                                      "stabilityai/sdxl-turbo) in models/checkpoints\n"
                                      "- SAE: sdxl-unbox's SDXL-Turbo SAEs (hub repo surkovv/sdxl-unbox, folder "
                                      "checkpoints/) in models/sae/sdxl-unbox\n"
                                      "Symlinked folders and extra_model_paths.yaml 'sae:' folders work too."}),
                  1: ("CheckpointLoaderSimple", {"ckpt_name": "sd_xl_turbo_1.0_fp16.safetensors"}),
                  2: ("CLIPTextEncode", {"clip": L(1, 1), "text": ""}),
                  3: ("LVOSAELoader", {"sae_name": "sdxl-unbox", "hookpoint": "up_blocks.0.attentions.1", "k": 0}),
                  4: ("LVOFeatureHook", {"model": L(1), "units": "10, 1024", "sae": L(3)}),
                  5: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                  6: ("LVOSampleBank", {"model": L(1), "units": L(4), "empty_prompt": L(2), "latent": L(5),
                                        "steps": 4, "name": "sdxl_turbo_up_blocks.0.attentions.1"}),
                  7: ("LVOFaithful", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                      "bank": L(6)}),
                  8: ("LVOFeatureGrid", {"images": L(7, 1), "metrics": L(7, 2)}),
                  9: ("SaveImage", {"images": L(8), "filename_prefix": "lvo_sdxl_turbo"})}},
    "lvo_flux_faithful.json": {
        "title": "LVO on FLUX.1-dev",
        "note": "FLUX.1-dev with sdxl-unbox's FLUX SAE on transformer_blocks.18 (the image stream; ComfyUI's "
                "double_blocks.18): a sample bank sampled with FLUX's flow-matching schedule, each feature's best "
                "pool image at t = 200, polished for 30 steps. Guidance 3.5 (guidance-distilled).",
        "groups": [("Load: FLUX.1-dev, its text encoders and VAE, empty prompt, FLUX SAE", [99, 1, 2, 3, 10, 11]),
                   ("Features 10 and 1024: sample bank -> faithful pictures", [4, 5, 6, 7, 8, 9])],
        "nodes": {99: (NOTE, {"text": "Models this workflow needs:\n"
                                      "- diffusion model: flux1-dev.safetensors from the hub repo "
                                      "black-forest-labs/FLUX.1-dev in models/diffusion_models, its ae.safetensors "
                                      "in models/vae\n"
                                      "- text encoders: clip_l.safetensors and t5xxl_fp16.safetensors from "
                                      "comfyanonymous/flux_text_encoders in models/text_encoders\n"
                                      "- SAE: sdxl-unbox's FLUX.1 SAE (hub repo antoniomari/SAE_flux_18, see "
                                      "surkovv/sdxl-unbox) in models/sae/SAE_flux_18\n"
                                      "Symlinked folders and extra_model_paths.yaml 'sae:' folders work too."}),
                  1: ("UNETLoader", {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}),
                  10: ("DualCLIPLoader", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors",
                                          "type": "flux", "device": "default"}),
                  11: ("VAELoader", {"vae_name": "ae.safetensors"}),
                  2: ("CLIPTextEncode", {"clip": L(10), "text": ""}),
                  3: ("LVOSAELoader", {"sae_name": "SAE_flux_18", "hookpoint": "transformer_blocks.18", "k": 0}),
                  4: ("LVOFeatureHook", {"model": L(1), "units": "10, 1024", "sae": L(3)}),
                  5: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                  6: ("LVOSampleBank", {"model": L(1), "units": L(4), "empty_prompt": L(2), "latent": L(5),
                                        "steps": 20, "name": "flux_dev_transformer_blocks.18"}),
                  7: ("LVOFaithful", {"model": L(1), "vae": L(11), "units": L(4), "empty_prompt": L(2),
                                      "bank": L(6)}),
                  8: ("LVOFeatureGrid", {"images": L(7, 1), "metrics": L(7, 2)}),
                  9: ("SaveImage", {"images": L(8), "filename_prefix": "lvo_flux"})}},
    "lvo_feature_search.json": {
        "title": "LVO: find features in an image",
        "note": "Feature search: the SAE features an image drives most (ranked by lift over the model's own "
                "samples), their heatmaps, and faithful pictures of them.",
        "groups": [(LOAD, LOADERS), ("Image -> features found -> their faithful pictures",
                                     [4, 5, 6, 7, 8, 9, 10, 11, 12])],
        "nodes": {**IMAGE_SEARCH, 9: ("PreviewImage", {"images": L(8, 3)}),
                  10: ("LVOFaithful", {"model": L(1), "vae": L(1, 2), "units": L(8), "empty_prompt": L(2),
                                       "bank": L(7)}),
                  11: ("LVOFeatureGrid", {"images": L(10, 1), "metrics": L(10, 2)}),
                  12: ("SaveImage", {"images": L(11), "filename_prefix": "lvo_search"})}},
    "lvo_feature_for_a_word.json": {
        "title": "LVO: find the feature for a word",
        "note": "The features the model itself labels with a word: labels are made once per SAE with `python -m "
                "lvo_core label --model <checkpoint folder> --sae models/sae/SAeUron --out "
                "ComfyUI/output/lvo_labels/sd15_SAeUron` (vocabulary phrases whose generations raise each feature, "
                "scored on held-out seeds). Label Search finds the word, LVO Faithful draws the features, the "
                "Feature Page shows the best one with its labels and scores.",
        "groups": [(LOAD, LOADERS), ("Word -> labelled features -> faithful pictures and the best one's page",
                                     [4, 5, 6, 7, 8, 9, 10, 11])],
        "nodes": {**BASE, 4: ("LVOLabelSearch", {"model": L(1), "sae": L(3), "labels": "sd15_SAeUron",
                                                 "text": "rose", "top": 4}),
                  5: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                  6: ("LVOSampleBank", {"model": L(1), "units": L(4), "empty_prompt": L(2), "latent": L(5),
                                        "name": "sd15_up_blocks.1.attentions.1"}),
                  7: ("LVOFaithful", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                      "bank": L(6)}),
                  8: ("LVOFeatureGrid", {"images": L(7, 1), "metrics": L(7, 2)}),
                  9: ("SaveImage", {"images": L(8), "filename_prefix": "lvo_word"}),
                  10: ("LVOFeaturePage", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                          "bank": L(6), "labels": L(4, 1), "run1_images": L(7, 1),
                                          "run1_metrics": L(7, 2)}),
                  11: ("SaveImage", {"images": L(10, 1), "filename_prefix": "lvo_word_page"})}},
    "lvo_feature_page.json": {
        "title": "LVO: a feature's page",
        "note": "Everything about one feature on one page: activity over timesteps and top dataset examples, the "
                "activation histogram and top images over the sample bank, and paper vs faithful pictures with "
                "their metrics.",
        "groups": [(LOAD, LOADERS), ("Feature 1234: activity, sample bank, paper and faithful -> its page",
                                     [4, 5, 6, 7, 8, 9, 10, 11, 12])],
        "nodes": {**BASE, 4: ("LVOFeatureHook", {"model": L(1), "units": "1234", "sae": L(3)}),
                  5: ("LVOActivityAnalysis", {"model": L(1), "clip": L(1, 1), "vae": L(1, 2), "units": L(4),
                                              "prompts": PROMPTS}),
                  6: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                  7: ("LVOSampleBank", {"model": L(1), "units": L(4), "empty_prompt": L(2), "latent": L(6),
                                        "name": "sd15_up_blocks.1.attentions.1"}),
                  8: ("LVOSteeringInit", {"model": L(1), "units": L(4), "empty_prompt": L(2), "activity": L(5)}),
                  9: ("LVOOptimize", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                      "prior": L(8, 1), "activity": L(5)}),
                  10: ("LVOFaithful", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                       "bank": L(7), "activity": L(5)}),
                  11: ("LVOFeaturePage", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                          "activity": L(5), "examples": L(5, 2), "bank": L(7),
                                          "run1_images": L(9, 1), "run1_metrics": L(9, 2),
                                          "run2_images": L(10, 1), "run2_metrics": L(10, 2)}),
                  12: ("SaveImage", {"images": L(11, 1), "filename_prefix": "lvo_feature_page"})}},
    "lvo_sae_feature.json": {
        "title": "LVO: one SAE feature",
        "note": "One SAE feature the full LVO way: activity analysis -> steering prior -> LVO at {0} + peaks.",
        "groups": [(LOAD, LOADERS), ("SAE feature 1234: activity -> prior -> LVO", [4, 5, 6, 7, 8, 9, 10])],
        "nodes": {**BASE, **_feature_chain(5, {"model": L(1), "units": "1234", "sae": L(3)}, "lvo_feature")}},
    "lvo_raw_vs_sae.json": {
        "title": "LVO: SAE feature vs raw channel",
        "note": "The same pipeline for an SAE feature (top) and a raw channel of the same block (bottom).",
        "groups": [(LOAD, LOADERS), ("SAE feature 1234", [4, 5, 6, 7, 8, 9, 10]),
                   ("Raw channel 42 of the same block (baseline)", [11, 12, 13, 14, 15, 16, 17])],
        "nodes": {**BASE, **_feature_chain(5, {"model": L(1), "units": "1234", "sae": L(3)}, "lvo_sae"),
                  **_feature_chain(12, {"model": L(1), "units": "42"}, "lvo_raw")}},
    "lvo_activity_examples.json": {
        "title": "LVO: when and where a feature fires",
        "groups": [(LOAD, LOADERS), ("Activity over timesteps, ranked dataset examples", [4, 5, 6, 7, 8])],
        "note": "When is a feature active, and on which images: activity analysis + ranked dataset examples.",
        "nodes": {**BASE, 4: ("LVOFeatureHook", {"model": L(1), "units": "1234, 77", "sae": L(3)}),
                  5: ("LVOActivityAnalysis", {"model": L(1), "clip": L(1, 1), "vae": L(1, 2), "units": L(4),
                                              "prompts": PROMPTS}),
                  6: ("LVODatasetExamples", {"model": L(1), "vae": L(1, 2), "images": L(5, 2), "units": L(4),
                                             "empty_prompt": L(2), "activity": L(5), "prompts": L(5, 3), "k": 4}),
                  7: ("SaveImage", {"images": L(6, 1), "filename_prefix": "lvo_examples"}),
                  8: ("PreviewImage", {"images": L(5, 1)})}},
    "lvo_feature_atlas.json": {
        "title": "LVO: atlas of 16 features",
        "groups": [(LOAD, LOADERS), ("16 features at t=0 in one labelled grid", [4, 5, 6, 7, 8])],
        "note": "An atlas: 16 features at t=0 from random starts, one seed each, in one labelled grid.",
        "nodes": {**BASE, 4: ("LVOFeatureHook", {"model": L(1), "units": "0-15", "sae": L(3)}),
                  5: ("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
                  6: ("LVOOptimize", {"model": L(1), "vae": L(1, 2), "units": L(4), "empty_prompt": L(2),
                                      "latent": L(5), "timesteps": "0", "seeds": "1024", "batch_size": 16}),
                  7: ("LVOFeatureGrid", {"images": L(6, 1), "metrics": L(6, 2)}),
                  8: ("SaveImage", {"images": L(7), "filename_prefix": "lvo_atlas"})}},
    "lvo_app_find_features.json": {
        "title": "LVO app: find the features in an image",
        "note": "App mode (frontend 1.4x and later opens it as an app): choose a checkpoint, an SAE and an image, "
                "press Run; you get each feature found, its heatmap over your image, and a faithful picture of it.",
        "groups": [(LOAD, LOADERS), ("Your image -> its features -> their heatmaps and faithful pictures",
                                     [4, 5, 6, 7, 8, 9, 10, 11, 12])],
        "nodes": {**IMAGE_SEARCH, 9: ("PreviewImage", {"images": L(8, 1)}),
                  10: ("LVOFaithful", {"model": L(1), "vae": L(1, 2), "units": L(8), "empty_prompt": L(2),
                                       "bank": L(7), "seeds": "1"}),
                  11: ("LVOFeatureGrid", {"images": L(10, 1), "metrics": L(10, 2)}),
                  12: ("SaveImage", {"images": L(11), "filename_prefix": "lvo_app"})},
        # App mode (ComfyUI_frontend): extra.linearMode opens the workflow as an app; linearData lists the widgets
        # shown as its inputs ([node id, widget name]) and the output nodes whose images it shows.
        "extra": {"linearMode": True,
                  "linearData": {"inputs": [[1, "ckpt_name"], [3, "sae_name"], [4, "image"], [8, "top"]],
                                 "outputs": [9, 12]}}},
}


TEMPLATES = ROOT / "example_workflows"
SOURCES = ROOT / "workflows"  # the design card's folder: one subfolder per model family


def family(name: str) -> str:
    """The model family a workflow is for (its subfolder of ``workflows/``)."""
    return "sdxl" if "sdxl" in name else "flux" if "flux" in name else "sd15"


def source_path(name: str) -> Path:
    """``workflows/<family>/<name>``: a level below the folder itself, because ComfyUI lists every ``*.json``
    directly inside a pack's ``workflows/`` as a template too (its glob is not recursive), and a git clone would
    otherwise show each template twice."""
    return SOURCES / family(name) / name
MODULE = "comfyui-lvo"


def thumbnail(workflow: dict, title: str, preview: Path | None = None):
    """512 × 384 under the template's title: what the template makes (``preview``, a picture from
    ``tests/template_previews.py``, captioned as the toy world's), else a drawing of the workflow's graph."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (512, 384), "#202020")
    draw = ImageDraw.Draw(image)
    try:
        font, small = ImageFont.load_default(size=26), ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        font = small = ImageFont.load_default()
    if preview is not None and preview.is_file():
        with Image.open(preview) as shown:
            shown = shown.convert("RGB")
            shown.thumbnail((496, 286), Image.LANCZOS)
            image.paste(shown, ((512 - shown.width) // 2, 62 + (286 - shown.height) // 2))
        draw.text((16, 18), title, fill="#f0f0f0", font=font)
        draw.text((16, 360), "what it makes, shown on the pack's toy world", fill="#b0b0b0", font=small)
        return image
    boxes = [(n["pos"][0], n["pos"][1], n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in workflow["nodes"]] + [(g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
                                              g["bounding"][1] + g["bounding"][3]) for g in workflow["groups"]]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = min(480 / (x1 - x0), 300 / (y1 - y0))

    def at(x: float, y: float) -> tuple[float, float]:
        return 16 + (x - x0) * scale, 68 + (y - y0) * scale

    for group in workflow["groups"]:
        gx, gy, gw, gh = group["bounding"]
        draw.rectangle([*at(gx, gy), *at(gx + gw, gy + gh)], outline=group["color"], width=2)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link in workflow["links"]:
        a, b = nodes[link[1]], nodes[link[3]]
        draw.line([at(a["pos"][0] + a["size"][0], a["pos"][1] + 20), at(b["pos"][0], b["pos"][1] + 20)],
                  fill="#707070", width=1)
    for node in workflow["nodes"]:
        fill = "#2f5f8f" if node["type"].startswith("LVO") else "#4a4a4a"
        draw.rectangle([*at(*node["pos"]), *at(node["pos"][0] + node["size"][0], node["pos"][1] + node["size"][1])],
                       fill=fill, outline="#9a9a9a")
    draw.text((16, 18), title, fill="#f0f0f0", font=font)
    return image


def write_templates(workflows: dict[str, dict]) -> None:
    """``workflows/<family>/``: each workflow (the files to drag into ComfyUI); ``example_workflows/``: the same
    JSON and a thumbnail each, for Browse Templates."""
    TEMPLATES.mkdir(exist_ok=True)
    for name, workflow in workflows.items():
        text = json.dumps(workflow, indent=2) + "\n"
        source_path(name).parent.mkdir(parents=True, exist_ok=True)
        source_path(name).write_text(text)
        (TEMPLATES / name).write_text(text)
        preview = ROOT / "docs" / "templates" / f"{Path(name).stem}.png"
        thumbnail(workflow, GRAPHS[name]["title"], preview).save(TEMPLATES / f"{Path(name).stem}.jpg", quality=88)
    stale = TEMPLATES / "index.json"
    if stale.exists():
        stale.unlink()


def main() -> None:
    specs = node_specs()
    written = {}
    for name, graph in GRAPHS.items():
        workflow = build(graph, specs)
        problems = validate(workflow, specs)
        if problems:
            raise SystemExit(f"{name}: " + "; ".join(problems))
        written[name] = workflow
        print("built", name)
    write_templates(written)
    print("wrote", SOURCES.relative_to(ROOT), "and", TEMPLATES.relative_to(ROOT))


if __name__ == "__main__":
    main()
