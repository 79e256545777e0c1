"""The atlas on 1 process and on 2 (torchrun, gloo, CPU): same results; a killed run resumes to completion."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from lvo_core.runs.atlas import Cluster, chunks, run_atlas, unit_score

ROOT = Path(__file__).resolve().parents[1]
ATLAS = ["-m", "lvo_core", "atlas", "--units", "0-11", "--timesteps", "0", "--seeds", "1", "--prior", "random",
         "--chunk-size", "2"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out: Path, steps: int, procs: int = 2) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), *ATLAS[0:], "--steps", str(steps), "--out", str(out)]
    return subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def single(out: Path, steps: int) -> str:
    done = subprocess.run([sys.executable, *ATLAS, "--steps", str(steps), "--out", str(out)], env=env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def latents(out: Path) -> dict[int, torch.Tensor]:
    return {u: load_file(out / "rows" / f"feature{u}_t0_seed1.safetensors")["latent"] for u in range(12)}


def test_claiming_hands_out_every_chunk_once():
    cluster = Cluster()
    seen = []
    # chunks are cut from all units, so a chunk is the same whatever finished before; only whole-done ones drop
    ran = run_atlas(lambda chunk: seen.append(chunk), list(range(10)), {3, 4, 5, 7}, 3, cluster)
    assert ran == 3 and seen == [[0, 1, 2], [6, 7, 8], [9]] and chunks([1, 2, 3], 2) == [[1, 2], [3]]
    assert unit_score([{"ratio": 2.0, "activation": 9}, {"ratio": None, "activation": 1.0}]) == 1.5


def test_two_gloo_processes_equal_one_process(tmp_path):
    out1 = single(tmp_path / "one", steps=4)
    proc = torchrun(tmp_path / "two", steps=4)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log
    assert "12/12 features finished" in out1 and "on 2 process(es)" in log
    one, two = latents(tmp_path / "one"), latents(tmp_path / "two")
    assert all(torch.equal(one[u], two[u]) for u in range(12))  # same chunks, same batches: same bytes
    index1 = json.loads((tmp_path / "one" / "index.json").read_text())
    index2 = json.loads((tmp_path / "two" / "index.json").read_text())
    assert [e["unit"] for e in index1["units"]] == [e["unit"] for e in index2["units"]]  # sorted by score alike
    assert index2["world_size"] == 2 and index2["finished_units"] == 12
    assert (tmp_path / "two" / "atlas.html").read_text().count("<img") == 12


def test_killing_a_rank_mid_run_then_resuming_completes_the_atlas(tmp_path):
    out = tmp_path / "crash"
    proc = torchrun(out, steps=40)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "rows").glob("*.json"))) < 2:
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "lvo_core"], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert pids, "no worker processes found"
    os.kill(pids[-1], signal.SIGKILL)
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    partial = len(list((out / "rows").glob("*.json")))
    assert 2 <= partial < 12, log

    def complete(u: int) -> bool:
        marker = out / "rows" / f"feature{u}_t0_seed1.json"
        return marker.is_file() and json.loads(marker.read_text())["complete"]
    done_before = sum(len(c) for c in chunks(list(range(12)), 2) if all(complete(u) for u in c))
    again = torchrun(out, steps=40)
    log2, _ = again.communicate(timeout=300)
    assert again.returncode == 0, log2
    assert f"({done_before} from an earlier run)" in log2 and "12/12 features finished" in log2
    reference = tmp_path / "reference"
    single(reference, steps=40)
    resumed, ref = latents(out), latents(reference)
    for u in range(12):  # chunks and batches are cut from the whole unit list: the same bytes after the crash
        assert torch.equal(resumed[u], ref[u]), u


def test_atlas_defaults_to_the_faithful_recipe_with_one_bank(tmp_path, capsys):
    """Without a hand-built prior the atlas runs `faithful`: one sample bank for every unit, rows at t = 200."""
    from lvo_core.cli import main

    out = tmp_path / "atlas"
    assert main(["atlas", "--units", "0-3", "--seeds", "1", "--steps", "2", "--bank-size", "4", "--chunk-size", "2",
                 "--eval-samples", "1", "--out", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    rows = [r for unit in index["units"] for r in unit["rows"]]
    assert {r["timestep"] for r in rows} == {200} and len(rows) == 4
    bank = json.loads((out / "bank" / "bank.json").read_text())
    assert bank["size"] == 4 and [(e["kind"], e["timestep"]) for e in bank["scores"]] == [("sae", 200)]
    site = (out / "site" / "f" / "2.html").read_text()  # the static site: a page per unit with its bank images
    assert (out / "site" / "index.html").is_file() and site.count('src="../img/2-bank-') == 4
