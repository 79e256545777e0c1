"""Every bad input of the reliability checklist, in one table run through every entry point it applies to.

A case gives, per entry point, how to feed it the bad input (``cli``: the arguments of ``python -m lvo_core``;
``python``: a library call), or in ``not_for`` why that entry point cannot meet it. Each entry point has one runner
that checks the same error and message fragments: the Python runner the error class and that nothing else changed,
the CLI runner exit status 2 and one line on stderr, never a traceback, the node runner (the pack's nodes on the
ComfyUI stand-ins) the same error and message as ComfyUI would show it on the node, with the shared model
unpatched. A new entry point is one field of :class:`Case` and one runner in ``RUNNERS``;
:func:`test_every_case_names_every_entry_point` then fails until every case says how it meets it, or why not.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import re
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_sae
from safetensors.torch import save_file

from lvo_core import errors
from lvo_core.analysis.activity import analyze_activity, analyze_captured
from lvo_core.analysis.steering import StrengthSchedule
from lvo_core.cli import main
from lvo_core.commands.setup import load_analysis, read_prompts
from lvo_core.fileio import atomic_write
from lvo_core.hookpoints import resolve_hookpoint
from lvo_core.lvo.objectives import Channel, SAEFeature
from lvo_core.lvo.optimize import LVOConfig, optimize, preset
from lvo_core.lvo.pipeline import plan_rows, visualize
from lvo_core.lvo.priors import PriorTable
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.families.sd import ldm_state_dict
from lvo_core.model.loading import load_model, save_model_folder
from lvo_core.model.tiny import CharPromptEncoder, sd15_scheduler, tiny_vae
from lvo_core.model.units import make_unit_spec, parse_units
from lvo_core.runs.record import load_result
from lvo_core.sae import load_sae, save_sae

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


def sae_folder(tmp: Path, d_in: int) -> Path:
    return save_sae(random_sae(d_in=d_in, d_sae=16, k=2), tmp / f"sae{d_in}")


def sae_root(tmp: Path) -> Path:
    save_sae(random_sae(), tmp / "root" / "unet.up_blocks.1.attentions.1", hookpoint="unet.up_blocks.1.attentions.1")
    save_sae(random_sae(seed=1), tmp / "root" / "unet.up_blocks.1.attentions.0", hookpoint="unet.up_blocks.1.attentions.0")
    return tmp / "root"


def analysis_file(tmp: Path, hookpoint: str = "mid_block.attentions.0") -> Path:
    path = tmp / "other.safetensors"
    other_analysis(hookpoint).save(path)
    return path


def checkpoint(tmp: Path, bad_vae: bool = False) -> tuple[Path, Path]:
    """A single-file checkpoint of the tiny model and its config folder; optionally with broken VAE weights."""
    tiny = load_model("tiny")
    folder = save_model_folder(tiny, tmp / "model")
    weights = ldm_state_dict(tiny.denoiser)
    if bad_vae:
        weights["first_stage_model.decoder.conv_in.weight"] = torch.zeros(3)
    save_file(weights, str(tmp / "sd.safetensors"))
    return tmp / "sd.safetensors", folder


def priors_file(tmp: Path) -> Path:
    from lvo_core.runs.report import save_tensors

    save_tensors({"latents": torch.zeros(1, 4, 16, 16)}, tmp / "priors.safetensors",
                 {"rows": json.dumps([{"unit": 8, "seed": 1}])})
    return tmp / "priors.safetensors"


def backend_without(what: str, unet):
    kw = dict(scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())
    kw.pop(what)
    return DiffusersBackend(unet, HP, **kw)


VIS = ["visualize", "--timesteps", "0", "--seeds", "1", "--prior", "random", "--steps", "1"]


@dataclass
class Case:
    """One bad input: what must be raised (``error``, ``fragments`` of its message) and how each entry point
    meets it: ``cli(tmp) -> argv``, ``python(tmp, unet, backend)``, ``node(tmp, host)`` (a :class:`NodeHost`);
    ``not_for`` names why an entry point cannot."""

    id: str
    error: type
    fragments: list[str]
    cli: object = None
    python: object = None
    node: object = None
    not_for: dict[str, str] = field(default_factory=dict)


NO_CLI = "a library-level mistake: no flag can produce it"
CASES = [
    Case("sae width differs from the block (no block fits)", errors.SAEMismatchError,
         ["1280", "outputs 32", "up_blocks.1.attentions.1", "No block of this model"],
         cli=lambda tmp: VIS + ["--sae", str(sae_folder(tmp, 1280)), "--units", "1"],
         python=lambda tmp, unet, be: visualize(be, [1], sae=load_sae(sae_folder(tmp, 1280)), timesteps=[0],
                                                seeds=[1])),
    Case("sae width differs from the block (others fit)", errors.SAEMismatchError,
         ["reads 64 channels", "outputs 32", "Blocks of this model with 64 channels", "up_blocks.0.resnets.0"],
         cli=lambda tmp: VIS + ["--sae", str(sae_folder(tmp, 64)), "--units", "1"],
         python=lambda tmp, unet, be: visualize(be, [1], sae=load_sae(sae_folder(tmp, 64)), timesteps=[0],
                                                seeds=[1])),
    Case("unknown hookpoint", errors.HookpointError,
         ["unknown hookpoint", "up_blocks.1.attentions.1", "another architecture"],
         cli=lambda tmp: VIS + ["--units", "1", "--hookpoint", "up_blocks.9.attentions.0"],
         python=lambda tmp, unet, be: resolve_hookpoint(unet, "up_blocks.9.attentions.0")),
    Case("SDXL hookpoint on an SD1.5-style model", errors.HookpointError,
         ["down_blocks.2.attentions.1", "another architecture"],
         cli=lambda tmp: VIS + ["--units", "1", "--hookpoint", "down.2.1"],
         python=lambda tmp, unet, be: resolve_hookpoint(unet, "down.2.1")),
    Case("feature index out of range", errors.UnitError, ["500", "128 latents", "0..127"],
         cli=lambda tmp: VIS + ["--units", "500"],
         python=lambda tmp, unet, be: make_unit_spec(unet, HP, [500], random_sae())),
    Case("channel index out of range", errors.UnitError, ["channel 32", "32 channels"],
         cli=lambda tmp: VIS + ["--raw", "--units", "32"],
         python=lambda tmp, unet, be: visualize(be, [32], timesteps=[0], seeds=[1])),
    Case("duplicated unit", errors.UnitError, ["listed twice"],
         cli=lambda tmp: VIS + ["--units", "3,3"],
         python=lambda tmp, unet, be: make_unit_spec(unet, HP, [3, 3], random_sae())),
    Case("empty unit list", errors.UnitError, ["e.g."],
         cli=lambda tmp: VIS + ["--units", ""],
         python=lambda tmp, unet, be: make_unit_spec(unet, HP, [], random_sae())),
    Case("unreadable unit text", errors.UnitError, ["'x'", "'10-13'"],
         cli=lambda tmp: VIS + ["--units", "3,x"], python=lambda tmp, unet, be: parse_units("3, x")),
    Case("unreadable atlas range", errors.UnitError, ["'5-x'", "'10-13'"],
         cli=lambda tmp: ["atlas", "--units", "5-x", "--timesteps", "0"],
         python=lambda tmp, unet, be: parse_units("5-x")),
    Case("negative steps", errors.LVOError, ["steps must be a positive integer"],
         cli=lambda tmp: VIS + ["--units", "1", "--steps", "-5"],
         python=lambda tmp, unet, be: LVOConfig(steps=-5)),
    Case("lr ≤ 0", errors.LVOError, ["lr must be > 0"], cli=lambda tmp: VIS + ["--units", "1", "--lr", "0"],
         python=lambda tmp, unet, be: LVOConfig(lr=0.0)),
    Case("atlas chunk size 0", errors.LVOError, ["--chunk-size must be a positive integer"],
         cli=lambda tmp: ["atlas", "--units", "0-3", "--timesteps", "0", "--chunk-size", "0"],
         not_for={"python": "the chunk size is a CLI flag of the atlas; build_atlas takes any size ≥ 1"}),
    Case("NaN steering strength", errors.LVOError, ["finite"],
         cli=lambda tmp: ["steer", "--units", "3", "--seeds", "1", "--strength", "nan"],
         python=lambda tmp, unet, be: StrengthSchedule([1], strength=float("nan"))),
    Case("steering with neither an analysis nor a strength", errors.LVOError, ["either an activity analysis"],
         cli=lambda tmp: ["steer", "--units", "3", "--seeds", "1"],
         python=lambda tmp, unet, be: StrengthSchedule([1])),
    Case("timestep outside the schedule", errors.TimestepError, ["1000", "0…999"],
         cli=lambda tmp: VIS[:1] + ["--units", "3", "--timesteps", "1000", "--prior", "random", "--seeds", "1"],
         python=lambda tmp, unet, be: optimize(be, Channel(0), torch.randn(1, 4, 16, 16), [1000], [1])),
    Case("analysis from another hookpoint", errors.ActivityError, ["mid_block.attentions.0", "rerun the analysis"],
         cli=lambda tmp: VIS + ["--units", "3", "--analysis", str(analysis_file(tmp))],
         python=lambda tmp, unet, be: visualize(be, [3], sae=random_sae(), analysis=other_analysis(),
                                                timesteps=[0], seeds=[1])),
    Case("analysis from another SAE", errors.ActivityError, ["different SAE", "rerun"],
         cli=lambda tmp: VIS + ["--units", "3", "--analysis", str(analysis_file(tmp, HP))],
         python=lambda tmp, unet, be: visualize(be, [3], sae=random_sae(), analysis=other_analysis(HP),
                                                timesteps=[0], seeds=[1])),
    Case("analysis file missing", errors.LVOError, ["missing.safetensors", "does not exist"],
         cli=lambda tmp: VIS + ["--units", "3", "--analysis", "missing.safetensors"],
         python=lambda tmp, unet, be: load_analysis("missing.safetensors")),
    Case("peaks without an analysis", errors.LVOError, ["needs an activity analysis", "0,500"],
         cli=lambda tmp: VIS[:1] + ["--recipe", "paper", "--units", "3", "--timesteps", "peaks"],
         python=lambda tmp, unet, be: plan_rows([3], [1], "peaks")),
    Case("row timesteps given to the faithful recipe", errors.LVOError, ["--select-t"],
         cli=lambda tmp: VIS[:1] + ["--units", "3", "--timesteps", "0,500"],
         not_for={"python": "a Recipe's timesteps field is validated when the recipe is made (test_bank)"}),
    Case("empty safetensors", errors.SAEFormatError, ["empty or truncated", "again"],
         cli=lambda tmp: VIS + ["--units", "1", "--sae", str(corrupt(tmp, "empty"))],
         python=lambda tmp, unet, be: load_sae(corrupt(tmp, "empty"))),
    Case("truncated safetensors", errors.SAEFormatError, ["truncated"],
         cli=lambda tmp: VIS + ["--units", "1", "--sae", str(corrupt(tmp, "truncated"))],
         python=lambda tmp, unet, be: load_sae(corrupt(tmp, "truncated"))),
    Case("pickle where safetensors was expected", errors.UnsafeFileError, ["pickle", "weights_only=True", "convert"],
         cli=lambda tmp: VIS + ["--units", "1", "--sae", str(corrupt(tmp, "pickle"))],
         python=lambda tmp, unet, be: load_sae(corrupt(tmp, "pickle"))),
    Case("cfg.json that lies about shapes", errors.SAEFormatError, ["config says d_in=1280", "weights have d_in=6"],
         cli=lambda tmp: VIS + ["--units", "1", "--sae", str(write_sae(tmp / "lie", d_in=1280))],
         python=lambda tmp, unet, be: load_sae(write_sae(tmp / "lie", d_in=1280))),
    Case("unknown SAE format", errors.SAEFormatError, ["holds no SAE", "cfg.json + sae.safetensors"],
         cli=lambda tmp: VIS + ["--units", "1", "--sae", str(tmp)],
         python=lambda tmp, unet, be: load_sae(tmp)),
    Case("hookpoint missing from a multi-hookpoint root", errors.SAEFormatError,
         ["no SAE for hookpoint 'mid_block.attentions.0'", "unet.up_blocks.1.attentions.1"],
         cli=lambda tmp: ["info", "--sae", str(sae_root(tmp)), "--hookpoint", "mid_block.attentions.0"],
         python=lambda tmp, unet, be: load_sae(sae_root(tmp), hookpoint="mid_block.attentions.0")),
    Case("hookpoint given for a single SAE without a model", errors.LVOError, ["give --model"],
         cli=lambda tmp: ["info", "--sae", str(sae_folder(tmp, 32)), "--hookpoint", "mid_block.attentions.0"],
         not_for={"python": "load_sae of a single SAE has no hookpoint to choose; visualize checks the block"}),
    Case("unknown objective value", errors.LVOError, ["dense", "sparse"],
         cli=lambda tmp: VIS + ["--units", "1", "--value", "bogus"],
         python=lambda tmp, unet, be: SAEFeature(random_sae(), 3, value="bogus")),
    Case("backend without a decoder", errors.LVOError, ["no decoder"],
         python=lambda tmp, unet, be: backend_without("decoder", unet).decode(torch.zeros(1, 4, 16, 16)),
         not_for={"cli": "every CLI model has a decoder; a model without one is refused earlier"}),
    Case("backend without a schedule", errors.LVOError, ["scheduler"],
         python=lambda tmp, unet, be: backend_without("scheduler", unet),
         not_for={"cli": NO_CLI}),
    Case("one seed per prompt", errors.LVOError, ["one seed per prompt"],
         python=lambda tmp, unet, be: analyze_activity(be, ["a", "b"], CharPromptEncoder(), seeds=[1]),
         not_for={"cli": "analyze derives one seed per prompt from --seed"}),
    Case("model that does not exist", errors.LVOError, ["nowhere", "does not exist"],
         cli=lambda tmp: VIS + ["--units", "1", "--model", "nowhere"],
         python=lambda tmp, unet, be: load_model("nowhere")),
    Case("single-file checkpoint without a config", errors.LVOError, ["also give --config"],
         cli=lambda tmp: VIS + ["--units", "1", "--model", str(checkpoint(tmp)[0])],
         python=lambda tmp, unet, be: load_model(str(checkpoint(tmp)[0]))),
    Case("checkpoint whose VAE does not load", errors.LVOError, ["VAE weights", "do not load"],
         cli=lambda tmp: VIS + ["--units", "1", "--model", str(checkpoint(tmp, True)[0]), "--config",
                                str(tmp / "model")],
         python=lambda tmp, unet, be: load_model(str(checkpoint(tmp, True)[0]), config=str(tmp / "model"))),
    Case("priors file without the unit", errors.LVOError, ["no latent for unit 9", "run `steer`"],
         cli=lambda tmp: VIS[:1] + ["--units", "9", "--seeds", "1", "--timesteps", "0", "--prior",
                                    str(priors_file(tmp))],
         python=lambda tmp, unet, be: PriorTable.load(str(priors_file(tmp)))([9], [1])),
    Case("--raw and --sae together", errors.LVOError, ["not both"],
         cli=lambda tmp: VIS + ["--units", "1", "--sae", "tiny", "--raw"],
         not_for={"python": "Python passes an SAE or none; there is no flag pair to contradict"}),
    Case("prompts file missing", errors.LVOError, ["prompts file nope.txt does not exist"],
         cli=lambda tmp: ["analyze", "--prompts", "nope.txt"],
         python=lambda tmp, unet, be: read_prompts("nope.txt", "tiny")),
    Case("rerun from a missing result.json", errors.LVOError, ["missing.json does not exist", "result.json"],
         cli=lambda tmp: ["visualize", "--from-json", "missing.json"],
         python=lambda tmp, unet, be: load_result("missing.json")),
    Case("latents become NaN mid-run", errors.LVOError, ["non-finite", "step 2", "kept the latents"],
         python=lambda tmp, unet, be: nan_midway(be),
         not_for={"cli": "the tiny model does not diverge; a NaN is reported in result.json, not raised"}),
]


def run_python(case: Case, tmp: Path, unet, backend) -> None:
    flags = [p.requires_grad for p in unet.parameters()]
    with pytest.raises(case.error) as info:
        case.python(tmp, unet, backend)
    message = str(info.value)
    for fragment in case.fragments:
        assert fragment in message, f"'{fragment}' missing from: {message}"
    assert isinstance(info.value, ValueError)  # every LVOError is a ValueError for callers that know only those
    assert [p.requires_grad for p in unet.parameters()] == flags  # nothing else changed


def run_cli(case: Case, tmp: Path, unet, backend) -> None:
    argv = case.cli(tmp)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv + ([] if "--out" in argv or argv[0] in ("info", "analyze") else
                                ["--out", str(tmp / "out")]))
        except SystemExit as exc:  # argparse's own errors go through the same one-line shape
            code = exc.code
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text + out.getvalue()
    for fragment in case.fragments:
        assert fragment in lines[0], f"'{fragment}' missing from: {lines[0]}"


class NodeHost:
    """The pack's nodes on the ComfyUI stand-ins (``tests/comfy_standins.py``), as a workflow would chain them."""

    def __init__(self, pack, comfy, monkeypatch):
        self.pack, self.comfy, self.monkeypatch = pack, comfy, monkeypatch

    def _run(self, node_id: str, **inputs):
        from comfy_standins import nodes_of

        cls = nodes_of(self.pack)[node_id]
        return cls.execute(**inputs).args[0]

    def loader(self, path: Path, hookpoint: str = "", k: int = 0):
        """LVO SAE Loader on a file that the models/sae listing resolved to ``path``."""
        self.monkeypatch.setattr(self.comfy.glue, "sae_path", lambda name: Path(path))
        return self._run("LVOSAELoader", sae_name=Path(path).name, hookpoint=hookpoint, k=k)

    def hook(self, units: str = "1", hookpoint: str = "", sae=None):
        return self._run("LVOFeatureHook", model=self.comfy.patcher, units=units, hookpoint=hookpoint, sae=sae)

    def sae_units(self, units: str = "3"):
        return self.hook(units, sae=random_sae())

    def optimize(self, units, timesteps: str = "0", steps: int = 1, lr: float = 0.05, objective: str = "dense",
                 activity=None):
        return self._run("LVOOptimize", model=self.comfy.patcher, vae=None, units=units,
                         empty_prompt=[[CharPromptEncoder()([""]), {}]], latent={"samples": torch.zeros(1, 4, 16, 16)},
                         timesteps=timesteps, preset="auto", steps=steps, lr=lr, seeds="1", objective=objective,
                         robustness="L1", noise=True, batch_size=1, precision="fp32", preview_every=0,
                         activity=activity)

    def steering(self, units, strength: float, timesteps: str = "window", activity=None):
        return self._run("LVOSteering", model=self.comfy.patcher, units=units, mode="add", strength=strength,
                         scale=0.0, timesteps=timesteps, start_percent=0.0, end_percent=1.0, apply_to="both",
                         activity=activity)


