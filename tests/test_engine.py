"""The LVO engine on the tiny model: objectives, the loop's wiring, determinism, interruption, metrics, steering."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import random_sae

from lvo_core.analysis.activity import analyze_captured
from lvo_core.analysis.metrics import display_images, layer_activations, unit_metrics
from lvo_core.analysis.steering import StrengthSchedule, feature_icon, steer
from lvo_core.errors import LVOError, UnitError
from lvo_core.lvo.objectives import Channel, Direction, SAEFeature
from lvo_core.lvo.optimize import (
    PRESETS,
    ConfigError,
    Interrupted,
    LVOConfig,
    optimize,
    preset,
)
from lvo_core.lvo.pipeline import Row, plan_rows, visualize
from lvo_core.lvo.transforms import ROBUSTNESS_LEVELS, Augment
from lvo_core.model.backend import DiffusersBackend, call_unet
from lvo_core.model.hooks import capture, hook_count, run_to_block, to_tokens
from lvo_core.model.noise import add_noise, alphas_from_scheduler, step_noise
from lvo_core.model.sampling import sample_with, seeded_noise
from lvo_core.model.tiny import CharPromptEncoder, sd15_scheduler, tiny_vae

HP = "up_blocks.1.attentions.1"


@pytest.fixture(scope="module")
def backend(unet):
    return DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())


@pytest.fixture(scope="module")
def init():
    return seeded_noise([1, 2, 3], (4, 16, 16))


# ---------------------------------------------------------------------------------------------- objectives
def test_sae_objectives_per_row_and_variants():
    sae = random_sae(d_in=32, d_sae=64, k=4)
    tokens = torch.randn(3, 20, 32)
    dense = sae.dense_acts(tokens)
    obj = SAEFeature(sae, [5, 9, 5])
    torch.testing.assert_close(obj(tokens, (4, 5)), dense[[0, 1, 2], :, [5, 9, 5]].mean(1))
    pre = SAEFeature(sae, 7, value="pre")(tokens, (4, 5))
    torch.testing.assert_close(pre, sae.pre_acts(tokens)[..., 7].mean(1))
    sparse = SAEFeature(sae, [1, 2, 3], value="sparse", reduce="max")(tokens, (4, 5))
    torch.testing.assert_close(sparse, sae.encode(tokens)[[0, 1, 2], :, [1, 2, 3]].amax(1))
    mask = torch.zeros(4, 5)
    mask[0] = 1.0
    masked = SAEFeature(sae, 5, mask=mask)(tokens, (4, 5))
    torch.testing.assert_close(masked, dense[:, :5, 5].mean(1))
    with pytest.raises(UnitError, match="out of range"):
        SAEFeature(sae, 64)
    with pytest.raises(UnitError, match="2 unit indices for a batch of 3"):
        obj = SAEFeature(sae, [1, 2])
        obj(tokens, (4, 5))


def test_channel_direction_and_algebra():
    tokens = torch.randn(2, 6, 8)
    ch = Channel([3, 4])
    torch.testing.assert_close(ch(tokens, (2, 3)), tokens[[0, 1], :, [3, 4]].mean(1))
    d = torch.randn(8)
    di = Direction(d, reduce="max", label="probe")
    torch.testing.assert_close(di(tokens, (2, 3)), (tokens @ d).amax(1))
    combo = ch + 0.5 * di - Channel(0)
    torch.testing.assert_close(combo(tokens, (2, 3)), ch(tokens, (2, 3)) + 0.5 * di(tokens, (2, 3))
                               - tokens[..., 0].mean(1))
    assert combo.name == "1*1*channel[[3, 4]].mean + 1*0.5*probe + 1*-1*channel[0].mean"
    with pytest.raises(UnitError, match="channel 8 is out of range: the block has 8 channels"):
        Channel(8)(tokens, (2, 3))


# ---------------------------------------------------------------------------------------------- presets, config
def test_presets_are_the_reference_defaults():
    sae, raw = PRESETS["sae"], PRESETS["raw"]
    for c in (sae, raw):
        assert (c.steps, c.lr, c.optimizer, c.weight_decay, c.range_weight, c.range_tau) == (100, 0.05, "adamw",
                                                                                           0.01, 0.5, 3.0)
        assert c.augment == Augment(1, 5.0, 1.1) and c.precondition and c.noise
    assert (sae.tv_weight, sae.moment_weight, sae.blur_sigma) == (0.0, 0.5, 0.0)
    assert (raw.tv_weight, raw.moment_weight, raw.blur_sigma) == (0.5, 0.0, 0.5)
    assert preset("raw", "L3").augment == ROBUSTNESS_LEVELS["L3"]
    assert LVOConfig.from_dict(preset("sae", steps=7).to_dict()) == preset("sae", steps=7)


@pytest.mark.parametrize("bad, message", [({"steps": -1}, "steps must be a positive integer"),
                                          ({"lr": 0.0}, "lr must be > 0"),
                                          ({"lr": float("nan")}, "lr must be a finite number"),
                                          ({"optimizer": "sgd"}, "optimizer must be")])
def test_bad_settings_name_the_fix(bad, message):
    with pytest.raises(ConfigError, match=message):
        LVOConfig(**bad)
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        preset("fast")


# ---------------------------------------------------------------------------------------------- the loop
def test_loop_wiring_matches_a_hand_written_loop(unet, backend, init):
    """With augmentation and preconditioning off, LVO is AdamW on −activation + penalties of the noised latent."""
    sae = random_sae()
    config = preset("sae", steps=4, augment=ROBUSTNESS_LEVELS["L0"], precondition=False, tv_weight=0.3)
    result = optimize(backend, SAEFeature(sae, [3, 8, 20]), init, [100, 400, 700], [1, 2, 3], config)
    alphas = alphas_from_scheduler(sd15_scheduler()).float()
    z = init.clone().requires_grad_(True)
    opt = torch.optim.AdamW([z], lr=0.05, weight_decay=0.01)
    ctx = CharPromptEncoder()([""]).expand(3, -1, -1)
    t = torch.tensor([100, 400, 700])
    for step in range(4):
        x = add_noise(z, t, alphas, step_noise([1, 2, 3], step, (4, 16, 16)))
        tokens, _ = to_tokens(run_to_block(unet, HP, x, t, encoder_hidden_states=ctx))
        act = sae.dense_acts(tokens)[[0, 1, 2], :, [3, 8, 20]].mean(1)
        flat = z.flatten(1)
        tv = (z[..., 1:, :] - z[..., :-1, :]).abs().flatten(1).mean(1) + \
            (z[..., 1:] - z[..., :-1]).abs().flatten(1).mean(1)
        loss = -act + 0.3 * tv + 0.5 * torch.relu(z.abs() - 3).pow(2).flatten(1).mean(1) + \
            0.5 * (flat.mean(1).abs() + (flat.std(1) - 1).abs())
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    unet.zero_grad(set_to_none=True)
    torch.testing.assert_close(result.latents, z.detach(), rtol=1e-5, atol=1e-6)
    assert result.history["activation"].shape == (4, 3)


def test_each_row_raises_its_own_unit(backend, init):
    sae = random_sae()
    units = [3, 8, 20]
    r = optimize(backend, SAEFeature(sae, units), init, [0, 300, 600], [1, 2, 3], preset("sae", steps=30))
    assert r.complete and r.steps_done == 30 and np.isfinite(r.history["loss"]).all()
    prior = layer_activations(backend, init, [0, 300, 600], [1, 2, 3], sae)[[0, 1, 2], units]
    mine = layer_activations(backend, r.latents, [0, 300, 600], [1, 2, 3], sae)[[0, 1, 2], units]
    # measured on held-out noise: ×1.64, ×1.16, ×1.04 (the gain shrinks as noise dominates at later timesteps)
    assert (mine / prior >= torch.tensor([1.5, 1.1, 1.02])).all(), mine / prior
    other = optimize(backend, SAEFeature(sae, [20, 3, 8]), init, [0, 300, 600], [1, 2, 3], preset("sae", steps=30))
    # a row optimized for another unit ends lower on this row's unit than the row optimized for it
    theirs = layer_activations(backend, other.latents, [0, 300, 600], [1, 2, 3], sae)[[0, 1, 2], units]
    assert (mine > theirs).all()


def test_same_seed_same_bytes_and_batch_independence(backend, init):
    sae = random_sae()
    config = preset("sae", steps=6)
    a = optimize(backend, SAEFeature(sae, [3, 8, 20]), init, [0, 300, 600], [1, 2, 3], config)
    b = optimize(backend, SAEFeature(sae, [3, 8, 20]), init, [0, 300, 600], [1, 2, 3], config)
    assert torch.equal(a.latents, b.latents)
    alone = optimize(backend, SAEFeature(sae, [8]), init[1:2], [300], [2], config)
    torch.testing.assert_close(alone.latents[0], a.latents[1], rtol=1e-4, atol=1e-5)
    c = optimize(backend, SAEFeature(sae, [3, 8, 20]), init, [0, 300, 600], [1, 2, 3], preset("sae", steps=6, seed=1))
    assert not torch.equal(a.latents, c.latents)  # another augmentation seed


def test_interrupt_returns_the_partial_result(unet, backend, init):
    sae = random_sae()
    flags = [p.requires_grad for p in unet.parameters()]

    def stop_at_5(info):
        if info.step == 5:
            raise Interrupted

    with torch.inference_mode():  # as ComfyUI runs nodes
        r = optimize(backend, SAEFeature(sae, 3), init, [0], [1, 2, 3], preset("sae", steps=50), on_step=stop_at_5)
    assert r.interrupted and not r.complete and r.steps_done == 5
    assert r.history["activation"].shape == (5, 3) and torch.isfinite(r.latents).all()
    assert not r.latents.is_inference()
    calls = iter([False, False, True])
    r2 = optimize(backend, SAEFeature(sae, 3), init, [0], [1, 2, 3], preset("sae", steps=50),
                  should_stop=lambda: next(calls))
    assert r2.interrupted and r2.steps_done == 2
    assert hook_count(unet) == 0 and [p.requires_grad for p in unet.parameters()] == flags


def test_inference_mode_weights_run_on_a_partial_trainable_copy(init):
    """ComfyUI's situation: weights created under inference_mode cannot be saved for backward."""
    from lvo_core.model.tiny import tiny_unet

    with torch.inference_mode():
        shared = tiny_unet(seed=3)
    normal = tiny_unet(seed=3)
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    kw = dict(scheduler=sd15_scheduler(), encode_prompt=CharPromptEncoder())
    config = preset("raw", steps=4)
    with pytest.raises(LVOError, match="weights are inference tensors"):
        optimize(DiffusersBackend(shared, HP, copy_weights=False, **kw), Channel(3), init, [0], [1, 2, 3], config)
    backend = DiffusersBackend(shared, HP, **kw)
    assert backend.copy_weights  # detected automatically
    with torch.inference_mode():  # as ComfyUI runs nodes
        r = optimize(backend, Channel(3), init, [0], [1, 2, 3], config)
    ref = optimize(DiffusersBackend(normal, HP, **kw), Channel(3), init, [0], [1, 2, 3], config)
    torch.testing.assert_close(r.latents, ref.latents)
    total = sum(p.numel() * p.element_size() for p in shared.parameters())
    assert 0 < backend.copy_bytes < total  # blocks after the hook are not copied
    copy = backend._runner()[0]
    assert isinstance(copy.up_blocks[1].attentions[2], torch.nn.Identity) and isinstance(copy.conv_out,
                                                                                          torch.nn.Identity)
    assert not isinstance(copy.up_blocks[1].attentions[1], torch.nn.Identity)
    assert all(p.is_inference() for p in shared.parameters())
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())
    assert hook_count(shared) == 0


