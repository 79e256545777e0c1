"""Every bad input of the reliability checklist, in one table: the error type, and a message that names the fix."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import random_sae
from lvo_core import errors
from lvo_core.activity import analyze_captured
from lvo_core.backend import DiffusersBackend
from lvo_core.fileio import atomic_write
from lvo_core.hookpoints import check_sae_fits, resolve_hookpoint
from lvo_core.objectives import Channel, SAEFeature
from lvo_core.optimize import LVOConfig, optimize, preset
from lvo_core.pipeline import plan_rows, visualize
from lvo_core.sae import load_sae
from lvo_core.sae.browse import find_saes, resolve_inside
from lvo_core.steering import StrengthSchedule
from lvo_core.tiny import CharPromptEncoder, sd15_scheduler, tiny_vae
from lvo_core.units import make_unit_spec, parse_units

HP = "up_blocks.1.attentions.1"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def backend(unet):
    return DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())


def write_sae(folder: Path, **cfg) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"encoder.weight": torch.randn(12, 6), "encoder.bias": torch.randn(12), "W_dec": torch.randn(12, 6),
               "b_dec": torch.randn(6)}, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({"k": 3, "d_in": 6, **cfg}))
    return folder


def other_analysis(hookpoint: str = "mid_block.attentions.0"):
    return analyze_captured(np.ones((2, 2, 128), np.float32), [900, 100], hookpoint=hookpoint, sae=random_sae(seed=9))


def nan_midway(backend):
    calls = []

    class NaNLater(SAEFeature):
        def __call__(self, tokens, hw):
            calls.append(1)
            v = super().__call__(tokens, hw)
            return v * float("nan") if len(calls) > 2 else v

    r = optimize(backend, NaNLater(random_sae(), 3), torch.randn(1, 4, 16, 16), [0], [1], preset("sae", steps=6))
    if r.stopped:  # reported, not raised: surface it so the table can check the message
        raise errors.LVOError(r.stopped)


def corrupt(tmp: Path, how: str) -> Path:
    folder = write_sae(tmp / how)
    weights = folder / "sae.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"empty": b"", "truncated": data[: len(data) // 3],
                         "pickle": pickle.dumps({"a": 1}, protocol=4)}[how])
    return folder


CASES = [
    # (id, action(tmp, unet, backend), error class, fragments the message must contain)
    ("sae width differs from the block",
     lambda tmp, unet, be: check_sae_fits(1280, resolve_hookpoint(unet, HP), unet),
     errors.SAEMismatchError, ["1280", "outputs 32", "up_blocks.1.attentions.1", "No block of this model"]),
    ("unknown hookpoint", lambda tmp, unet, be: resolve_hookpoint(unet, "up_blocks.9.attentions.0"),
     errors.HookpointError, ["unknown hookpoint", "up_blocks.1.attentions.1", "another architecture"]),
    ("SDXL hookpoint on an SD1.5-style model", lambda tmp, unet, be: resolve_hookpoint(unet, "down.2.1"),
     errors.HookpointError, ["down_blocks.2.attentions.1", "another architecture"]),
    ("feature index out of range", lambda tmp, unet, be: make_unit_spec(unet, HP, [500], random_sae()),
     errors.UnitError, ["500", "128 latents", "0..127"]),
    ("channel index out of range", lambda tmp, unet, be: make_unit_spec(unet, HP, [32]),
     errors.UnitError, ["channel 32", "32 channels"]),
    ("duplicated unit", lambda tmp, unet, be: make_unit_spec(unet, HP, [3, 3], random_sae()),
     errors.UnitError, ["listed twice"]),
    ("empty unit list", lambda tmp, unet, be: make_unit_spec(unet, HP, [], random_sae()),
     errors.UnitError, ["no units", "e.g."]),
    ("unreadable unit text", lambda tmp, unet, be: parse_units("3, x"), errors.UnitError, ["'x'", "'10-13'"]),
    ("negative steps", lambda tmp, unet, be: LVOConfig(steps=-5), errors.LVOError, ["steps", "positive"]),
    ("lr ≤ 0", lambda tmp, unet, be: LVOConfig(lr=0.0), errors.LVOError, ["lr must be > 0"]),
    ("NaN steering strength", lambda tmp, unet, be: StrengthSchedule([1], strength=float("nan")),
     errors.LVOError, ["finite"]),
    ("timestep outside the schedule",
     lambda tmp, unet, be: optimize(be, Channel(0), torch.randn(1, 4, 16, 16), [1000], [1]),
     errors.TimestepError, ["1000", "0…999"]),
    ("analysis from another hookpoint",
     lambda tmp, unet, be: visualize(be, [3], sae=random_sae(), analysis=other_analysis(), timesteps=[0], seeds=[1]),
     errors.ActivityError, ["mid_block.attentions.0", "rerun the analysis"]),
    ("analysis from another SAE",
     lambda tmp, unet, be: visualize(be, [3], sae=random_sae(), analysis=other_analysis(HP), timesteps=[0], seeds=[1]),
     errors.ActivityError, ["different SAE", "rerun"]),
    ("peaks without an analysis", lambda tmp, unet, be: plan_rows([3], [1], "peaks"),
     errors.LVOError, ["needs an activity analysis", "0,500"]),
    ("empty safetensors", lambda tmp, unet, be: load_sae(corrupt(tmp, "empty")),
     errors.SAEFormatError, ["empty or truncated", "again"]),
    ("truncated safetensors", lambda tmp, unet, be: load_sae(corrupt(tmp, "truncated")),
     errors.SAEFormatError, ["truncated"]),
    ("pickle where safetensors was expected", lambda tmp, unet, be: load_sae(corrupt(tmp, "pickle")),
     errors.UnsafeFileError, ["pickle", "weights_only=True", "convert"]),
    ("cfg.json that lies about shapes", lambda tmp, unet, be: load_sae(write_sae(tmp / "lie", d_in=1280)),
     errors.SAEFormatError, ["config says d_in=1280", "weights have d_in=6"]),
    ("unknown SAE format", lambda tmp, unet, be: load_sae(tmp),
     errors.SAEFormatError, ["holds no SAE", "cfg.json + sae.safetensors"]),
    ("latents become NaN mid-run", lambda tmp, unet, be: nan_midway(be),
     errors.LVOError, ["non-finite", "step 2", "kept the latents"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path, unet, backend):
    _, action, error, fragments = case
    flags = [p.requires_grad for p in unet.parameters()]
    with pytest.raises(error) as info:
        action(tmp_path, unet, backend)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"'{fragment}' missing from: {message}"
    assert isinstance(info.value, ValueError)  # every LVOError is a ValueError for callers that know only those
    assert [p.requires_grad for p in unet.parameters()] == flags  # nothing else changed


def test_no_code_from_files_anywhere_in_the_pack():
    """Only safetensors and torch.load(weights_only=True); no eval/exec, pickle or trust_remote_code."""
    offenders = []
    for path in [*ROOT.glob("lvo_core/**/*.py"), *ROOT.glob("nodes/*.py"), ROOT / "__init__.py"]:
        text = path.read_text()
        for pattern in (r"(?<![.\w])eval\(", r"(?<![.\w])exec\(", r"pickle\.loads?\(", r"trust_remote_code"):
            if re.search(pattern, text):
                offenders.append((path.name, pattern))
        for match in re.finditer(r"torch\.load\(", text):
            if "weights_only=True" not in text[match.end():match.end() + 200].split("\n\n")[0]:
                offenders.append((path.name, text[match.start():match.start() + 60]))
    assert offenders == []


def test_atomic_writes_never_leave_a_half_file(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old, complete")

    def dies_halfway(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_halfway)
    assert target.read_text() == "old, complete" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_names_resolve_only_inside_the_models_folder(tmp_path):
    root = tmp_path / "sae"
    write_sae(root / "good")
    outside = tmp_path / "secret"
    write_sae(outside)
    os.symlink(outside, root / "link_out")
    for bad in ("../secret", "/etc/passwd", "good/../../secret", "link_out", "good\x00", "", "a" * 2000):
        assert resolve_inside(root, bad) is None, bad
    assert resolve_inside(root, "good") == (root / "good").resolve()
    assert find_saes(root) == ["good"]  # the symlink out of the folder is not even listed
