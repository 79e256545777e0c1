"""Fault injection: whatever breaks, and wherever, the shared model comes out exactly as it went in."""

from __future__ import annotations

import pytest
import torch

from lvo_core.analysis.steering import steer
from lvo_core.lvo.objectives import SAEFeature
from lvo_core.lvo.optimize import preset
from lvo_core.lvo.pipeline import visualize
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.hooks import hook_count
from lvo_core.model.tiny import (
    CharPromptEncoder,
    random_sae,
    sd15_scheduler,
    tiny_unet,
    tiny_vae,
)

HP = "up_blocks.1.attentions.1"


class Injected(RuntimeError):
    pass


def boom(*_args, **_kwargs):
    raise Injected("injected fault")


@pytest.fixture(scope="module")
def world():
    unet = tiny_unet(seed=5)
    unet.conv_in.weight.requires_grad_(False)  # a mixed pattern of flags, which must survive every fault
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 6, 32, generator=g)
    with torch.no_grad():
        reference = unet(x, 300, encoder_hidden_states=ctx).sample.clone()
    state = [(n, p.requires_grad, p.dtype, p.device) for n, p in unet.named_parameters()]
    return dict(unet=unet, x=x, ctx=ctx, reference=reference, state=state, sae=random_sae())


def assert_pristine(w):
    unet = w["unet"]
    assert hook_count(unet) == 0
    assert [(n, p.requires_grad, p.dtype, p.device) for n, p in unet.named_parameters()] == w["state"]
    assert all(p.grad is None for p in unet.parameters())
    with torch.no_grad():
        assert torch.equal(unet(w["x"], 300, encoder_hidden_states=w["ctx"]).sample, w["reference"])


def run(w, **kw):
    unet, enc = w["unet"], CharPromptEncoder()
    backend = DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=enc)
    prior = lambda units, seeds: steer(backend, units, seeds, sae=w["sae"], strength=4.0, steps=3,  # noqa
                                       scheduler=sd15_scheduler())
    return visualize(backend, [3, 8], sae=w["sae"], timesteps=[0, 300], seeds=[1], prior=prior,
                     config=preset("sae", steps=4, preview_every=2), batch_size=2, on_preview=lambda *a: None, **kw)


STAGES = {
    "steering edit (prior)": ("lvo_core.model.hooks.AddDirection.__call__", boom),
    "augmentation": ("lvo_core.lvo.optimize.augment", boom),
    "noise": ("lvo_core.model.schedule.DDPMSchedule.add_noise", boom),
    "objective (graph half built)": ("lvo_core.lvo.objectives.SAEFeature.per_position", boom),
    "gradient transform (after backward)": ("lvo_core.lvo.regularizers.spectral_precondition", boom),
    "optimizer step": ("torch.optim.AdamW.step", boom),
    "preview decode": ("lvo_core.lvo.optimize.display_images", boom),
    "metrics": ("lvo_core.lvo.pipeline.unit_metrics", boom),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_fault_at_every_stage_leaves_the_model_pristine(world, monkeypatch, stage):
    target, fault = STAGES[stage]
    monkeypatch.setattr(target, fault)
    with pytest.raises(Injected):
        run(world)
    monkeypatch.undo()
    assert_pristine(world)


def test_fault_inside_the_hooked_block_and_in_a_callback(world, monkeypatch):
    block = world["unet"].up_blocks[1].attentions[1]
    monkeypatch.setattr(block, "forward", boom)
    with pytest.raises(Injected):
        run(world)
    monkeypatch.undo()
    assert_pristine(world)
    with pytest.raises(Injected):
        run(world, on_progress=boom)
    assert_pristine(world)


def test_keyboard_interrupt_mid_forward_returns_partial_and_leaves_the_model_pristine(world, monkeypatch):
    calls = []
    original = SAEFeature.per_position

    def interrupt_third(self, tokens):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, tokens)

    monkeypatch.setattr(SAEFeature, "per_position", interrupt_third)
    vis = run(world)
    monkeypatch.undo()
    assert vis.interrupted and len(vis.rows) == 2 and vis.history["activation"].shape[0] == 2
    assert torch.isfinite(vis.latents).all()
    assert_pristine(world)


def test_a_clean_run_also_leaves_it_pristine(world):
    vis = run(world)
    assert vis.complete
    assert_pristine(world)