def run_node(case: Case, tmp: Path, host: NodeHost) -> None:
    """ComfyUI shows the error's message on the node: the same class (by name: the pack carries its own copy of
    lvo_core) and fragments, and the shared model gets no patch."""
    with pytest.raises(Exception) as info:
        case.node(tmp, host)
    names = {k.__name__ for k in type(info.value).__mro__}
    assert case.error.__name__ in names and "ValueError" in names, type(info.value).__mro__
    for fragment in case.fragments:
        assert fragment in str(info.value), f"'{fragment}' missing from: {info.value}"
    assert host.comfy.patcher.wrappers == {}


NODES = {
    "sae width differs from the block (no block fits)": lambda tmp, n: n.hook("1", sae=n.loader(sae_folder(tmp, 1280))),
    "sae width differs from the block (others fit)": lambda tmp, n: n.hook("1", sae=n.loader(sae_folder(tmp, 64))),
    "unknown hookpoint": lambda tmp, n: n.hook("1", "up_blocks.9.attentions.0"),
    "SDXL hookpoint on an SD1.5-style model": lambda tmp, n: n.hook("1", "down.2.1"),
    "feature index out of range": lambda tmp, n: n.hook("500", sae=random_sae()),
    "channel index out of range": lambda tmp, n: n.hook("32"),
    "duplicated unit": lambda tmp, n: n.hook("3, 3", sae=random_sae()),
    "empty unit list": lambda tmp, n: n.hook("", sae=random_sae()),
    "unreadable unit text": lambda tmp, n: n.hook("3, x", sae=random_sae()),
    "unreadable atlas range": lambda tmp, n: n.hook("5-x", sae=random_sae()),
    "negative steps": lambda tmp, n: n.optimize(n.sae_units(), steps=-5),
    "lr ≤ 0": lambda tmp, n: n.optimize(n.sae_units(), lr=0.0),
    "NaN steering strength": lambda tmp, n: n.steering(n.sae_units(), float("nan")),
    "timestep outside the schedule": lambda tmp, n: n.optimize(n.sae_units(), timesteps="1000"),
    "analysis from another hookpoint": lambda tmp, n: n.optimize(n.sae_units(), activity=other_analysis()),
    "analysis from another SAE": lambda tmp, n: n.optimize(n.sae_units(), activity=other_analysis(HP)),
    "peaks without an analysis": lambda tmp, n: n.optimize(n.sae_units(), timesteps="peaks"),
    "empty safetensors": lambda tmp, n: n.loader(corrupt(tmp, "empty")),
    "truncated safetensors": lambda tmp, n: n.loader(corrupt(tmp, "truncated")),
    "pickle where safetensors was expected": lambda tmp, n: n.loader(corrupt(tmp, "pickle")),
    "cfg.json that lies about shapes": lambda tmp, n: n.loader(write_sae(tmp / "lie", d_in=1280)),
    "unknown SAE format": lambda tmp, n: n.loader(tmp),
    "hookpoint missing from a multi-hookpoint root": lambda tmp, n: n.loader(sae_root(tmp), "mid_block.attentions.0"),
    "unknown objective value": lambda tmp, n: n.optimize(n.sae_units(), objective="bogus"),
}
NOT_FOR_NODES = {
    "atlas chunk size 0": "the atlas is a CLI command; no node chunks work",
    "steering with neither an analysis nor a strength": "the node says it in its own words first (strength 0 means "
                                                        "'dataset max × scale', which needs an activity analysis): "
                                                        "test_nodes",
    "analysis file missing": "analyses reach nodes as LVO_ACTIVITY sockets, never as file names",
    "row timesteps given to the faithful recipe": "LVO Faithful has no row-timesteps input, only selection_t",
    "hookpoint given for a single SAE without a model": "SAE Loader passes the hookpoint on; Feature Hook checks it",
    "backend without a decoder": "every node backend decodes with the VAE socket ComfyUI requires",
    "backend without a schedule": "a node backend reads the schedule from the MODEL itself",
    "one seed per prompt": "Activity Analysis makes one seed per prompt itself",
    "model that does not exist": "ComfyUI's own loaders open models",
    "single-file checkpoint without a config": "ComfyUI's own loaders open checkpoints",
    "checkpoint whose VAE does not load": "ComfyUI's own loaders open checkpoints",
    "priors file without the unit": "priors reach LVO Optimize as a LATENT (its missing row: test_nodes)",
    "--raw and --sae together": "Feature Hook has one optional SAE socket: raw without it, SAE with it",
    "prompts file missing": "prompts reach Activity Analysis as text, never as a file name",
    "rerun from a missing result.json": "a CLI rerun; ComfyUI reruns from the saved workflow",
    "latents become NaN mid-run": "the NaN stop is the engine's and reported in the node's metrics (test_hygiene)",
}
for _case in CASES:
    if _case.id in NODES:
        _case.node = NODES[_case.id]
    elif _case.id in NOT_FOR_NODES:
        _case.not_for["node"] = NOT_FOR_NODES[_case.id]


