"""Example workflows: valid against the real node definitions, convertible as the frontend converts them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from workflow_tools import (
    GRAPHS,
    REFERENCE,
    ROOT,
    TEMPLATES,
    build,
    family,
    needs_reference,
    node_specs,
    source_path,
    to_api,
    validate,
)

FILES = sorted(TEMPLATES.glob("*.json"))
# every folder of a pack that ComfyUI lists templates from (app/custom_node_manager.py, ComfyUI 0.3.64)
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


@pytest.fixture(scope="module")
def specs():
    return node_specs()


@needs_reference
def test_converter_matches_the_frontend_on_the_reference_workflow(specs):
    ref = REFERENCE.parent
    ui = json.loads((ref / "txt2img-ui-workflow.json").read_text())
    api = json.loads((ref / "txt2img-api-prompt.json").read_text())
    assert validate(ui, specs) == []
    assert to_api(ui, specs) == {k: {kk: vv for kk, vv in v.items() if kk != "_meta"} for k, v in api.items()}


@needs_reference
def test_every_example_workflow_ships(specs):
    assert {f.name for f in FILES} == set(GRAPHS) and len(FILES) >= 7
    # the default recipe, search, SDXL-Turbo and FLUX
    assert {"lvo_faithful_feature.json", "lvo_feature_search.json", "lvo_sdxl_turbo_faithful.json",
            "lvo_flux_faithful.json"} <= set(GRAPHS)


@needs_reference
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_workflow_is_valid_and_up_to_date(path: Path, specs):
    workflow = json.loads(path.read_text())
    assert validate(workflow, specs) == []
    assert workflow == build(GRAPHS[path.name], specs), "regenerate with: python tests/workflow_tools.py"
    prompt = to_api(workflow, specs)
    types = {n["class_type"] for n in prompt.values()}
    # ComfyUI runs only what an output node needs: every LVO node must feed one, or it silently never runs
    needed, todo = set(), [k for k, n in prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")
                           or specs[n["class_type"]].get("output_node")]
    while todo:
        node = todo.pop()
        if node not in needed:
            needed.add(node)
            todo += [v[0] for v in prompt[node]["inputs"].values() if isinstance(v, list)]
    assert {n["class_type"] for k, n in prompt.items() if k not in needed} == set(), "nodes that never run"
    assert "LVOSAELoader" in types and types & {"LVOFeatureHook", "LVOLabelSearch"}  # units come from one of them
    for node in prompt.values():
        required = specs[node["class_type"]]["input"]["required"]
        assert set(required) <= set(node["inputs"]), node["class_type"]
    names = {n["inputs"].get("ckpt_name") for n in prompt.values()} | {n["inputs"].get("sae_name")
                                                                        for n in prompt.values()}
    names |= {n["inputs"].get("unet_name") for n in prompt.values()}
    expected = {"sdxl": {"sd_xl_turbo_1.0_fp16.safetensors", "sdxl-unbox"},
                "flux": {"flux1-dev.safetensors", "SAE_flux_18"}}.get(family(path.name),
                                                                      {"v1-5-pruned-emaonly.safetensors", "SAeUron"})
    assert expected <= names


@needs_reference
def test_validator_catches_broken_workflows(specs):
    good = json.loads((TEMPLATES / "lvo_sae_feature.json").read_text())
    bad_type = copy.deepcopy(good)
    bad_type["nodes"][0]["type"] = "NoSuchNode"
    assert any("unknown type NoSuchNode" in p for p in validate(bad_type, specs))
    bad_link = copy.deepcopy(good)
    bad_link["links"][0][5] = "IMAGE"
    assert any("declared IMAGE" in p for p in validate(bad_link, specs))
    bad_value = copy.deepcopy(good)
    hook = next(n for n in bad_value["nodes"] if n["type"] == "LVOOptimize")
    hook["widgets_values"][2] = 0  # steps below its minimum of 1
    assert any("steps: 0 is outside min 1" in p for p in validate(bad_value, specs))
    short = copy.deepcopy(good)
    next(n for n in short["nodes"] if n["type"] == "LVOOptimize")["widgets_values"].pop()
    assert validate(short, specs)


def test_templates_are_the_workflows_with_thumbnails():
    """Browse Templates reads example_workflows/: each workflow's JSON and a same-name .jpg (the thumbnail type the
    frontend asks custom-node packs for); regenerate both with the tool. No index.json (ComfyUI would list it as a
    template of its own), and no other folder ComfyUI lists templates from: a git clone would show each twice."""
    from PIL import Image

    names = {p.name for p in TEMPLATES.iterdir()}
    stems = sorted(p.stem for p in FILES)
    assert names == {f"{s}.json" for s in stems} | {f"{s}.jpg" for s in stems}
    listed = [f for f in TEMPLATE_FOLDERS if list((ROOT / f).glob("*.json"))]  # ComfyUI's own, non-recursive glob
    assert listed == ["example_workflows"]
    for path in FILES:  # workflows/<family>/ is the design card's folder: the same files, never drifting
        assert source_path(path.name).read_text() == path.read_text(), "regenerate: python tests/workflow_tools.py"
    for path in FILES:
        with Image.open(TEMPLATES / f"{path.stem}.jpg") as thumb:
            assert thumb.format == "JPEG" and thumb.size == (512, 384)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_workflow_says_where_to_get_its_models(path: Path):
    workflow = json.loads(path.read_text())
    notes = [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1 and "surkovv/sdxl-unbox" in notes[0]
    if family(path.name) == "sdxl":
        assert "stabilityai/sdxl-turbo" in notes[0] and "models/sae/sdxl-unbox" in notes[0]
    elif family(path.name) == "flux":
        assert "black-forest-labs/FLUX.1-dev" in notes[0] and "models/sae/SAE_flux_18" in notes[0]
    else:
        assert "bcywinski/SAeUron" in notes[0] and "models/sae/SAeUron" in notes[0]
        assert "v1-5-pruned-emaonly.safetensors" in notes[0]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_layout_reads_at_a_glance(path: Path):
    """Every node sits in exactly one titled group, no two nodes overlap, and the groups do not overlap."""
    workflow = json.loads(path.read_text())
    groups = [g["bounding"] for g in workflow["groups"]]
    assert groups and all(g["title"] for g in workflow["groups"])

    def inside(node, box):
        (x, y), (w, h) = node["pos"], node["size"]
        return box[0] <= x and box[1] <= y and x + w <= box[0] + box[2] and y + h <= box[1] + box[3]

    def overlap(a, b):
        return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]

    for node in workflow["nodes"]:
        assert sum(inside(node, g) for g in groups) == 1, node["type"]
    boxes = [[*n["pos"], *n["size"]] for n in workflow["nodes"]]
    assert not any(overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert not any(overlap(a, b) for i, a in enumerate(groups) for b in groups[i + 1:])
