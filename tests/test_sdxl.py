"""SDXL and SDXL-Turbo: added conditioning (pooled text embedding, size/crop ids; ComfyUI's ``y``), blocks read as
their update (output − input, as sdxl-unbox's SAEs are trained), the few-step Turbo schedule, and LVO, steering,
activity analysis and the faithful recipe end to end on a tiny SDXL-shaped UNet — in Python, the CLI and the nodes."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace

import pytest
import torch
from conftest import ldm_view
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

from lvo_core.analysis.activity import analyze_activity
from lvo_core.analysis.bank import BankSettings, build_bank
from lvo_core.analysis.steering import steer
from lvo_core.errors import SAEMismatchError
from lvo_core.hookpoints import resolve_hookpoint
from lvo_core.lvo.optimize import PRESETS
from lvo_core.lvo.pipeline import visualize
from lvo_core.lvo.recipes import recipe, visualize_recipe
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.conditioning import Conditioning, cat
from lvo_core.model.hooks import capture, hook_count, run_to_block
from lvo_core.model.loading import load_model, save_model_folder
from lvo_core.model.schedule import DDPMSchedule
from lvo_core.model.families.sd import ldm_state_dict
from lvo_core.model.families.sdxl import CharSDXLPromptEncoder, tiny_sdxl_unet
from lvo_core.model.tiny import random_sae, sd15_scheduler, tiny_vae

UNBOX_BLOCKS = {"down_blocks.2.attentions.1": "input_blocks.8.1", "mid_block.attentions.0": "middle_block.1",
                "up_blocks.0.attentions.0": "output_blocks.0.1", "up_blocks.0.attentions.1": "output_blocks.1.1"}
HOOK = "up_blocks.0.attentions.1"


@pytest.fixture(scope="module")
def xl():
    return tiny_sdxl_unet()


@pytest.fixture(scope="module")
def encoder():
    return CharSDXLPromptEncoder()


@pytest.fixture(scope="module")
def update_sae():
    return random_sae(d_in=64, d_sae=96, k=4, input_kind="update", hookpoint=f"unet.{HOOK}")


def backend_on(xl, encoder, reads="update", **kw):
    return DiffusersBackend(xl, HOOK, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=encoder,
                            reads=reads, **kw)


def test_unbox_blocks_resolve_in_both_namings_and_the_checkpoint_round_trips(xl):
    view = ldm_view(xl)
    for d_name, l_name in UNBOX_BLOCKS.items():
        short = d_name.replace("_blocks", "").replace("_block", "").replace(".attentions", "")
        for name in (d_name, f"unet.{d_name}", l_name, f"diffusion_model.{l_name}", short):
            a, b = resolve_hookpoint(xl, name), resolve_hookpoint(view, name)
            assert a.module is b.module and (a.diffusers_name, a.ldm_name) == (d_name, l_name)
    state = xl.state_dict()  # label_emb (SDXL's pooled/size embedding) included
    back = convert_ldm_unet_checkpoint(ldm_state_dict(xl), dict(xl.config))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_added_conditioning_reaches_the_block(xl, encoder):
    """Pooled embedding and size ids change the block's activations: the conditioning is not silently dropped."""
    be = backend_on(xl, encoder, reads="output")
    x, t = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    c = encoder(["red ring"])
    base, _ = be.block_tokens(x, t, c)
    pooled = c.extras["text_embeds"] + 1
    other_pooled, _ = be.block_tokens(x, t, Conditioning(c.tokens, {**c.extras, "text_embeds": pooled}))
    other_size, _ = be.block_tokens(x, t, Conditioning(c.tokens, {**c.extras, "time_ids": c.extras["time_ids"] * 2}))
    assert (base - other_pooled).abs().max() > 1e-3 and (base - other_size).abs().max() > 1e-3
    assert len(c) == 1 and c.expand(3, -1, -1).tokens.shape == (3, 6, 32) and len(cat([c, c])) == 2
    assert c.extras["time_ids"].tolist() == [[128.0, 128.0, 0.0, 0.0, 128.0, 128.0]]


def test_update_reading_is_output_minus_input(xl, encoder, update_sae):
    block = xl.get_submodule(HOOK)
    seen = {}
    handle = block.register_forward_hook(lambda m, i, o: seen.update(x_in=i[0].detach(), x_out=o[0].detach()))
    x, t, c = torch.randn(2, 4, 16, 16), torch.tensor([300, 300]), encoder(["", "blue"])
    try:
        update = run_to_block(xl, resolve_hookpoint(xl, HOOK).reading("update"), x, t, call=lambda m, *a: m(
            a[0], a[1], encoder_hidden_states=c.tokens, added_cond_kwargs=c.extras))
    finally:
        handle.remove()
    torch.testing.assert_close(update, seen["x_out"] - seen["x_in"])
    tokens, hw = backend_on(xl, encoder).block_tokens(x, t, c)
    assert hw == (4, 4)
    torch.testing.assert_close(tokens, update.flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)
    with capture(xl, HOOK, sae=update_sae, features=[3]) as rec:  # capture adopts the SAE's reading
        xl(x, t, encoder_hidden_states=c.tokens, added_cond_kwargs=c.extras)
    torch.testing.assert_close(rec.tokens[-1], tokens, atol=1e-5, rtol=1e-5)
    assert hook_count(xl) == 0