def run_node_case(case: Case, tmp: Path, request) -> None:
    host = NodeHost(request.getfixturevalue("pack"), request.getfixturevalue("fake_comfy"),
                    request.getfixturevalue("monkeypatch"))
    run_node(case, tmp, host)


RUNNERS = {"python": run_python, "cli": run_cli, "node": run_node_case}
MATRIX = [(case, entry) for case in CASES for entry in RUNNERS if getattr(case, entry, None) is not None]


def test_every_case_names_every_entry_point():
    for case in CASES:
        for entry in RUNNERS:
            assert (getattr(case, entry, None) is not None) != (entry in case.not_for), (case.id, entry)


@pytest.mark.parametrize("case, entry", MATRIX, ids=[f"{e}: {c.id}" for c, e in MATRIX])
def test_bad_input_gets_a_clear_error(case, entry, tmp_path, unet, backend, request):
    if entry == "node":
        run_node_case(case, tmp_path, request)
    else:
        RUNNERS[entry](case, tmp_path, unet, backend)


def test_no_bare_value_errors_in_the_library():
    """Library errors are LVOErrors (ValueErrors still), so the CLI prints them as one line, never a traceback."""
    offenders = [(p.name, n + 1) for p in ROOT.glob("lvo_core/**/*.py") if "/sae/" not in str(p)
                 for n, line in enumerate(p.read_text().splitlines()) if "raise ValueError(" in line]
    assert offenders == []


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