def test_previews_arrive_decoded_every_n_steps(backend, init):
    seen = []
    optimize(backend, Channel(3), init, [0], [1, 2, 3], preset("raw", steps=5, preview_every=2),
             on_preview=lambda step, images: seen.append((step, images)))
    assert [s for s, _ in seen] == [2, 4]
    images = seen[0][1]
    assert images.shape == (3, 32, 32, 3) and images.min() >= 0 and images.max() <= 1


def test_nan_mid_run_stops_and_keeps_the_last_finite_latents(backend, init):
    sae = random_sae()
    good = SAEFeature(sae, 3)
    seen = []

    class Poisoned(SAEFeature):
        def __call__(self, tokens, hw):
            value = good(tokens, hw)
            seen.append(1)
            return value * float("nan") if len(seen) == 4 else value

    r = optimize(backend, Poisoned(sae, 3), init, [0], [1, 2, 3], preset("sae", steps=10))
    ref = optimize(backend, good, init, [0], [1, 2, 3], preset("sae", steps=3))
    assert r.stopped == "non-finite loss or latents at step 3; kept the latents from before it"
    assert r.steps_done == 3 and torch.equal(r.latents, ref.latents)
    with pytest.raises(LVOError, match="initial latents contain NaN"):
        optimize(backend, good, init * float("nan"), [0], [1, 2, 3])


