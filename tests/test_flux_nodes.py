"""The nodes on a ComfyUI FLUX model (stand-in of comfy.ldm.flux.model.Flux with inference-tensor weights, as
ComfyUI loads them), through the real glue: backend, flow schedule, conditioning, block wrapper."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from comfy_standins import FakeFluxPatcher, fake_flux_sample, flux_cond, run

from lvo_core.hookpoints import resolve_hookpoint
from lvo_core.model.hooks import hook_count
from lvo_core.model.families.flux import tiny_flux, tiny_flux_vae
from lvo_core.model.tiny import random_sae


class FluxVAE:
    """ComfyUI's VAE interface: latents in VAE space → IMAGE ``[B, H, W, 3]`` in [0, 1]."""

    def __init__(self):
        self.vae = tiny_flux_vae()

    def decode(self, latents):
        with torch.no_grad():
            return (self.vae.decode(latents).sample.movedim(1, -1) * 0.5 + 0.5).clamp(0, 1)


@pytest.fixture
def comfy(monkeypatch, pack):
    glue = sys.modules["comfyui_lvo.nodes.comfy_glue"]
    patcher_ext = types.ModuleType("comfy.patcher_extension")
    patcher_ext.WrappersMP = types.SimpleNamespace(DIFFUSION_MODEL="diffusion_model")
    comfy = types.ModuleType("comfy")
    comfy.patcher_extension, comfy.samplers = patcher_ext, sys.modules["comfy.samplers"]
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.patcher_extension", patcher_ext)
    progress = []

    class Progress:
        def __init__(self, total, keep_partial=False):
            self.interrupt_seen = False

        def __call__(self, done, total, preview=None):
            progress.append((done, total))

        def should_stop(self):
            return glue.interrupted()

    def sampling_timesteps(model, scheduler, steps):
        ms = model.get_model_object("model_sampling")
        return [glue.timestep_of(model, torch.tensor(ms.sigma(1 - i / steps))) for i in range(steps)]

    monkeypatch.setattr(glue, "Progress", Progress)
    monkeypatch.setattr(glue, "interrupted", lambda: False)
    monkeypatch.setattr(glue, "load", lambda model: None)
    monkeypatch.setattr(glue, "sample", fake_flux_sample)
    monkeypatch.setattr(glue, "sampling_timesteps", sampling_timesteps)
    monkeypatch.setattr(glue, "encode_text", lambda clip, text: flux_cond())
    monkeypatch.setattr(glue, "seeded_noise_like", lambda latent, seeds: torch.cat(
        [torch.randn(latent[:1].shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]))
    with torch.inference_mode():  # ComfyUI's weights are inference tensors
        transformer = tiny_flux(seed=7)
    patcher = FakeFluxPatcher(transformer)
    state = {k: v.clone() for k, v in transformer.state_dict().items()}
    flags = [p.requires_grad for p in transformer.parameters()]
    return types.SimpleNamespace(glue=glue, patcher=patcher, progress=progress, transformer=transformer, state=state,
                                 flags=flags)


def assert_pristine(c):
    assert hook_count(c.patcher.model.diffusion_model) == 0 and not c.patcher.wrappers
    assert all(torch.equal(c.state[k], v) for k, v in c.transformer.state_dict().items())
    assert [p.requires_grad for p in c.transformer.parameters()] == c.flags
    assert all(p.grad is None and p.is_inference() for p in c.transformer.parameters())


def test_flux_schedule_and_names_from_comfyui_model(comfy, pack):
    glue = comfy.glue
    adapter = sys.modules["comfyui_lvo.nodes.comfy_backend"]
    schedule = adapter.flux_schedule(comfy.patcher.model.model_sampling)
    assert schedule.shift == pytest.approx(3.158192, abs=1e-5)  # ModelSamplingFlux shift 1.15 = μ, i.e. e^1.15
    ms = comfy.patcher.model.model_sampling
    assert torch.allclose(schedule.sigma([499]).float(), torch.tensor([ms.sigma(0.5)]), atol=1e-6)
    assert glue.timestep_of(comfy.patcher, torch.tensor(ms.sigma(0.5))) == 499
    spec = run(pack, "LVOFeatureHook", comfy.patcher, "3, 8", "transformer.transformer_blocks.1",
               random_sae(d_in=32)).args[0]
    assert (spec.hookpoint, spec.channels) == ("transformer_blocks.1", 32)
    point = glue.ldm_hookpoint(comfy.patcher, spec)
    assert (point.module_path, point.stream, point.reads) == ("double_blocks.1", "image", "output")
    text = resolve_hookpoint(glue.diffusion_model(comfy.patcher), "single_transformer_blocks.0:text")
    assert (text.module_path, text.stream) == ("single_blocks.0", "text")
    with pytest.raises(Exception, match="pooled CLIP output.*DualCLIPLoader"):
        adapter.flux_conditioning([[torch.zeros(1, 6, 32), {}]])


def test_lvo_optimize_node_on_flux_runs_on_a_copy_and_leaves_the_model_alone(comfy, pack):
    spec = run(pack, "LVOFeatureHook", comfy.patcher, "3", "double_blocks.1", random_sae(d_in=32)).args[0]
    out = run(pack, "LVOOptimize", comfy.patcher, FluxVAE(), spec, flux_cond(), {"samples": torch.zeros(1, 16, 16, 16)},
              "0, 300", "auto", 3, 0.05, "1", "dense", "L1", True, 2, "fp32", 0)
    latent, images, text = out.args
    report = json.loads(text)
    assert latent["samples"].shape == (2, 16, 16, 16) and images.shape == (2, 32, 32, 3)
    assert report["complete"] and comfy.progress[-1] == (10, 10)  # 2 rows × (3 steps + measuring + decoding)
    assert all(m["activation"] > m["prior_activation"] for m in report["metrics"])
    assert_pristine(comfy)


def test_steering_and_activity_nodes_on_flux(comfy, pack):
    sae = random_sae(d_in=32)
    spec = run(pack, "LVOFeatureHook", comfy.patcher, "3, 8", "transformer_blocks.1", sae).args[0]
    analysis, _chart, images, _prompts = run(pack, "LVOActivityAnalysis", comfy.patcher, None, FluxVAE(), spec,
                                           "a cat\na rose", "", 3, 1.0, "euler", "simple", 0, 128, 128, 4).args
    assert analysis.hookpoint == "transformer_blocks.1" and analysis.num_generations == 2
    assert list(analysis.timesteps) == [999, 666, 332]  # u = (t + 1) / T = 1, ⅔, ⅓
    assert images.shape == (2, 32, 32, 3)
    assert analysis.frequency.sum(axis=1).tolist() == [4.0, 4.0, 4.0]  # top-4 recorded at each step, both images
    (steered,) = run(pack, "LVOSteering", comfy.patcher, spec, "add", 20.0, 0.0, "window", 0.0, 1.0, "both").args
    assert "lvo" in steered.wrappers["diffusion_model"] and not comfy.patcher.wrappers
    noise, latent = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(0)), torch.zeros(1, 16, 16, 16)
    plain = fake_flux_sample(comfy.patcher, noise, flux_cond(), None, latent, 3, 1.0, "euler", "simple", 0)
    pushed = fake_flux_sample(steered, noise, flux_cond(), None, latent, 3, 1.0, "euler", "simple", 0)
    assert (pushed - plain).abs().mean() > 1e-3
    again = fake_flux_sample(comfy.patcher, noise, flux_cond(), None, latent, 3, 1.0, "euler", "simple", 0)
    assert torch.equal(plain, again)
    prior, table = run(pack, "LVOSteeringInit", comfy.patcher, spec, flux_cond(), "1", 3, 128, 128, "euler",
                       "simple", "add", 20.0, 0.0, "window", 0.0, 1.0).args
    assert prior["samples"].shape == (2, 16, 16, 16) and prior["lvo_prior"]["rows"] == [(3, 1), (8, 1)]
    assert table.rows == [(3, 1), (8, 1)] and table.label == "steering init"  # the LVO_PRIOR output, model space
    torch.testing.assert_close(table([8], [1]), comfy.patcher.model.latent_format.process_in(prior["samples"][1:]))
    assert_pristine(comfy)


def test_sample_bank_and_faithful_nodes_on_flux(comfy, pack):
    """The faithful recipe on FLUX: the model's own flow samples, each feature's best one polished at t = 200."""
    sae = random_sae(d_in=32)
    spec = run(pack, "LVOFeatureHook", comfy.patcher, "3, 8", "transformer_blocks.1", sae).args[0]
    bank = run(pack, "LVOSampleBank", comfy.patcher, spec, flux_cond(), {"samples": torch.zeros(1, 16, 16, 16)},
               3, 2, 1 << 20, "").args[0]
    assert bank.size == 3 and comfy.progress[-1] == (6, 6)  # 3 samples × 2 denoising steps
    latent, images, text = run(pack, "LVOFaithful", comfy.patcher, FluxVAE(), spec, flux_cond(), bank, "1", "200",
                               2, "fp32").args
    report = json.loads(text)
    assert latent["samples"].shape == (2, 16, 16, 16) and images.shape == (2, 32, 32, 3) and report["complete"]
    assert {m["timestep"] for m in report["metrics"]} == {200} and report["recipe"]["name"] == "faithful"
    assert_pristine(comfy)