def test_an_update_sae_on_an_output_backend_is_refused_with_the_fix(xl, encoder, update_sae):
    with pytest.raises(SAEMismatchError, match="reads the block's update.*reads='update'"):
        visualize(backend_on(xl, encoder, reads="output"), [3], sae=update_sae, timesteps=[200], seeds=[1])


def test_turbo_schedule_starts_few_step_sampling_from_pure_noise():
    schedule = DDPMSchedule(sd15_scheduler().alphas_cumprod)
    for steps, first in ((1, 999), (4, 999), (25, 961)):
        sampler = schedule.sampler(steps)
        sampler.set_timesteps(steps)
        assert int(sampler.timesteps[0]) == first, steps
    trailing = DDPMSchedule(sd15_scheduler().alphas_cumprod, "trailing")
    s = trailing.sampler(25)
    s.set_timesteps(25)
    assert int(s.timesteps[0]) == 999 and trailing.signature() != schedule.signature()
    assert schedule.signature() == schedule.alphas.numpy().tobytes()  # SD banks keep their fingerprints


def test_lvo_steering_activity_and_faithful_run_on_sdxl(xl, encoder, update_sae):
    be = backend_on(xl, encoder)
    config = replace(PRESETS["sae"], steps=12)
    vis = visualize(be, [3, 7], sae=update_sae, timesteps=[200], seeds=[1, 2], config=config, batch_size=4)
    again = visualize(be, [3, 7], sae=update_sae, timesteps=[200], seeds=[1, 2], config=config, batch_size=4)
    torch.testing.assert_close(vis.latents, again.latents, rtol=0, atol=0)  # same seed, same result
    gains = [m["activation"] - m["prior_activation"] for m in vis.metrics]
    assert vis.complete and len(gains) == 4 and sum(gains) / 4 > 0.01 and sum(g > 0 for g in gains) >= 3, gains
    out = backend_on(xl, encoder, reads="output")
    analysis = analyze_activity(out, ["red ring", "blue cross"], encoder, sae=update_sae,
                                steps=4, guidance=2.0)
    assert analysis.max.shape == (4, update_sae.d_sae) and float(analysis.max.max()) > 0
    steered = steer(out, [3], [1], sae=update_sae, strength=4.0, steps=3)
    plain = steer(out, [3], [1], sae=update_sae, strength=0.0, steps=3)
    assert steered.shape == (1, 4, 16, 16) and (steered - plain).abs().max() > 1e-3
    bank = build_bank(be, BankSettings(size=6, steps=2, batch_size=6), sae=update_sae, timesteps=[200])
    quick = recipe("faithful")
    quick = replace(quick, config=replace(quick.config, steps=3))
    faithful = visualize_recipe(be, quick, [3], sae=update_sae, seeds=[1, 2], bank=bank)
    assert faithful.complete and {m["pool_index"] for m in faithful.metrics} <= set(range(6))
    assert hook_count(xl) == 0 and all(p.requires_grad for p in xl.parameters())


def test_tiny_sdxl_folder_round_trips(tmp_path):
    model = load_model("tiny-sdxl")
    loaded = load_model(str(save_model_folder(model, tmp_path / "xl")))
    c1, c2 = model.encode_prompt(["ring"]), loaded.encode_prompt(["ring"])
    assert isinstance(c2, Conditioning) and torch.equal(c1.tokens, c2.tokens)
    assert torch.equal(c1.extras["text_embeds"], c2.extras["text_embeds"])
    assert all(torch.equal(a, b) for a, b in zip(model.denoiser.state_dict().values(), loaded.denoiser.state_dict().values()))


def test_cli_runs_on_the_sdxl_shaped_model(tmp_path, capsys):
    from lvo_core.cli import main

    assert main(["visualize", "--model", "tiny-sdxl", "--units", "3", "--seeds", "1", "--steps", "3",
                 "--bank-size", "4", "--out", str(tmp_path / "v")]) == 0  # the faithful recipe, with its bank
    result = json.loads((tmp_path / "v" / "result.json").read_text())
    assert result["hookpoint"].endswith(HOOK) and result["complete"] and len(result["metrics"]) == 1
    assert main(["analyze", "--model", "tiny-sdxl", "--steps", "2", "--out", str(tmp_path / "a.safetensors")]) == 0
    assert (tmp_path / "a.safetensors").is_file()


# ------------------------------------------------------------------------------------------------ ComfyUI side
class FakeSDXLBase:
    """ComfyUI's SDXL model as the glue sees it: ``adm_channels`` and ``encode_adm`` (pooled + 6 size embeddings)."""

    adm_channels = 32 + 6 * 8

    def __init__(self):
        self.calls = []

    def encode_adm(self, **kwargs):
        self.calls.append(kwargs)
        sizes = torch.tensor([kwargs["height"], kwargs["width"], kwargs["crop_h"], kwargs["crop_w"],
                              kwargs["target_height"], kwargs["target_width"]], dtype=torch.float32)
        pooled = kwargs["pooled_output"]
        return torch.cat([pooled, sizes.repeat_interleave(8)[None].expand(len(pooled), -1)], 1)


