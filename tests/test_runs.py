"""The run record: unfinished rows are redone, the fingerprint covers every setting and file content, an interrupt
stops the whole run, and a run killed (SIGINT or SIGKILL) at a random point resumes to the very tensors of an
uninterrupted run — for `visualize` and the atlas."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lvo_core.cli import main
from lvo_core.lvo.optimize import preset
from lvo_core.lvo.pipeline import Row, visualize
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_vae
from lvo_core.runs.atlas import Cluster, build_atlas
from lvo_core.runs.record import RunInterrupted, RunRecord, fingerprint, run_visualize, save_visualization

HP = "up_blocks.1.attentions.1"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def backend(unet):
    return DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())


def stop_after(calls: int):
    """A ``should_stop`` that says stop at its ``calls``-th question (one question per optimizer step)."""
    asked = [0]

    def should_stop() -> bool:
        asked[0] += 1
        return asked[0] >= calls
    return should_stop


KW = dict(sae=random_sae(), timesteps=[0, 500], seeds=[1], prior="random", config=preset("sae", steps=3),
          batch_size=2, eval_samples=1)


def test_rows_saved_unfinished_are_redone_not_skipped(tmp_path):
    record = RunRecord(tmp_path, "fp")
    z = torch.zeros(4, 2, 2)
    history = {"activation": np.zeros(3)}
    record.save_row(Row(1, 0, 1), z, z, {"unit": 1}, history, complete=True)
    record.save_row(Row(2, 0, 1), z, z, {"unit": 2}, history, complete=False)  # interrupted or NaN-stopped
    assert set(record.rows()) == {Row(1, 0, 1), Row(2, 0, 1)} and set(record.finished()) == {Row(1, 0, 1)}
    assert set(RunRecord(tmp_path, "other").rows()) == set()  # other settings never count
    # killed while rewriting a finished row: its old marker is gone before any of its files change
    (tmp_path / "rows" / "feature1_t0_seed1.json").unlink()
    assert Row(1, 0, 1) not in record.finished()


def test_fingerprint_covers_every_setting_and_file_content_but_not_placement(tmp_path):
    prior = tmp_path / "priors.safetensors"
    prior.write_bytes(b"one")
    base = {"model": "tiny", "prior": str(prior), "steps": 4, "out": "a", "batch_size": 2, "device": "cuda:0",
            "units": [1, 2]}
    fp = fingerprint(base)
    assert fingerprint({**base, "brand_new_flag": 0.5}) != fp  # nobody has to list a new setting
    assert fingerprint({**base, "steps": 5}) != fp
    assert fingerprint({**base, "out": "b", "batch_size": 8, "device": "cuda:3", "units": [7]}) == fp
    assert fingerprint({**base, "device": "cpu"}) != fp
    time.sleep(0.01)
    prior.write_bytes(b"two")  # same path, other content
    assert fingerprint(base) != fp


def test_an_interrupt_saves_the_partial_batch_unfinished_and_resume_equals_an_uninterrupted_run(tmp_path,
                                                                                                  backend):
    ref, ref_result = run_visualize(tmp_path / "ref", backend, [3, 8], **KW)
    assert ref_result["complete"] and ref.batch_sizes == [2, 2]
    vis, result = run_visualize(tmp_path / "cut", backend, [3, 8], should_stop=stop_after(5), **KW)
    assert vis.interrupted and [r.__dict__ for r in vis.rows] == result["rows"] and len(vis.rows) == 4
    record = RunRecord(tmp_path / "cut", result["fingerprint"])
    assert set(record.finished()) == {Row(3, 0, 1), Row(3, 500, 1)}  # the second batch stopped after 1 step
    assert not result["complete"] and len(result["unfinished_rows"]) == 2
    again, resumed = run_visualize(tmp_path / "cut", backend, [3, 8], **KW)
    assert [r.unit for r in again.rows] == [8, 8] and resumed["complete"] and resumed["resumed_rows"] == 2
    for name in ("latents", "init_latents"):
        assert torch.equal(load_file(tmp_path / "cut" / "latents.safetensors")[name],
                           load_file(tmp_path / "ref" / "latents.safetensors")[name])
    assert resumed["metrics"] == ref_result["metrics"] and resumed["history"] == ref_result["history"]


def test_visualization_save_writes_the_same_run_folder(tmp_path, backend):
    vis = visualize(backend, [3], **KW)
    result = save_visualization(vis, tmp_path / "saved")
    assert result["complete"] and result["images"] == ["feature3_t0_seed1.png", "feature3_t500_seed1.png"]
    assert torch.equal(load_file(tmp_path / "saved" / "latents.safetensors")["latents"], vis.latents)
    assert json.loads((tmp_path / "saved" / "result.json").read_text())["metrics"] == vis.metrics
    assert (tmp_path / "saved" / "contact_sheet.png").is_file()


def test_an_interrupt_stops_the_whole_atlas_and_the_rerun_equals_an_uninterrupted_one(tmp_path, backend):
    kw = {k: v for k, v in KW.items() if k != "timesteps"} | {"timesteps": [0]}
    ref, _ = build_atlas(tmp_path / "ref", backend, list(range(4)), cluster=Cluster(), chunk_size=2, **kw)
    chunks_run = []
    with pytest.raises(RunInterrupted):  # stopped in the second chunk: no third chunk is claimed
        build_atlas(tmp_path / "cut", backend, list(range(4)), cluster=Cluster(), chunk_size=2,
                    on_chunk=lambda i, n: chunks_run.append(i), should_stop=stop_after(5), **kw)
    assert chunks_run == [0]
    partial = json.loads((tmp_path / "cut" / "index.json").read_text())  # a single process merges what finished
    assert partial["finished_units"] == 2 and partial["interrupted"]
    index, ran = build_atlas(tmp_path / "cut", backend, list(range(4)), cluster=Cluster(), chunk_size=2, **kw)
    assert ran == 1 and index["resumed_units"] == 2 and index["finished_units"] == 4
    for u in range(4):
        name = f"rows/feature{u}_t0_seed1.safetensors"
        assert torch.equal(load_file(tmp_path / "cut" / name)["latent"], load_file(tmp_path / "ref" / name)["latent"])
    assert [e["score"] for e in index["units"]] == [e["score"] for e in ref["units"]]


# ------------------------------------------------------------------------------------- real signals, real processes
def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def kill_at_random_point(argv: list[str], out: Path, sig: int, rng: random.Random, rows: int) -> int:
    """Start ``python -m lvo_core argv``, wait until a random number of its rows is saved (0 … all but the last
    batch of 2) and a random 0–0.3 s more, and send ``sig``; returns the exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "lvo_core", *argv], env=env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wanted, deadline = rng.randrange(rows - 1), time.time() + 120
    while proc.poll() is None and time.time() < deadline and not (
            (out / "rows").is_dir() and len(list((out / "rows").glob("*.json"))) >= wanted):
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.3))
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    return proc.returncode


