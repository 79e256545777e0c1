"""FLUX.1-shaped models: flow-matching noise, hookpoints in both namings, the backend, and LVO on top of it."""

from __future__ import annotations

import pytest
import torch
from comfy_standins import ComfyFlux

from lvo_core.errors import HookpointError, LVOError
from lvo_core.hookpoints import equivalent_names, list_hookpoints, resolve_hookpoint
from lvo_core.model.conditioning import Conditioning
from lvo_core.model.flow import FlowMatchSchedule, dynamic_shift_mu, shift_from_config
from lvo_core.model.families.flux import (
    CharFluxPromptEncoder,
    FluxBackend,
    image_ids,
    pack,
    tiny_flux,
    tiny_flux_vae,
    unpack,
)
from lvo_core.model.hooks import capture, edit, hook_count
from lvo_core.model.sampling import sample_with
from lvo_core.model.tiny import random_sae


# ------------------------------------------------------------------------------------------------ the schedule
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_schedule_is_diffusers_training_table_and_scale_noise(shift):
    from diffusers import FlowMatchEulerDiscreteScheduler

    schedule = FlowMatchSchedule(1000, shift)
    ref = FlowMatchEulerDiscreteScheduler(shift=shift)
    # t = 0 … 999 is diffusers' table read from the clean end; t = 999 is pure noise
    assert torch.allclose(schedule.sigmas.float(), ref.sigmas.flip(0))
    assert schedule.sigma([999]).item() == 1.0 and schedule.sigma([0]).item() == pytest.approx(
        shift * 0.001 / (1 + (shift - 1) * 0.001))
    g = torch.Generator().manual_seed(0)
    z, eps = torch.randn(3, 16, 4, 6, generator=g), torch.randn(3, 16, 4, 6, generator=g)
    t = torch.tensor([999, 500, 3])
    x = schedule.add_noise(z, t, eps)
    expected = ref.scale_noise(z, ref.timesteps[999 - t], eps)
    assert torch.allclose(x, expected, atol=1e-6)
    v = eps - z  # what FLUX predicts (diffusers' Euler step is x + (σ_next − σ)·v)
    assert torch.allclose(schedule.to_eps(v, x, t), eps, atol=1e-5)
    assert torch.equal(schedule.timestep_of(schedule.sigma(t)), t)
    assert schedule.describe() == {"kind": "flow", "timesteps": 1000, "shift": shift}
    assert schedule.signature() != FlowMatchSchedule(1000, shift + 0.5).signature()


def test_flux_dev_dynamic_shift_matches_its_scheduler_config():
    config = {"use_dynamic_shifting": True, "base_image_seq_len": 256, "max_image_seq_len": 4096,
              "base_shift": 0.5, "max_shift": 1.15, "shift": 3.0}
    assert dynamic_shift_mu(256) == pytest.approx(0.5) and dynamic_shift_mu(4096) == pytest.approx(1.15)
    assert shift_from_config(config, 4096) == pytest.approx(3.158192, abs=1e-6)  # 1024² px: e^1.15
    assert shift_from_config({"shift": 3.0}, 4096) == 3.0
    # diffusers' own resolution-dependent σ at μ equal the fixed-shift formula at s = e^μ
    from diffusers import FlowMatchEulerDiscreteScheduler

    dyn = FlowMatchEulerDiscreteScheduler(**config)
    dyn.set_timesteps(sigmas=[0.9, 0.5, 0.1], mu=1.15)
    fixed = FlowMatchSchedule(1000, shift_from_config(config, 4096))
    assert torch.allclose(dyn.sigmas[:3].double(), fixed.sigma([899, 499, 99]), atol=1e-6)


def test_flow_sampler_steps_on_training_timesteps_and_lands_on_the_data():
    schedule = FlowMatchSchedule(1000, 3.0)
    sampler = schedule.sampler()
    sampler.set_timesteps(10)
    t = sampler.timesteps
    assert t.dtype == torch.float32 and torch.equal(t, t.round()) and t[0] == 999
    assert torch.allclose(sampler.sigmas[:-1].double(), schedule.sigma(t.long()), atol=1e-6)
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler(shift=3.0)
    ref.set_timesteps(10)
    assert (sampler.sigmas - ref.sigmas).abs().max() < 2e-3  # diffusers' spacing, rounded to training steps
    # with the exact velocity of one data point, Euler on the straight path ends on it
    z = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(1))

    def oracle(x, timesteps, _context):
        return (x - z) / schedule.sigma(timesteps.long(), x).reshape(-1, 1, 1, 1)

    out = sample_with(oracle, schedule.sampler(), torch.zeros(1, 1, 1), steps=6, seeds=[0, 1],
                      latent_shape=(16, 4, 4))
    assert torch.allclose(out, z, atol=1e-4)


# ------------------------------------------------------------------------------------------------ fixtures