def test_bad_timesteps_and_seed_counts(backend, init):
    with pytest.raises(ValueError, match="timestep 1000 is outside the schedule"):
        optimize(backend, Channel(0), init, [1000], [1, 2, 3])
    with pytest.raises(LVOError, match="2 seeds for 3 latent rows"):
        optimize(backend, Channel(0), init, [0], [1, 2])


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_are_consistent(backend, init):
    sae = random_sae()
    acts = np.abs(np.random.default_rng(0).normal(size=(4, 3, 128))).astype(np.float32)
    analysis = analyze_captured(acts, [900, 500, 100], hookpoint=HP, sae=sae)
    latents = init + 0.1
    rows = unit_metrics(backend, [3, 8, 20], latents, init, [100, 500, 700], [1, 2, 3], sae, analysis, samples=2)
    final = layer_activations(backend, latents, [100, 500, 700], [1, 2, 3], sae, samples=2)
    for b, row in enumerate(rows):
        u = row["unit"]
        assert row["activation"] == pytest.approx(float(final[b, u]), abs=1e-6)
        others = torch.cat([final[b, :u], final[b, u + 1:]])
        assert row["selectivity"] == pytest.approx(float(final[b, u] - others.mean()), abs=1e-5)
        assert row["rank"] == int((final[b] > final[b, u]).sum()) + 1 and row["num_units"] == 128
        assert row["ratio"] == pytest.approx(row["activation"] / row["dataset_max"], abs=1e-3)
    assert rows[0]["dataset_max"] == pytest.approx(float(acts[:, 2, 3].max()), abs=1e-5)