def test_glue_builds_y_for_sdxl_and_passes_it_to_the_ldm_forward(pack):
    glue = sys.modules["comfyui_lvo.nodes.comfy_backend"]
    base = FakeSDXLBase()
    model = types.SimpleNamespace(model=base)
    tokens, pooled = torch.randn(1, 6, 32), torch.randn(1, 32)
    context = glue.context_for(model, [[tokens, {"pooled_output": pooled}]], (4, 16, 16))
    assert context.extras["y"].shape == (1, 80) and base.calls[0]["width"] == 128 and base.calls[0]["crop_w"] == 0
    seen = {}

    def forward(x, timesteps, context, y, transformer_options):
        seen.update(context=context, y=y)
        return x
    glue.ldm_call(forward, torch.zeros(2, 4, 16, 16), torch.tensor([1, 1]), context.expand(2))
    assert seen["y"].shape == (2, 80) and seen["context"].shape == (2, 6, 32)
    with pytest.raises(Exception, match="pooled text embedding"):
        glue.context_for(model, [[tokens, {}]], (4, 16, 16))
    sd = types.SimpleNamespace(model=types.SimpleNamespace(adm_channels=0))
    assert glue.context_for(sd, [[tokens, {}]], (4, 16, 16)) is tokens


@pytest.fixture
def sdxl_comfy(fake_comfy, monkeypatch, xl, encoder):
    """The node stand-ins over the SDXL-shaped UNet: CONDITIONING carries pooled_output, as SDXL's CLIP gives."""
    from comfy_standins import FakePatcher

    core_backend = sys.modules["comfyui_lvo.lvo_core.model.backend"]
    core_cond = sys.modules["comfyui_lvo.lvo_core.model.conditioning"]

    def backend(model, spec, vae, cond, shape, trainable=True):
        tokens, extras = cond[0]
        empty = core_cond.Conditioning(tokens, {"text_embeds": extras["pooled_output"],
                                                "time_ids": encoder([""]).extras["time_ids"]})
        return core_backend.DiffusersBackend(xl, spec.hookpoint, scheduler=sd15_scheduler(), decoder=tiny_vae(),
                                             empty_context=empty, latent_shape=shape, reads=spec.reads)
    monkeypatch.setattr(fake_comfy.glue, "backend", backend)
    fake_comfy.patcher = FakePatcher(xl)
    return fake_comfy


def xl_cond(encoder):
    c = encoder([""])
    return [[c.tokens, {"pooled_output": c.extras["text_embeds"]}]]


def test_lvo_nodes_run_on_sdxl_with_the_shared_model_unchanged(sdxl_comfy, pack, xl, encoder, update_sae):
    from comfy_standins import run

    before = {k: v.clone() for k, v in xl.state_dict().items()}
    spec = run(pack, "LVOFeatureHook", sdxl_comfy.patcher, "3, 7", "up.0.1", update_sae).args[0]
    assert spec.reads == "update" and spec.hookpoint == HOOK
    latent, images, text = run(pack, "LVOOptimize", sdxl_comfy.patcher, None, spec, xl_cond(encoder),
                               {"samples": torch.zeros(1, 4, 16, 16)}, "200", "sae", 3, 0.05, "1", "dense", "L1",
                               True, 2, "fp32", 0).args
    report = json.loads(text)
    assert latent["samples"].shape == (2, 4, 16, 16) and images.shape == (2, 32, 32, 3) and report["complete"]
    bank = run(pack, "LVOSampleBank", sdxl_comfy.patcher, spec, xl_cond(encoder),
               {"samples": torch.zeros(1, 4, 16, 16)}, 4, 2, 1 << 20, "").args[0]
    faithful = run(pack, "LVOFaithful", sdxl_comfy.patcher, None, spec, xl_cond(encoder), bank, "1", "200", 2,
                   "fp32").args
    assert json.loads(faithful[2])["recipe"]["name"] == "faithful"
    assert hook_count(xl) == 0 and all(torch.equal(v, before[k]) for k, v in xl.state_dict().items())


def test_trainable_copy_sizes_of_the_full_size_architectures():
    """SD1.5 and SDXL built on the meta device from their published configs: parameter counts match the released
    models, and the copy LVO trains on stops at the hooked block."""
    from lvo_core.model.memory import copy_sizes

    sd15, sdxl = copy_sizes("sd15"), copy_sizes("sdxl")
    assert sd15[0]["model_params"] == 859_520_964 and sdxl[0]["model_params"] == 2_567_463_684
    assert [r["copy_gib"] for r in sdxl] == [1.546, 2.258, 3.061, 3.806] and sd15[0]["copy_gib"] == 1.264
