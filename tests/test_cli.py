"""The headless CLI end to end on the tiny model: files match their JSON, runs reproduce from the JSON alone."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lvo_core.analysis.activity import ActivityAnalysis
from lvo_core.cli import main
from lvo_core.model.families.sd import ldm_state_dict
from lvo_core.model.loading import load_model, save_model_folder


@pytest.fixture(scope="module")
def analysis_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("act") / "act.safetensors"
    assert main(["analyze", "--steps", "6", "--guidance", "3", "--out", str(path)]) == 0
    return path


def test_analyze_writes_a_reusable_analysis(analysis_file):
    a = ActivityAnalysis.load(analysis_file)
    assert a.unit_kind == "sae" and len(a.units) == 128 and len(a.timesteps) == 6 and a.num_generations == 8
    assert a.meta["guidance"] == 3.0 and a.meta["model"] == "tiny"


def test_visualize_end_to_end_and_rerun_from_json(tmp_path, analysis_file, capsys):
    out = tmp_path / "vis"
    args = ["visualize", "--recipe", "paper", "--analysis", str(analysis_file), "--units", "8,47", "--seeds", "1,2",
            "--steps", "8", "--prior-steps", "4", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["complete"] and result["prior"] == "steer" and result["config"]["steps"] == 8
    rows = result["rows"]
    assert {r["timestep"] for r in rows if r["unit"] == 8} == {0, *ActivityAnalysis.load(analysis_file).peaks(8)}
    assert len(result["images"]) == len(rows) == len(result["metrics"]) == len(result["history"]["activation"])
    for name in result["images"] + [result["contact_sheet"], result["latents"]]:
        assert (out / name).is_file()
    latents = load_file(out / "latents.safetensors")
    assert latents["latents"].shape == (len(rows), 4, 16, 16)
    for m in result["metrics"]:
        assert m["dataset_max"] > 0 and m["ratio"] == pytest.approx(m["activation"] / m["dataset_max"], abs=1e-3)
    assert "visualizations (complete, 0 resumed" in printed and set(result["versions"]) >= {"torch", "diffusers", "lvo_core"}
    again = tmp_path / "again"
    assert main(["visualize", "--from-json", str(out / "result.json"), "--out", str(again)]) == 0
    assert torch.equal(load_file(again / "latents.safetensors")["latents"], latents["latents"])


def test_visualize_defaults_to_the_faithful_recipe_and_reuses_its_bank(tmp_path, capsys, monkeypatch):
    out = tmp_path / "vis"
    args = ["visualize", "--units", "3,8", "--seeds", "1,2", "--steps", "2", "--bank-size", "6", "--eval-samples", "1"]
    assert main(args + ["--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["prior"] == "bank" and result["recipe"]["name"] == "faithful" and result["config"]["steps"] == 2
    assert {r["timestep"] for r in result["rows"]} == {200} and result["bank"]["size"] == 6
    index = json.loads((out / "bank" / "bank.json").read_text())
    assert [(e["kind"], e["timestep"]) for e in index["scores"]] == [("sae", 200)]
    monkeypatch.setattr("lvo_core.analysis.bank.sample_with", lambda *a, **k: pytest.fail("the bank was sampled again"))
    monkeypatch.setattr("lvo_core.analysis.bank.score_latents", lambda *a, **k: pytest.fail("the bank was scored again"))
    again = tmp_path / "again"
    assert main(args + ["--out", str(again), "--bank", str(out / "bank")]) == 0
    assert torch.equal(load_file(again / "latents.safetensors")["latents"],
                       load_file(out / "latents.safetensors")["latents"])
    capsys.readouterr()
    assert main(args + ["--out", str(again), "--bank", str(out / "bank"), "--timesteps", "0"]) == 2
    assert "--select-t" in capsys.readouterr().err


def test_resume_skips_finished_batches_and_redoes_partial_ones_whole(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["visualize", "--units", "3,8", "--seeds", "1,2", "--timesteps", "0", "--prior", "random", "--steps", "4",
            "--batch-size", "2", "--out", str(out)]
    assert main(args) == 0
    first = load_file(out / "latents.safetensors")["latents"]
    (out / "rows" / "feature8_t0_seed2.json").unlink()  # this row was cut off while being saved
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    # the first batch (unit 3) is kept; the second is redone whole, with the very rows it had
    assert "2 visualizations (complete, 2 resumed from an earlier run)" in printed
    assert torch.equal(load_file(out / "latents.safetensors")["latents"], first)  # seeded: the same bytes
    result = json.loads((out / "result.json").read_text())
    assert len(result["rows"]) == 4 and result["resumed_rows"] == 2 and result["complete"]
    assert main(args + ["--resume"]) == 0 and "already finished" in capsys.readouterr().out
    assert json.loads((out / "result.json").read_text())["complete"]  # the summary is rewritten even then
    assert main(args[:-6] + ["--steps", "5", "--batch-size", "2", "--out", str(out), "--resume"]) == 0
    assert "4 visualizations (complete, 0 resumed" in capsys.readouterr().out  # other settings: nothing reused


def test_steer_then_visualize_from_priors_file_and_raw_ablation(tmp_path, analysis_file):
    assert main(["steer", "--units", "8", "--seeds", "1,2", "--analysis", str(analysis_file), "--prior-steps", "4",
                 "--out", str(tmp_path / "st")]) == 0
    assert (tmp_path / "st" / "priors.png").is_file()
    priors = str(tmp_path / "st" / "priors.safetensors")
    assert main(["visualize", "--units", "8", "--seeds", "1,2", "--timesteps", "0", "--prior", priors, "--steps",
                 "3", "--out", str(tmp_path / "v")]) == 0
    result = json.loads((tmp_path / "v" / "result.json").read_text())
    stored = load_file(tmp_path / "v" / "latents.safetensors")["init_latents"]
    torch.testing.assert_close(stored, load_file(priors)["latents"])
    assert result["prior"] == f"file:{priors}"
    assert main(["visualize", "--units", "9", "--seeds", "1,2", "--timesteps", "0", "--prior", priors,
                 "--out", str(tmp_path / "v2")]) == 2
    assert main(["visualize", "--raw", "--units", "3", "--seeds", "1", "--timesteps", "0,300", "--prior", "random",
                 "--steps", "3", "--no-noise", "--no-precondition", "--no-augment", "--no-penalties",
                 "--out", str(tmp_path / "raw")]) == 0
    raw = json.loads((tmp_path / "raw" / "result.json").read_text())
    c = raw["config"]
    assert raw["unit_kind"] == "raw" and not c["noise"] and not c["precondition"]
    assert (c["tv_weight"], c["range_weight"], c["moment_weight"]) == (0.0, 0.0, 0.0)
    assert c["augment"] == {"jitter": 0, "rotate": 0.0, "zoom": 1.0} and c["blur_sigma"] == 0.5


def test_visualize_raises_the_target_from_random_starts(tmp_path):
    assert main(["visualize", "--units", "3,20", "--seeds", "1,2", "--timesteps", "0,300", "--prior", "random",
                 "--steps", "30", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "result.json").read_text())["metrics"]
    assert len(metrics) == 8
    for m in metrics:  # measured on held-out noise, not on the noise the optimizer saw
        assert m["activation"] > 1.05 * m["prior_activation"], m


def test_examples_command(tmp_path, analysis_file, capsys):
    assert main(["examples", "--unit", "8", "--analysis", str(analysis_file), "--steps", "6", "--k", "3",
                 "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "examples_8.json").read_text())
    scores = [e["score"] for e in data["examples"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert (tmp_path / "examples_8.png").is_file() and data["timestep"] in ActivityAnalysis.load(
        analysis_file).timesteps


def test_model_folder_and_single_file_checkpoint(tmp_path, capsys):
    tiny = load_model("tiny")
    folder = save_model_folder(tiny, tmp_path / "model")
    loaded = load_model(str(folder))
    x, t = torch.randn(1, 4, 16, 16), torch.tensor([10])
    ctx = loaded.encode_prompt(["red circle"])
    torch.testing.assert_close(ctx, tiny.encode_prompt(["red circle"]))
    with torch.no_grad():
        torch.testing.assert_close(loaded.denoiser(x, t, ctx).sample, tiny.denoiser(x, t, ctx).sample)
    save_file(ldm_state_dict(tiny.denoiser), str(tmp_path / "sd.safetensors"))
    single = load_model(str(tmp_path / "sd.safetensors"), config=str(folder))
    with torch.no_grad():
        torch.testing.assert_close(single.denoiser(x, t, ctx).sample, tiny.denoiser(x, t, ctx).sample)
    assert single.vae is not None and single.info["vae"] == f"{folder}/vae"  # not in the checkpoint: said so
    assert main(["visualize", "--model", str(tmp_path / "sd.safetensors"), "--config", str(folder), "--sae", "tiny",
                 "--units", "3", "--seeds", "1", "--timesteps", "0", "--prior", "random", "--steps", "2",
                 "--out", str(tmp_path / "v")]) == 0
    assert main(["visualize", "--model", str(tmp_path / "sd.safetensors"), "--units", "3", "--sae", "tiny"]) == 2
    assert "also give --config" in capsys.readouterr().err


def test_info_hookpoint_chooses_inside_a_multi_hookpoint_root(tmp_path, capsys):
    from lvo_core.model.tiny import random_sae
    from lvo_core.sae import save_sae

    for i, d_in in ((0, 32), (1, 64)):
        save_sae(random_sae(d_in=d_in), tmp_path / f"unet.up_blocks.1.attentions.{i}",
                 hookpoint=f"unet.up_blocks.1.attentions.{i}")
    assert main(["info", "--sae", str(tmp_path), "--hookpoint", "output_blocks.4.1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sae"]["d_in"] == 64 and report["sae"]["hookpoint"] == "unet.up_blocks.1.attentions.1"


# ---------------------------------------------------------------------------------------------- progress
ROOT = Path(__file__).resolve().parents[1]
README_COMMAND = re.compile(r"(?:python|torchrun[^\n`]*?) -m (lvo_core[\w.]*)(?: +([a-z]+)\b)?")


def readme_commands() -> list[tuple[str, str | None]]:
    """Every ``python -m lvo_core…`` (or torchrun ``-m lvo_core``) command the README shows: (module, subcommand)."""
    found = {(m.group(1), m.group(2) if m.group(1) == "lvo_core" else None)
             for m in README_COMMAND.finditer((ROOT / "README.md").read_text(encoding="utf-8"))}
    return sorted(found, key=lambda c: (c[0], c[1] or ""))


def first_line_seconds(argv: list[str], limit: float = 30.0) -> tuple[float, str]:
    """Seconds until ``python -m argv`` writes its first line (stdout or stderr), and the line; killed then."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=limit)
        return time.perf_counter() - start, proc.stdout.readline().decode().strip() if ready else ""
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_every_readme_command_speaks_within_2_s(tmp_path):
    """Each command the README lists prints a line within 2 s of starting (torch alone takes seconds to load);
    outputs point into tmp_path, and the process is killed at its first line."""
    out = str(tmp_path / "out")
    args = {"bench": ["--out", f"{out}/bench.json"], "toy.train": ["--out", out], "toy.evaluate": ["--weights", out],
            "info": [], "convert": [f"{out}/missing", out]}
    commands = readme_commands()
    assert ("lvo_core.bench", None) in commands and ("lvo_core", "atlas") in commands and len(commands) >= 14
    slow = {}
    for module, sub in commands:
        key = sub or module.removeprefix("lvo_core.")
        argv = [module, *([sub] if sub else []), *args.get(key, ["--out", out])]
        seconds, line = first_line_seconds(argv)
        if seconds > 2.0 or not line:
            slow[" ".join(argv)] = (round(seconds, 2), line)
    assert not slow, slow