def test_display_scaling():
    x = torch.stack([torch.linspace(-1, 1, 12).reshape(3, 2, 2), torch.linspace(0, 0.5, 12).reshape(3, 2, 2)])
    per = display_images(x)
    assert per.shape == (2, 2, 2, 3) and per[1].min() == 0 and per[1].max() == 1
    batch = display_images(x, "batch")
    assert batch[1].max().item() == pytest.approx(0.75)
    with pytest.raises(ValueError):
        display_images(x, "auto")


# ---------------------------------------------------------------------------------------------- steering
def test_strength_schedule():
    acts = np.zeros((2, 3, 4), np.float32)
    acts[:, 0, 1] = [2.0, 4.0]  # unit 1 is active only at t=900 (top-1 of 4, positive), max 4
    analysis = analyze_captured(acts, [900, 500, 100], hookpoint=HP, top_n=1)
    s = StrengthSchedule([1], analysis=analysis, scale=10.0)
    assert s(0, 3, 900).tolist() == [40.0]
    assert s(2, 3, 100).tolist() == [0.0]
    fixed = StrengthSchedule([1], strength=3.0, window=(0.0, 0.5))
    assert fixed(0, 11, 999).tolist() == [3.0] and fixed(10, 11, 1).tolist() == [0.0]
    with pytest.raises(LVOError, match="finite"):
        StrengthSchedule([1], strength=float("nan"))
    with pytest.raises(LVOError, match="either an activity analysis"):
        StrengthSchedule([1])
    with pytest.warns(UserWarning, match="channel 2 is never among the top-1.*plain empty-prompt sample"):
        silent = StrengthSchedule([1, 2], analysis=analysis, scale=1.0)
    assert silent(0, 3, 900).tolist() == [4.0, 0.0] and list(silent.notes) == [2]  # unsteered, and said so
    assert StrengthSchedule([2], analysis=analysis, strength=1.0, gate="window").at(500, 0.5).tolist() == [1.0]


