"""The pack as ComfyUI and a researcher meet it: entry point, metadata, CLI, demo."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

from conftest import random_sae
from lvo_core.activity import ActivityAnalysis
from lvo_core.cli import main
from lvo_core.sae import save_sae

ROOT = Path(__file__).resolve().parents[1]


def import_pack(name: str, monkeypatch) -> object:
    """Import the pack folder as ComfyUI does (a package named after the folder, hyphens and all), with the one
    ComfyUI module the node schemas read at import (the sampler names) stood in for."""
    samplers = types.ModuleType("comfy.samplers")
    samplers.KSampler = types.SimpleNamespace(SAMPLERS=["euler"], SCHEDULERS=["normal"])
    comfy = types.ModuleType("comfy")
    comfy.samplers = samplers
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.samplers", samplers)
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            sys.modules.pop(key)
    return module


def test_pack_imports_like_comfyui_does(monkeypatch):
    module = import_pack("comfyui-lvo", monkeypatch)
    assert isinstance(module.NODE_CLASS_MAPPINGS, dict)  # no comfy_api here: the V1 entry
    assert set(module.NODE_DISPLAY_NAME_MAPPINGS) == set(module.NODE_CLASS_MAPPINGS)
    assert (ROOT / module.WEB_DIRECTORY).is_dir()


def test_lvo_core_never_imports_comfyui():
    pattern = re.compile(r"^\s*(import|from)\s+(comfy|comfy_api|folder_paths|server|nodes|execution)\b", re.M)
    offenders = [p.name for p in (ROOT / "lvo_core").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_pyproject_metadata_for_registry_and_pip():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    deps = " ".join(project["dependencies"])
    for name in ("torch", "diffusers", "safetensors", "numpy", "pillow", "aiohttp"):
        assert name in deps
    assert any(d.startswith("pytest") for d in project["optional-dependencies"]["test"])
    assert {"PublisherId", "DisplayName"} <= set(meta["tool"]["comfy"])
    assert "torch" not in (ROOT / "requirements.txt").read_text().split("#")[-1]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^(\.venv/bin/python -m pytest[^\n]*)$", readme, re.M).group(1)
    setup = re.search(r"^(python -m venv [^\n]*lvo_core demo)$", readme, re.M).group(1)
    assert command in ci and setup in ci
    assert "torch==2.13.0" in readme and "torch==2.13.0" in ci


def test_demo_end_to_end(tmp_path, capsys):
    """The README's first command on the shipped toy world: concept images with their metrics."""
    assert main(["demo", "--out", str(tmp_path), "--units", "2", "--lvo-steps", "5"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["units"]) == 2 and len(summary["channels"]) == 2 and summary["lvo_steps"] == 5
    assert [row["variant"] for row in summary["table"]] == ["paper", "paper (raw channels)", "best",
                                                             "best (raw channels)"]
    for rows in summary["rows"].values():
        assert all(r["dataset_max"] is not None and r["judged"] and "reencode" in r for r in rows)
    assert {r["unit"] for r in summary["rows"]["paper/sae"]} == set(summary["units"])
    assert summary["concepts"][str(summary["units"][0])].startswith("shape=")  # shapes and colours alike
    assert summary["concepts"][str(summary["units"][1])].startswith("color=")
    assert (tmp_path / "concepts.png").stat().st_size > 5000 and (tmp_path / "activity.png").is_file()
    assert "| paper |" in printed and "| best |" in printed and "agreement" in printed


def test_info_lists_blocks_and_checks_the_sae(tmp_path, capsys):
    save_sae(random_sae(d_in=32), tmp_path / "sae", hookpoint="unet.up_blocks.1.attentions.1")
    assert main(["info", "--sae", str(tmp_path / "sae"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sae"]["d_in"] == 32 and report["sae"]["format"] == "sparsify"
    assert main(["info", "--model", str(tmp_path / "nope"), "--sae", str(tmp_path / "sae")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_on_a_local_diffusers_folder(tmp_path, unet, capsys):
    unet.save_pretrained(tmp_path / "model" / "unet")
    save_sae(random_sae(d_in=64), tmp_path / "wide")
    assert main(["info", "--model", str(tmp_path / "model"), "--json"]) == 0
    blocks = {p["diffusers"]: p for p in json.loads(capsys.readouterr().out)["hookpoints"]}
    assert blocks["up_blocks.1.attentions.1"]["ldm"] == "output_blocks.4.1"
    code = main(["info", "--model", str(tmp_path / "model"), "--sae", str(tmp_path / "wide"),
                 "--hookpoint", "output_blocks.4.1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "reads 64 channels" in err and "up_blocks.0.resnets.0" in err


def test_convert_command(tmp_path, capsys):
    folder = tmp_path / "unbox"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    torch.save({"state_dict": {"encoder.weight": torch.randn(8, 4, generator=g),
                               "decoder.weight": torch.randn(4, 8, generator=g),
                               "pre_bias": torch.zeros(4), "latent_bias": torch.zeros(8)}}, folder / "state_dict.pth")
    (folder / "config.json").write_text(json.dumps({"n_dirs_local": 8, "d_model": 4, "k": 2}))
    assert main(["convert", str(folder), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "sae.safetensors").is_file()
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2


def test_bad_steps_is_a_clean_error(capsys):
    assert main(["demo", "--lvo-steps", "0"]) == 2
    assert "--lvo-steps must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["visualize-everything"])
