"""A newcomer's path, as the README writes it: the researcher's SD1.5 sequence on stand-in files, the first toy-world
commands, and bad input refused before any model work (in the CLI and when ComfyUI validates a prompt)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lvo_core.cli import main
from lvo_core.model.loading import load_model, save_model_folder
from lvo_core.model.tiny import random_sae
from lvo_core.sae import save_sae

ROOT = Path(__file__).resolve().parents[1]
# What the stand-in run scales down, and nothing else: a 1000-image bank and an atlas of every feature would take
# an hour on CPU; every other flag runs as written.
SCALED = {"--size 1000": "--size 8", "--units all": "--units 0-1"}


def readme_block(after: str) -> list[str]:
    """The command lines of the first ```bash block after the line starting with ``after``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(after)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def argv_of(line: str, variables: dict[str, str]) -> list[str]:
    """``python -m lvo_core CMD …`` → the CLI's argv, ``$NAME`` expanded and the scaled flags applied."""
    for old, new in SCALED.items():
        line = line.replace(old, new)
    for name, value in variables.items():
        line = line.replace(f"${name}", value)
    words = shlex.split(line)
    assert words[:3] in (["python", "-m", "lvo_core"], [".venv/bin/python", "-m", "lvo_core"]), line
    return words[3:]


@pytest.fixture
def stand_in_files(tmp_path, monkeypatch):
    """What a researcher has on disk: an SD1.5-shaped diffusers folder (tiny, random), an SAE in SAeUron's layout
    wide enough for feature 1234, a prompt file and a photo; the README's commands run from this folder."""
    save_model_folder(load_model("tiny"), tmp_path / "sd15")
    save_sae(random_sae(d_in=32, d_sae=2048, k=8, hookpoint="unet.up_blocks.1.attentions.1"),
             tmp_path / "models" / "sae" / "SAeUron" / "unet.up_blocks.1.attentions.1")
    (tmp_path / "prompts.txt").write_text("red circle\nblue square\ngreen ring\n")
    Image.fromarray((np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_researchers_sd15_sequence_runs_as_written_on_stand_in_files(stand_in_files, capsys):
    """The README's researcher block, line by line: the bank is built with another size than visualize's default
    and is used as it is; the photo has another size than the bank's images; every output lands in lvo_runs/."""
    lines = readme_block("copied once without its weights")
    variables = dict(re.findall(r"(\w+)=([^;\s]+)", lines[0]))
    assert variables == {"MODEL": "path/to/sd15", "SAE": "models/sae/SAeUron"}
    variables["MODEL"] = "sd15"
    commands = [argv_of(line, variables) for line in lines[1:]]
    assert [c[0] for c in commands] == ["info", "bank", "visualize", "search", "page", "analyze", "examples", "steer",
                                        "visualize", "atlas"]
    for argv in commands:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 0, (argv, err)
    made = {p.relative_to(stand_in_files).parts[0] for p in stand_in_files.rglob("*") if p.is_file()}
    assert made == {"sd15", "models", "prompts.txt", "photo.png", "lvo_runs"}  # nothing lands beside them
    runs = stand_in_files / "lvo_runs"
    for name in ("vis/contact_sheet.png", "vis-paper/contact_sheet.png", "search/search.png", "page/feature_1234.png",
                 "act.safetensors", "examples/examples_1234.png", "priors/priors.png", "atlas/atlas.png"):
        assert (runs / name).is_file(), name


def test_the_first_toy_world_commands_run_as_written(tmp_path, monkeypatch, capsys):
    """After the demo, the README's two toy-world commands: faithful pictures, then the feature's page over them."""
    monkeypatch.chdir(tmp_path)
    lines = readme_block("The demo took")
    assert len(lines) == 2
    for line in lines:
        assert main(argv_of(line, {})) == 0, capsys.readouterr().err
    assert (tmp_path / "lvo_runs" / "toy-vis" / "contact_sheet.png").is_file()
    card = (tmp_path / "lvo_runs" / "toy-page" / "feature_319.json").read_text()
    assert '"faithful"' in card and '"bank"' in card


@pytest.mark.parametrize("argv, says", [
    (["visualize", "--model", "toy", "--units", "1234"], "feature index 1234 is out of range"),
    (["visualize", "--model", "toy", "--raw", "--units", "48"], "channel 48 is out of range"),
    (["visualize", "--model", "toy", "--hookpoint", "up_blocks.9", "--raw", "--units", "3"], "unknown hookpoint"),
    (["bank", "--model", "toy", "--units", "99999"], "feature index 99999 is out of range"),
    (["bank", "--model", "toy", "--units", "3", "--k", "100", "--size", "40"], "--k 100"),
    (["steer", "--model", "toy", "--units", "400"], "out of range"),
    (["examples", "--model", "toy", "--unit", "400"], "out of range"),
    (["page", "--model", "toy", "--unit", "400"], "out of range"),
    (["demo", "--units", "0"], "--units must be a positive integer"),
])
def test_bad_input_is_refused_before_any_model_work(argv, says, tmp_path, monkeypatch, capsys):
    """Nothing is sampled, scored or optimized before a bad unit, k or hookpoint is refused."""
    import lvo_core.analysis.bank as bank
    import lvo_core.model.backend as backend
    import lvo_core.model.sampling as sampling
    import lvo_core.toy.demo as demo

    def forbidden(*_args, **_kwargs):
        raise AssertionError("model work started before the input was checked")
    for module, name in ((bank, "build_bank"), (bank, "score_latents"), (bank, "sample_with"),
                         (sampling, "sample_with"), (backend, "sample_with"), (demo, "run_demo")):
        monkeypatch.setattr(module, name, forbidden)
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_nodes_refuse_typed_in_text_when_the_prompt_is_queued(pack):
    """ComfyUI calls validate_inputs (V1: VALIDATE_INPUTS) for every node before any node runs: a bad seed list
    in LVO Faithful must not cost the Sample Bank upstream a build first."""
    from comfy_standins import nodes_of

    nodes = nodes_of(pack)
    faithful, optimize, bank = nodes["LVOFaithful"], nodes["LVOOptimize"], nodes["LVOSampleBank"]
    assert faithful.validate_inputs(seeds="1, 2", selection_t="200") is True
    assert faithful.validate_inputs(seeds="", selection_t="peak").startswith("seeds: give at least one seed")
    assert "outside the model's 0..999" in faithful.validate_inputs(seeds="1", selection_t="5000")
    assert faithful.validate_inputs(selection_t="peak") is True  # a linked seeds input is checked when it runs
    assert "timesteps: cannot read timestep 'x'" in optimize.validate_inputs(seeds="1", timesteps="0, x")
    assert optimize.validate_inputs(seeds="1024", timesteps="peaks") is True
    assert "not a path" in bank.validate_inputs(name="D:evil")
    assert nodes["LVOFeatureHook"].validate_inputs(units="") .startswith("units: no units given")
    assert nodes["LVOSteeringInit"].validate_inputs(seeds="") != True  # noqa: E712 - what V3 calls