def test_steering_changes_only_what_it_should(unet, encode_prompt):
    sae = random_sae()
    empty = encode_prompt([""])
    plain = sample_with(lambda x, t, c: call_unet(unet, x, t, c), sd15_scheduler(), empty, steps=5, seeds=[1, 2],
                        latent_shape=(4, 16, 16))
    kw = dict(sae=sae, steps=5)
    be = DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), encode_prompt=encode_prompt)
    zero = steer(be, [3, 8], [1, 2], strength=0.0, **kw)
    torch.testing.assert_close(zero, plain)
    unit_scale = steer(be, [3, 8], [1, 2], mode="scale", strength=1.0, **kw)
    torch.testing.assert_close(unit_scale, plain, rtol=1e-4, atol=1e-5)  # error preserved: a no-op
    pushed = steer(be, [3, 8], [1, 2], strength=20.0, **kw)
    again = steer(be, [3, 8], [1, 2], strength=20.0, **kw)
    assert torch.equal(pushed, again) and not torch.allclose(pushed, plain)
    with capture(unet, HP, sae=sae, features=[3]) as rec:
        run_pushed = layer_after(unet, pushed[:1], empty)
        run_plain = layer_after(unet, plain[:1], empty)
    assert run_pushed > run_plain  # the steered prior carries more of feature 3
    icon = feature_icon(be, [3], [1], sae=sae, steps=5)
    assert icon.shape == (1, 4, 16, 16) and not torch.allclose(icon, plain[:1])
    raw = steer(be, [5], [1], strength=5.0, steps=5)
    assert not torch.allclose(raw, plain[:1])
    assert hook_count(unet) == 0 and len(rec.codes) == 2


def layer_after(unet, latents, ctx):
    with torch.no_grad(), capture(unet, HP, sae=random_sae(), features=[3]) as rec:
        unet(latents, 0, encoder_hidden_states=ctx)
    return float(rec.codes[0].mean())


# ---------------------------------------------------------------------------------------------- pipeline
def test_plan_rows():
    acts = np.zeros((2, 3, 4), np.float32)
    acts[:, 0, 1] = [2.0, 4.0]
    analysis = analyze_captured(acts, [900, 500, 100], hookpoint=HP, top_n=1)
    assert plan_rows([1], [7, 8], "peaks", analysis) == [Row(1, 0, 7), Row(1, 0, 8), Row(1, 950, 7), Row(1, 950, 8)]
    assert plan_rows([2, 3], [7], [0, 500, 0]) == [Row(2, 0, 7), Row(2, 500, 7), Row(3, 0, 7), Row(3, 500, 7)]
    with pytest.raises(LVOError, match="needs an activity analysis"):
        plan_rows([1], [7], "peaks")
    with pytest.raises(UnitError, match="listed twice"):
        plan_rows([1, 1], [7], [0])
    with pytest.raises(UnitError, match="no units"):
        plan_rows([], [7], [0])


def test_visualize_end_to_end_and_batching(backend):
    sae = random_sae()
    kw = dict(sae=sae, timesteps=[0, 400], seeds=[1, 2], config=preset("sae", steps=5))
    v = visualize(backend, [3, 8], batch_size=8, **kw)
    assert [(r.unit, r.timestep, r.seed) for r in v.rows] == [(3, 0, 1), (3, 0, 2), (3, 400, 1), (3, 400, 2),
                                                             (8, 0, 1), (8, 0, 2), (8, 400, 1), (8, 400, 2)]
    assert v.images.shape == (8, 32, 32, 3) and v.latents.shape == (8, 4, 16, 16)
    assert v.history["activation"].shape == (5, 8) and len(v.metrics) == 8 and v.complete
    assert all(m["dataset_max"] is None for m in v.metrics)
    split = visualize(backend, [3, 8], batch_size=3, **kw)
    torch.testing.assert_close(split.latents, v.latents, rtol=1e-4, atol=1e-5)
    summary = v.summary()
    assert summary["config"]["steps"] == 5 and len(summary["history"]["activation"]) == 8

    raw = visualize(backend, [5], timesteps=[0], seeds=[1], config=preset("raw", steps=3))
    assert raw.unit_kind == "raw" and raw.metrics[0]["num_units"] == 32
    with pytest.raises(UnitError, match="channel 40 is out of range"):
        visualize(backend, [40], timesteps=[0], seeds=[1])

    calls = []
    stop = visualize(backend, [3, 8], batch_size=4, on_progress=lambda done, total: calls.append((done, total)),
                     should_stop=lambda: len(calls) >= 9, **kw)
    assert stop.interrupted and len(stop.rows) == 8 and stop.history["activation"].shape[0] == 2
    # 5 steps of 4 rows, measuring and decoding them (one unit each), 2 steps of the next batch; 8 × 7 in all
    assert calls[:7] == [(4, 56), (8, 56), (12, 56), (16, 56), (20, 56), (24, 56), (28, 56)]
    assert calls[-1] == (36, 56)


