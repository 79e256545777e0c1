"""The generated frontend files (node docs, locales, blueprints, app workflow) match the node schemas, in the shapes
ComfyUI's frontend reads; the V3 fields reach the schema only where the core's classes know them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import warnings

import pack_files as pf
import pytest
import workflow_tools as wt

pytestmark = wt.needs_reference


@pytest.fixture(scope="module")
def pack_modules():
    """The stand-in V3 ``io`` and the pack's ``v3_fields`` module, imported as ComfyUI imports the pack."""
    import sys

    with wt.loaded_pack(wt.core_reference()):
        return (sys.modules["comfy_api.v0_0_2"].io, sys.modules["comfyui_lvo_wf.nodes.v3_fields"])


@pytest.fixture(scope="module")
def files():
    return pf.generated()


@pytest.fixture(scope="module")
def schemas():
    return pf.schemas()


def test_regenerating_changes_nothing(files):
    changed = [str(p.relative_to(pf.ROOT)) for p, data in files.items() if not p.exists() or p.read_bytes() != data]
    assert changed == [], "run: python tests/pack_files.py"
    assert pf.stale(files) == []


def test_every_node_and_input_has_docs_and_english_locale(files, schemas):
    defs = json.loads(files[pf.LOCALES / "en" / "nodeDefs.json"])
    assert set(defs) == set(schemas) and len(schemas) >= 12
    for node_id, s in schemas.items():
        entry = defs[node_id]
        assert entry["display_name"] == s.display_name and entry["description"] == s.description
        assert set(entry["inputs"]) == {i.id for i in s.inputs}
        for i in s.inputs:
            assert entry["inputs"][i.id]["name"] == i.id and entry["inputs"][i.id].get("tooltip") == i.tooltip
        assert list(entry["outputs"]) == [str(k) for k in range(len(s.outputs))]
        for lang in pf.LANGS:
            page = files[pf.DOCS / node_id / f"{lang}.md"].decode()
            assert page.startswith("# ") and "](img/" in page and page.count("\n| `") == len(s.inputs) + len(s.outputs)
        assert files[pf.DOCS / f"{node_id}.md"] == files[pf.DOCS / node_id / "en.md"]
    for key in pf.PICTURES:
        assert files[pf.DOCS / "img" / f"{key}.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_locales_parse_in_the_frontends_shape(files, schemas, pack_modules):
    v3_fields = pack_modules[1]
    for lang in pf.LANGS:
        main = json.loads(files[pf.LOCALES / lang / "main.json"])
        assert set(main) == {"nodeCategories"} and "LVO" in main["nodeCategories"]
        defs = json.loads(files[pf.LOCALES / lang / "nodeDefs.json"])
        for node_id, entry in defs.items():
            assert node_id in schemas and set(entry) <= {"display_name", "description", "inputs", "outputs"}
            for item in [*entry.get("inputs", {}).values(), *entry.get("outputs", {}).values()]:
                assert item and set(item) <= {"name", "tooltip"} and all(isinstance(v, str) for v in item.values())
    missing = pf.untranslated(schemas)
    for lang in ("zh", "ja"):
        defs = json.loads(files[pf.LOCALES / lang / "nodeDefs.json"])
        assert all(defs[n].get("display_name") for n in v3_fields.NODE_ALIASES)  # today's nodes: names translated
        assert not [m for m in missing[lang] if m.startswith("name:")]
    if any(missing.values()):  # English fallback, listed rather than failed (python tests/pack_files.py --untranslated)
        warnings.warn(f"untranslated strings: { {k: len(v) for k, v in missing.items()} }", stacklevel=1)


def test_blueprints_and_app_workflow_are_wired(files):
    specs = wt.node_specs()
    for stem in pf.BLUEPRINTS:
        workflow = json.loads(files[pf.SUBGRAPHS / f"{stem}.json"])
        (definition,) = workflow["definitions"]["subgraphs"]
        assert [n["type"] for n in workflow["nodes"]] == [definition["id"]]
        assert all(n["type"] in specs for n in definition["nodes"])
        links = {link["id"]: link for link in definition["links"]}
        for slot, port in enumerate(definition["inputs"]):
            assert port["linkIds"] and all(links[i]["origin_id"] == -10 and links[i]["origin_slot"] == slot
                                           for i in port["linkIds"])
        for slot, port in enumerate(definition["outputs"]):
            assert all(links[i]["target_id"] == -20 and links[i]["target_slot"] == slot for i in port["linkIds"])
        for node in definition["nodes"]:  # every inner input link points back at this node and slot
            for slot, item in enumerate(node["inputs"]):
                if item.get("link") is not None:
                    assert (links[item["link"]]["target_id"], links[item["link"]]["target_slot"]) == (node["id"], slot)
    app = json.loads(pf.APP.read_text())
    assert wt.validate(app, specs) == [] and app["extra"]["linearMode"] is True
    nodes = {n["id"]: n for n in app["nodes"]}
    for node_id, widget in app["extra"]["linearData"]["inputs"]:
        assert widget in [n for n, *_ in wt._inputs(specs[nodes[node_id]["type"]])]
    assert [nodes[i]["type"] for i in app["extra"]["linearData"]["outputs"]] == ["PreviewImage", "SaveImage"]


def test_v3_fields_tables_name_real_inputs(schemas, pack_modules):
    v3_fields = pack_modules[1]
    for node_id, names in v3_fields.ADVANCED.items():
        assert set(names) <= {i.id for i in schemas[node_id].inputs}
    for s in schemas.values():
        assert {"sae", "feature", "neuron", "dream", "interpretability"} <= set(s.search_aliases)
    flagged = [i.id for i in schemas["LVOOptimize"].inputs if i.advanced]
    assert flagged == list(v3_fields.ADVANCED["LVOOptimize"]) and "advanced" in schemas["LVOOptimize"].inputs[8].v1()[1]


def test_v3_fields_go_only_where_the_core_knows_them(pack_modules):
    io, v3_fields = pack_modules
    @dataclasses.dataclass
    class OldSchema:  # ComfyUI 0.3.64: no search_aliases field, inputs carry extra_dict
        node_id: str
        inputs: list

    class OldInput:
        def __init__(self, id):  # noqa: A002
            self.id, self.extra_dict = id, {}

    old = v3_fields.apply(OldSchema("LVOOptimize", [OldInput("lr"), OldInput("steps")]))
    assert not hasattr(old, "search_aliases")
    assert [i.extra_dict for i in old.inputs] == [{"advanced": True}, {}]
    new = v3_fields.apply(io.Schema("LVOOptimize", inputs=[io.Float.Input("lr")]))
    assert new.search_aliases[:2] == ["sae", "sparse autoencoder"] and new.inputs[0].advanced


def test_node_replacement_registers_only_with_the_api(monkeypatch, pack_modules):
    v3_fields = pack_modules[1]
    calls = []

    class Registry:
        async def register(self, replace):
            calls.append(replace)

    class Api:
        node_replacement = Registry()

    def node_replace(**kw):
        return kw

    assert asyncio.run(v3_fields.register_replacements(Api(), node_replace)) == 0  # nothing to map today
    monkeypatch.setattr(v3_fields, "REPLACEMENTS", [("LVOOld", "LVOOptimize", [{"new_id": "lr", "old_id": "rate"}], [])])
    assert asyncio.run(v3_fields.register_replacements(object(), node_replace)) == 0  # core without the API
    assert asyncio.run(v3_fields.register_replacements(Api(), node_replace)) == 1
    assert calls == [{"new_node_id": "LVOOptimize", "old_node_id": "LVOOld",
                      "input_mapping": [{"new_id": "lr", "old_id": "rate"}], "output_mapping": None}]
