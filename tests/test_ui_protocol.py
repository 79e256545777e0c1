"""The ui protocol between the nodes and web/lvo.js (nodes/ui_protocol.py): every key the nodes send has a renderer
and every renderer a sender; lvo.js's tables equal the Python ones; and lvo.js itself parses as an ES module and
draws each key in a Node.js stand-in of the browser."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "web" / "lvo.js"


def protocol():
    spec = importlib.util.spec_from_file_location("lvo_ui_protocol", ROOT / "nodes" / "ui_protocol.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sent_keys() -> dict[str, set[str]]:
    """ui key → node modules that send it: ``ui={"key": …}`` literals and ``ui["key"] = …`` assignments."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "nodes").glob("*.py")):
        source = path.read_text()
        literals = [m.group(1) for m in re.finditer(r"ui=\{([^}]*)\}", source)]
        literals += [m.group(1) for m in re.finditer(r"\bui = \{([^}]*)\}", source)]
        keys = {k for body in literals for k in re.findall(r'"(\w+)":', body)}
        keys |= set(re.findall(r'\bui\["(\w+)"\]', source))
        for key in keys:
            found.setdefault(key, set()).add(path.name)
    return found


def js_table(name: str) -> str:
    match = re.search(rf"^const {name} = \{{\n(.*?)^\}};", JS.read_text(), re.S | re.M)
    assert match, f"web/lvo.js has no top-level `const {name} = {{ … }};`"
    return match.group(1)


def test_every_key_sent_has_a_renderer_and_every_renderer_a_sender():
    p, sent = protocol(), sent_keys()
    assert set(sent) >= {"lvo_activity", "lvo_metrics", "lvo_feature", "text", "images"}  # the scan finds them
    assert set(sent) - set(p.RENDERED) - set(p.CORE) == set(), f"undeclared ui keys: {sent}"
    assert set(p.RENDERED) | set(p.CORE) <= set(sent), "a declared ui key no node sends"
    renderers = set(re.findall(r"^  (\w+): \{$", js_table("RENDERERS"), re.M))
    assert renderers == set(p.RENDERED)


def test_lvo_js_creates_the_declared_widgets():
    p = protocol()
    rows = re.findall(r"^  (\w+): \[([^\]]*)\],$", js_table("NODE_UI"), re.M)
    assert {node: tuple(re.findall(r'"(\w+)"', keys)) for node, keys in rows} == p.NODE_UI
    node_ids = {m for path in (ROOT / "nodes").glob("*.py") for m in re.findall(r'node_id="(\w+)"', path.read_text())}
    assert set(p.NODE_UI) <= node_ids
    assert {k for keys in p.NODE_UI.values() for k in keys} == set(p.RENDERED) | set(p.CORE)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_lvo_js_draws_each_key_in_node(tmp_path):
    """As the browser loads it: an ES module at /extensions/comfyui-lvo/ importing ../../scripts/app.js."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(
        "export const app = { registerExtension: (e) => { globalThis.registeredExtension = e; } };\n")
    (tmp_path / "scripts" / "api.js").write_text("export const api = { apiURL: (path) => path };\n")
    (tmp_path / "extensions" / "comfyui-lvo").mkdir(parents=True)
    (tmp_path / "package.json").write_text('{"type": "module"}\n')  # .js as ES modules, as browsers load them
    shutil.copy(JS, tmp_path / "extensions" / "comfyui-lvo" / "lvo.js")
    shutil.copy(ROOT / "tests" / "lvo_js_harness.mjs", tmp_path / "harness.mjs")
    done = subprocess.run(["node", str(tmp_path / "harness.mjs"), str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["created"] == {"LVOSAELoader": ["lvo_summary"], "LVOSteeringInit": ["lvo_summary"],
                              "LVOActivityAnalysis": ["lvo_activity_chart"], "LVOOptimize": ["lvo_metrics"],
                              "LVOFeaturePage": ["lvo_feature_page"], "LVOFeatureGrid": []}
    shown = out["shown"]
    assert "SAE: 5120 features at up_blocks.1.attentions.1" in shown["LVOSAELoader"]["lvo_summary"]
    assert "unit 3: no active timestep\nunit 8: fell back to 500" in shown["LVOSteeringInit"]["lvo_summary"]
    metrics = shown["LVOOptimize"]["lvo_metrics"]
    assert "feature &#60;3&#62;" in metrics and "<td>1.500</td><td>0.250</td><td>—</td><td>1/2</td>" in metrics
    assert "complete, 1.5s, extra memory 2 MB" in metrics
    assert "feature 3 · up_blocks.1.attentions.1" in shown["LVOFeaturePage"]["lvo_feature_page"]
    assert "no activity analysis" in shown["LVOFeaturePage"]["lvo_feature_page"]
    assert "hover the chart for values" in shown["LVOActivityAnalysis"]["lvo_activity_chart"]
    assert out["activityUnits"] == [3]
    assert "still gets what it sends" in shown["LVOFeatureGrid"]["lvo_summary"]  # made on first message
    assert out["otherPackTouched"] is False