def test_names_resolve_only_inside_the_models_folder(pack, tmp_path):
    """A web request or a workflow may name only what the SAE listing offers (nodes/sae_folders.py): no escape by
    ``..``, absolute paths, NUL bytes or overlong names. A symlink the server owner put there is followed: that
    placement is the owner's choice, made on the file system."""
    folders = importlib.import_module("comfyui_lvo.nodes.sae_folders")
    root = tmp_path / "sae"
    write_sae(root / "good")
    outside = tmp_path / "secret"
    write_sae(outside)
    for bad in ("../secret", "/etc/passwd", str(outside), "good/../../secret", "good\x00", "", "a" * 2000):
        assert folders.resolve([root], bad) is None, bad
    assert folders.resolve([root], "good") == (root / "good").resolve()
    assert folders.list_names([root]) == ["good"]
    os.symlink(outside, root / "link_out")
    assert folders.list_names([root]) == ["good", "link_out"]
    assert folders.resolve([root], "link_out") == outside.resolve()


def test_seeds_timesteps_and_units_each_name_themselves_when_unreadable():
    from lvo_core.model.units import parse_seeds, parse_timesteps

    assert parse_seeds("1, 3-5") == [1, 3, 4, 5] and parse_timesteps("0 200-202") == [0, 200, 201, 202]
    for parse, error, word in ((parse_units, errors.UnitError, "unit"), (parse_seeds, errors.LVOError, "seed"),
                               (parse_timesteps, errors.TimestepError, "timestep")):
        with pytest.raises(error, match=f"cannot read {word} 'x'"):
            parse("1, x")
        with pytest.raises(error, match=f"{word}s are non-negative 64-bit integers"):
            parse("1-99999999999999999999")
        with pytest.raises(error, match=f"lists more than 4 {word}s"):
            parse("1-5", limit=4)
    with pytest.raises(errors.UnitError, match=r"--units all"):
        parse_units("0-2000000")