@pytest.fixture(scope="module")
def flux():
    return tiny_flux(seed=0)


@pytest.fixture(scope="module")
def comfy_flux(flux):
    return ComfyFlux(flux)


@pytest.fixture(scope="module")
def encoder():
    return CharFluxPromptEncoder()


def backend(model, hookpoint="transformer_blocks.1", **kw):
    kw.setdefault("encode_prompt", CharFluxPromptEncoder())
    return FluxBackend(model, hookpoint, shift=3.0, **kw)


# ------------------------------------------------------------------------------------------------ packing
def test_packing_is_fluxs_2x2_patch_layout_and_round_trips():
    x = torch.randn(2, 16, 6, 10)
    tokens = pack(x)
    assert tokens.shape == (2, 15, 64)
    # token (row r, column c) holds channel k's patch x[k, 2r:2r+2, 2c:2c+2] at 4k + 2·dy + dx
    r, c, k, dy, dx = 2, 3, 5, 1, 0
    assert tokens[1, r * 5 + c, 4 * k + 2 * dy + dx] == x[1, k, 2 * r + dy, 2 * c + dx]
    assert torch.equal(unpack(tokens, (3, 5)), x)
    ids = image_ids((3, 5))
    assert ids.shape == (15, 3) and ids[r * 5 + c].tolist() == [0.0, r, c]
    with pytest.raises(LVOError, match="FLUX latents need even H and W"):
        pack(torch.zeros(1, 16, 5, 8))


# ------------------------------------------------------------------------------------------------ hookpoints
def test_hookpoints_resolve_in_both_namings_on_both_layouts(flux, comfy_flux):
    for model in (flux, comfy_flux):
        for name in ("transformer_blocks.1", "transformer.transformer_blocks.1", "double_blocks.1",
                     "diffusion_model.double_blocks.1", "model.diffusion_model.double_blocks.1"):
            point = resolve_hookpoint(model, name)
            assert (point.diffusers_name, point.ldm_name, point.kind, point.stream, point.channels) == (
                "transformer_blocks.1", "double_blocks.1", "double", "image", 32)
        single = resolve_hookpoint(model, "single_blocks.0", stream="text")
        assert single.diffusers_name == "single_transformer_blocks.0:text" and single.ldm_name == "single_blocks.0:text"
        assert resolve_hookpoint(model, single.ldm_name).module is single.module
    assert resolve_hookpoint(flux, "double_blocks.1").module is flux.transformer_blocks[1]
    assert resolve_hookpoint(comfy_flux, "transformer_blocks.1").module is comfy_flux.double_blocks[1]
    names = [(p.diffusers_name, p.ldm_name) for p in list_hookpoints(comfy_flux)]
    assert names == [("transformer_blocks.0", "double_blocks.0"), ("transformer_blocks.1", "double_blocks.1"),
                     ("single_transformer_blocks.0", "single_blocks.0"),
                     ("single_transformer_blocks.1", "single_blocks.1")]
    assert names == [(p.diffusers_name, p.ldm_name) for p in list_hookpoints(flux)]


def test_flux_naming_round_trips_through_diffusers_converter():
    from diffusers.loaders.single_file_utils import (
        convert_flux_transformer_checkpoint_to_diffusers,
    )

    from lvo_core.hookpoints.flux import _flux_conversion

    pairs, _ = _flux_conversion(19, 38, True)
    assert pairs["transformer_blocks.18"] == "double_blocks.18" and pairs["single_transformer_blocks.3"] == \
        "single_blocks.3" and len(pairs) == 57
    # every converted name of a block comes from that block's original names, and back
    assert equivalent_names("transformer.transformer_blocks.18") == ["transformer_blocks.18", "double_blocks.18"]
    assert equivalent_names("diffusion_model.double_blocks.18") == ["double_blocks.18", "transformer_blocks.18"]
    assert equivalent_names("single_blocks.3:text") == ["single_blocks.3:text", "single_transformer_blocks.3:text"]
    assert equivalent_names("single_transformer_blocks.3")[1] == "single_blocks.3"
    # a real BFL-named state dict of block 0 converts onto the block the map names
    bfl = {k: torch.zeros(21504) for k in _probe_names(1, 1)}
    out = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    assert {k.split(".")[0] + "." + k.split(".")[1] for k in out if "blocks" in k} == {
        "transformer_blocks.0", "single_transformer_blocks.0"}


def _probe_names(double: int, single: int) -> list[str]:
    from diffusers.loaders.single_file_utils import (
        convert_flux_transformer_checkpoint_to_diffusers,
    )

    from lvo_core.hookpoints.flux import _TaggedProbe

    probe = _TaggedProbe(double, single, False)
    convert_flux_transformer_checkpoint_to_diffusers(probe)
    return probe.popped