# ---------------------------------------------------------------------------------------------- fast path
def test_bf16_autocast_tracks_the_fp32_path(backend, init):
    """The CUDA fast path's mixed precision, exercised on CPU: bf16 UNet, fp32 master latent."""
    sae = random_sae()
    obj = SAEFeature(sae, [3, 8, 20])
    full = optimize(backend, obj, init, [0, 300, 600], [1, 2, 3], preset("sae", steps=10))
    half = optimize(backend, obj, init, [0, 300, 600], [1, 2, 3], preset("sae", steps=10, precision="bf16"))
    assert half.latents.dtype == torch.float32
    np.testing.assert_allclose(half.history["activation"], full.history["activation"], rtol=0.05, atol=0.02)
    moved = (full.latents - init).abs().mean()
    assert (half.latents - full.latents).abs().mean() < 0.05 * moved  # measured: 3.7 % of the distance moved
    assert (half.history["activation"][-1] > half.history["activation"][0]).all()


def test_sparse_finiteness_checks_change_nothing_when_all_is_finite(backend, init):
    obj = SAEFeature(random_sae(), [3, 8, 20])
    every = optimize(backend, obj, init, [0, 300, 600], [1, 2, 3], preset("sae", steps=12))
    sparse = optimize(backend, obj, init, [0, 300, 600], [1, 2, 3], preset("sae", steps=12, check_every=5))
    assert torch.equal(every.latents, sparse.latents) and sparse.steps_done == 12
    np.testing.assert_array_equal(every.history["loss"], sparse.history["loss"])


def test_nan_between_sparse_checks_rolls_back_to_the_last_check(backend, init):
    sae = random_sae()
    good = SAEFeature(sae, 3)
    calls = []

    class Poisoned(SAEFeature):
        def __call__(self, tokens, hw):
            calls.append(1)
            value = good(tokens, hw)
            return value * float("nan") if len(calls) == 6 else value

    r = optimize(backend, Poisoned(sae, 3), init, [0], [1, 2, 3], preset("sae", steps=20, check_every=4))
    ref = optimize(backend, good, init, [0], [1, 2, 3], preset("sae", steps=4))
    assert r.stopped == "non-finite loss or latents at step 4–7; kept the latents from before it"
    assert r.steps_done == 4 and torch.equal(r.latents, ref.latents) and r.history["loss"].shape == (4, 3)


class OutOfMemoryAbove(DiffusersBackend):
    """Fault injection: any batch larger than ``limit`` rows runs 'out of memory'."""

    limit = 2

    def block_tokens(self, x_t, t, context):
        if x_t.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().block_tokens(x_t, t, context)


def test_out_of_memory_halves_the_batch_and_redoes_the_rows(unet):
    kw = dict(scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())
    sae = random_sae()
    run = dict(sae=sae, timesteps=[0, 400], seeds=[1, 2], config=preset("sae", steps=3))
    small = visualize(DiffusersBackend(unet, HP, **kw), [3, 8], batch_size=2, **run)
    halved = visualize(OutOfMemoryAbove(unet, HP, **kw), [3, 8], batch_size=8, **run)
    assert halved.batch_sizes == [2, 2, 2, 2] and halved.complete
    torch.testing.assert_close(halved.latents, small.latents)
    assert [m["activation"] for m in halved.metrics] == pytest.approx([m["activation"] for m in small.metrics])
    hopeless = OutOfMemoryAbove(unet, HP, **kw)
    hopeless.limit = 0
    with pytest.raises(LVOError, match="does not fit in device memory even alone"):
        visualize(hopeless, [3], timesteps=[0], seeds=[1], config=preset("sae", steps=2))
    assert visualize(DiffusersBackend(unet, HP, **kw), [3], batch_size="auto", sae=sae, timesteps=[0],
                     seeds=[1, 2], config=preset("sae", steps=2)).batch_sizes == [2]