@pytest.mark.parametrize("command", ["visualize", "atlas"])
def test_sigint_and_sigkill_at_random_points_then_resume_equal_an_uninterrupted_run(command, tmp_path):
    units = ["--units", "0-3"] if command == "atlas" else ["--units", "1,2,3"]
    argv = [command, *units, "--timesteps", "0,500", "--seeds", "1", "--prior", "random", "--steps", "8",
            "--batch-size", "2", "--eval-samples", "1", "--chunk-size" if command == "atlas" else "--display",
            "2" if command == "atlas" else "per_image"]
    resume = ["--resume"] if command == "visualize" else []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed processes, so "equal" can mean equal bytes
    try:
        assert main(argv + ["--out", str(tmp_path / "ref")]) == 0
        rng, codes = random.Random(14), []
        for sig in (signal.SIGINT, signal.SIGKILL):
            out = tmp_path / sig.name
            code = kill_at_random_point(argv + ["--out", str(out)], out, sig, rng, rows=6 if command == "visualize"
                                        else 8)
            assert code in (0, 130, -signal.SIGKILL), code  # 0: the run ended before the signal came
            codes.append(code)
            assert main(argv + ["--out", str(out)] + resume) == 0
            for ref in sorted((tmp_path / "ref" / "rows").glob("*.safetensors")):
                got = load_file(out / "rows" / ref.name)
                assert all(torch.equal(got[k], v) for k, v in load_file(ref).items()), (sig.name, ref.name)
            if command == "visualize":
                mine = json.loads((out / "result.json").read_text())
                theirs = json.loads((tmp_path / "ref" / "result.json").read_text())
                assert mine["metrics"] == theirs["metrics"] and mine["complete"]
            else:
                index = json.loads((out / "index.json").read_text())
                assert index["finished_units"] == 4
        assert codes != [0, 0], "no signal landed mid-run"
    finally:
        torch.set_num_threads(threads)