def test_hookpoint_errors_name_the_fix(flux):
    with pytest.raises(HookpointError, match="unknown token stream 'audio'.*image, text"):
        resolve_hookpoint(flux, "transformer_blocks.1:audio")
    with pytest.raises(HookpointError, match="2 double-stream and 2 single-stream blocks"):
        resolve_hookpoint(flux, "transformer_blocks.18")
    with pytest.raises(HookpointError, match="transformer_blocks.18"):
        resolve_hookpoint(flux, "up_blocks.1.attentions.1")
    with pytest.raises(HookpointError, match="names the text stream but stream='image'"):
        resolve_hookpoint(flux, "double_blocks.0:text", stream="image")


# ------------------------------------------------------------------------------------------------ the backend
@pytest.mark.parametrize("hookpoint", ["transformer_blocks.1", "double_blocks.0:text", "single_blocks.1",
                                       "single_transformer_blocks.0:text"])
def test_block_tokens_are_the_blocks_stream_in_a_full_forward_on_both_layouts(flux, comfy_flux, hookpoint):
    from lvo_core.model.families.flux import diffusers_flux_call

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 6, 10, generator=g)  # non-square: a 3 × 5 token grid
    t = torch.tensor([700, 100])
    results = []
    for model in (flux, comfy_flux):
        b = backend(model, hookpoint, call=None if model is flux else _comfy_call)
        ctx = b.empty_context(2)
        tokens, hw = b.block_tokens(x, t, ctx)
        with capture(model, hookpoint) as rec, torch.no_grad():
            b.predict(x, t, ctx)
        assert torch.allclose(rec.tokens[0], tokens.detach(), atol=1e-5)
        assert hw == rec.hw == ((3, 5) if ":text" not in hookpoint else (1, 6))
        results.append((tokens.detach(), b.predict(x, t, ctx)))
        assert hook_count(model) == 0
    # the ComfyUI layout computes the same numbers as diffusers' on the same weights
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)
    direct = diffusers_flux_call(flux, x, FlowMatchSchedule(1000, 3.0).sigma(t, x), CharFluxPromptEncoder()([""]))
    assert torch.allclose(results[0][1], direct, atol=1e-6)


def _comfy_call(model, x, sigma, context):
    from lvo_core.model.families.flux import split_conditioning

    tokens, pooled, g = split_conditioning(model, context, x.shape[0], x)
    return model(x, sigma.expand(x.shape[0]), tokens, y=pooled, guidance=g, transformer_options={})


def test_early_exit_guidance_and_eps(flux):
    b = backend(flux, "transformer_blocks.0")
    ran = []
    with edit(flux, "single_blocks.0", lambda tk: ran.append(1) or tk):
        b.block_tokens(torch.randn(1, 16, 4, 4), torch.tensor([500]), b.empty_context(1))
    assert ran == []  # nothing after the hooked block runs
    x, t = torch.randn(1, 16, 4, 4), torch.tensor([500])
    ctx = b.empty_context(1)
    assert torch.allclose(b.predict_eps(x, t, ctx), x + (1 - b.schedule.sigma(t).float()) * b.predict(x, t, ctx))
    # guidance is an input of the distilled model: it changes the prediction, and 3.5 is the default
    plain = Conditioning(ctx.tokens, {"pooled_projections": ctx.extras["pooled_projections"]})
    assert torch.equal(b.predict(x, t, plain), b.predict(x, t, ctx))
    strong = Conditioning(ctx.tokens, {**ctx.extras, "guidance": torch.tensor([7.0])})
    assert not torch.allclose(b.predict(x, t, strong), b.predict(x, t, ctx))
    with pytest.raises(LVOError, match="pooled CLIP embedding"):
        b.predict(x, t, ctx.tokens)
    with pytest.raises(LVOError, match="even H and W"):
        b.block_tokens(torch.randn(1, 16, 5, 4), t, ctx)


def test_trainable_copy_for_inference_weights_leaves_the_shared_model_alone():
    with torch.inference_mode():
        shared = tiny_flux(seed=2)
    assert all(p.is_inference() for p in shared.parameters())
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    b = backend(shared, "transformer_blocks.0")
    x = torch.randn(1, 16, 4, 4, requires_grad=True)
    tokens, _ = b.block_tokens(x, torch.tensor([300]), b.empty_context(1))
    tokens.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    full = sum(p.numel() * p.element_size() for p in shared.parameters())
    copied = sum(p.numel() * 4 for n, p in shared.named_parameters()
                 if not n.startswith(("transformer_blocks.1.", "single_transformer_blocks.", "norm_out.", "proj_out.")))
    assert b.copy_bytes == copied < full
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())