def test_benchmark_figures_follow_a_known_cost(tmp_path, monkeypatch):
    """`python -m lvo_core.bench` on a fake clock that charges every run of the hooked block 5 ms plus 10 ms per
    batch row: whatever the bench's warm-ups, repeats and divisions do, its figures must be exactly that cost —
    15 ms per naive step, 10·b + 5 ms per optimized step of b units, and the speed-up their per-unit ratio."""
    import lvo_core.bench as bench

    clock = [0.0]
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    block = bench.build

    def charged(device):
        world = block(device)
        module = world["unet"].get_submodule(bench.HOOKPOINT)
        module.register_forward_pre_hook(lambda m, args: clock.__setitem__(0, clock[0] + 0.005 + 0.01 * len(args[0])))
        return world

    monkeypatch.setattr(bench, "build", charged)
    monkeypatch.setattr(bench, "cpu_has_bf16", lambda: False)  # the same rows on every CPU
    monkeypatch.setattr(bench, "memory_rows", list)  # meta-device FLUX/SDXL builds: tests/test_flux.py's business
    out = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--batches", "1,2", "--steps", "2", "--warmup", "1", "--no-full",
                       "--no-bank", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    naive, *fast = report["rows"]
    assert naive["path"] == "naive" and naive["ms_per_step"] == naive["ms_per_unit_step"] == 15.0
    fp32 = {r["batch"]: r for r in fast}
    assert [r["precision"] for r in fast] == ["fp32", "fp32"]
    assert fp32[1]["ms_per_step"] == 15.0 and fp32[1]["speedup_vs_naive"] == 1.0
    assert fp32[2]["ms_per_step"] == 25.0 and fp32[2]["ms_per_unit_step"] == 12.5
    assert fp32[2]["speedup_vs_naive"] == 1.2 and report["torch"] == torch.__version__


def test_diffusion_prior_term_by_hand(unet, backend, init):
    """With everything else off, one step descends exactly weight × (ε̂(z_t', t') − ε) at a seeded random t'."""
    from lvo_core.lvo.optimize import PRIOR_NOISE_OFFSET
    from lvo_core.model.noise import add_noise, alphas_from_scheduler, step_noise

    config = preset("raw", steps=1, augment=ROBUSTNESS_LEVELS["L0"], precondition=False, tv_weight=0.0,
                    range_weight=0.0, blur_sigma=0.0, prior_weight=0.6, seed=4)
    result = optimize(backend, Channel(3) * 0.0, init, [0], [1, 2, 3], config)
    gen = torch.Generator().manual_seed(4)
    Augment(0, 0.0, 1.0).draw(gen)  # the loop draws its (identity) augmentation first
    t = torch.randint(20, 981, (3,), generator=gen)
    eps = step_noise([1, 2, 3], PRIOR_NOISE_OFFSET, (4, 16, 16))
    alphas = alphas_from_scheduler(sd15_scheduler()).float()
    with torch.no_grad():
        eps_hat = unet(add_noise(init, t, alphas, eps), t, encoder_hidden_states=CharPromptEncoder()([""])
                       .expand(3, -1, -1)).sample
    z = init.clone().requires_grad_(True)
    opt = torch.optim.AdamW([z], lr=0.05, weight_decay=0.01)
    z.grad = 0.6 * (eps_hat - eps)
    opt.step()
    torch.testing.assert_close(result.latents, z.detach(), rtol=1e-5, atol=1e-6)
    off = optimize(backend, Channel(3) * 0.0, init, [0], [1, 2, 3], preset("raw", steps=1, prior_weight=0.0))
    assert not torch.allclose(off.latents, result.latents)
    with pytest.raises(ConfigError, match="prior_t_min"):
        LVOConfig(prior_t_min=500, prior_t_max=100)