def test_full_size_flux_dev_copy_measured_on_the_meta_device():
    from lvo_core.model.memory import copy_sizes

    (figure,) = copy_sizes("flux")
    assert figure["model_params"] == 11_901_408_320  # FLUX.1-dev: 19 double + 38 single blocks at width 3072
    assert figure["copy_params"] == 6_501_842_432  # embedders and all 19 double blocks
    assert figure["dtype"] == "bfloat16" and figure["copy_gib"] == round(13_003_684_864 / 2 ** 30, 3)


# ------------------------------------------------------------------------------------------------ LVO on FLUX
class Injected(RuntimeError):
    pass


def _state(model):
    return [(n, p.requires_grad, p.dtype) for n, p in model.named_parameters()]


def test_lvo_raises_the_feature_on_flux_and_any_fault_leaves_the_model_pristine(monkeypatch):
    from lvo_core.lvo.optimize import preset
    from lvo_core.lvo.pipeline import visualize

    model = tiny_flux(seed=4)
    model.x_embedder.weight.requires_grad_(False)  # a mixed pattern of flags, which must survive
    state = _state(model)
    x, t = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([400])
    b = backend(model, "transformer_blocks.1", decoder=tiny_flux_vae(), copy_weights=False)
    reference = b.predict(x, t, b.empty_context(1))
    sae = random_sae(d_in=32, hookpoint="transformer.transformer_blocks.1")
    vis = visualize(b, [3, 8], sae=sae, timesteps=[0, 300], seeds=[1], prior="random",
                    config=preset("sae", steps=8), batch_size=4, eval_samples=1)
    assert vis.complete and vis.images.shape == (4, 32, 32, 3)
    for row in vis.metrics:  # the optimized latent drives its feature harder than where it started
        assert row["activation"] > row["prior_activation"] + 0.05
    assert hook_count(model) == 0 and _state(model) == state and all(p.grad is None for p in model.parameters())

    def boom(*_a, **_k):
        raise Injected("injected fault")

    monkeypatch.setattr("lvo_core.lvo.objectives.SAEFeature.per_position", boom)
    with pytest.raises(Injected):
        visualize(b, [3], sae=sae, timesteps=[0], seeds=[1], prior="random", config=preset("sae", steps=2))
    assert hook_count(model) == 0 and _state(model) == state
    assert torch.equal(b.predict(x, t, b.empty_context(1)), reference)


def test_cli_runs_activity_steering_and_the_faithful_recipe_on_tiny_flux(tmp_path):
    import json

    from lvo_core.analysis.activity import ActivityAnalysis
    from lvo_core.cli import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("red circle\n")
    act = tmp_path / "act.safetensors"
    assert main(["analyze", "--model", "tiny-flux", "--prompts", str(prompts), "--steps", "3", "--top-n", "8",
                 "--out", str(act)]) == 0
    analysis = ActivityAnalysis.load(act)
    assert analysis.hookpoint == "transformer_blocks.1" and analysis.timesteps.tolist() == [999, 500, 2]
    assert main(["steer", "--model", "tiny-flux", "--units", "3", "--seeds", "1", "--strength", "2", "--window",
                 "0", "1", "--prior-steps", "2", "--out", str(tmp_path / "steer")]) == 0
    assert (tmp_path / "steer" / "priors.png").is_file()
    assert main(["visualize", "--model", "tiny-flux", "--units", "3", "--seeds", "1", "--bank-size", "1",
                 "--steps", "2", "--eval-samples", "1", "--out", str(tmp_path / "faithful")]) == 0
    result = json.loads((tmp_path / "faithful" / "result.json").read_text())
    assert result["recipe"]["name"] == "faithful" and result["rows"][0]["timestep"] == 200


def test_interrupt_returns_the_partial_run_and_a_saved_flux_folder_loads_back(tmp_path):
    from lvo_core.lvo.optimize import preset
    from lvo_core.lvo.pipeline import visualize
    from lvo_core.model.loading import load_model, save_model_folder

    model = load_model("tiny-flux")
    folder = save_model_folder(model, tmp_path / "flux")
    again = load_model(str(folder))
    assert again.info["shift"] == 3.0 and isinstance(again.encode_prompt, CharFluxPromptEncoder)
    b1, b2 = (FluxBackend(m.denoiser, "double_blocks.1", schedule=FlowMatchSchedule(1000, 3.0),
                          encode_prompt=m.encode_prompt) for m in (model, again))
    assert b2.latent_shape == (16, 16, 16)
    x, t = torch.randn(1, 16, 16, 16), torch.tensor([250])
    assert torch.allclose(b1.predict(x, t, b1.empty_context(1)), b2.predict(x, t, b2.empty_context(1)), atol=1e-5)
    calls = []
    vis = visualize(b1, [3], sae=random_sae(d_in=32), timesteps=[0], seeds=[1], prior="random",
                    config=preset("sae", steps=6), decode=False,
                    should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert vis.interrupted and len(vis.rows) == 1 and hook_count(model.denoiser) == 0
