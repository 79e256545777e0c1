"""Time-step activity analysis and dataset examples, against hand computations and an independent capture loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_sae
from safetensors.numpy import save_file

from lvo_core.analysis.activity import (
    ActivityAccumulator,
    ActivityAnalysis,
    analyze_activity,
    analyze_captured,
    find_peaks,
    sae_fingerprint,
    unit_activations,
)
from lvo_core.analysis.examples import (
    colorize,
    generate_with_maps,
    overlay,
    rank_examples,
)
from lvo_core.errors import ActivityError, SAEFormatError, UnitError
from lvo_core.model.hooks import capture, hook_count
from lvo_core.model.backend import DiffusersBackend, call_unet
from lvo_core.model.sampling import sample_with
from lvo_core.model.tiny import sd15_scheduler

HP = "up_blocks.1.attentions.1"
PROMPTS = ["red circle", "blue square", "green ring"]


# ---------------------------------------------------------------------------------------------- peaks
def test_find_peaks_local_maxima_distance_and_top():
    y = np.zeros(1001)
    y[200], y[250], y[600], y[900], y[1000] = 5, 7, 3, 4, 6  # 200 loses to the higher 250 (too close)
    assert find_peaks(y) == [250, 1000, 900]
    assert find_peaks(y, top=5) == [250, 1000, 900, 600]
    assert find_peaks(y, min_distance=10, top=5) == [250, 1000, 200, 900, 600]


def test_find_peaks_plateaus_edges_and_zeros():
    assert find_peaks(np.array([0, 1, 3, 3, 3, 1, 0.0]), min_distance=1) == [3]  # middle of a flat top
    assert find_peaks(np.array([5, 4, 3, 2.0]), min_distance=1) == [0]  # an end counts
    assert find_peaks(np.zeros(50)) == []  # zero-valued maxima are not peaks
    assert find_peaks(np.array([1, 2, 1, 2, 1.0]), min_distance=2) == [1, 3]  # tie: both kept, earlier first
    assert find_peaks(np.array([1, 2, 1, 2, 1.0]), min_distance=3) == [1]


# ---------------------------------------------------------------------------------------------- accumulator
@pytest.fixture
def synthetic():
    acc = ActivityAccumulator(timesteps=[900, 500, 100], units=[0, 1, 2, 3], top_n=2, keep_examples=2)
    acc.update(0, np.array([[4., 3, 0, 1], [0, 5, 6, 1]]), [0, 1])
    acc.update(0, np.array([[1., 9, 2, 0]]), [2])
    acc.update(1, np.array([[0., 0, 1, 2], [3, 0, 0, 4], [0, 1, 0, 0]]), [0, 1, 2])
    acc.update(2, np.array([[1., 1, 1, 0], [0, 2, 1, 1], [1, 1, 0, 5]]), [0, 1, 2])
    return acc.result(unit_kind="raw", hookpoint=HP)


def test_accumulator_statistics_by_hand(synthetic):
    a = synthetic
    assert a.num_generations == 3
    # step 1, generation 2 has one positive unit: zeros do not enter the top-2
    # step 0: top-2 per generation: {0,1}, {2,1}, {1,2} → unit 1 in 3/3, unit 2 in 2/3, unit 0 in 1/3
    np.testing.assert_allclose(a.frequency[0], [1 / 3, 1, 2 / 3, 0])
    np.testing.assert_allclose(a.mean[0], [5 / 3, 17 / 3, 8 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(a.max[0], [4, 9, 6, 1])
    np.testing.assert_allclose(a.frequency[1], [1 / 3, 1 / 3, 1 / 3, 2 / 3], rtol=1e-6)
    # examples at step 0 for unit 1: generations 2 (9), 1 (5); unit 0: 0 (4), 2 (1)
    assert a.examples(1, t=900) == [(2, 900, 9.0), (1, 900, 5.0)]
    assert a.examples(0, t=880) == [(0, 900, 4.0), (2, 900, 1.0)]
    # over all timesteps, each generation once at its strongest timestep
    assert a.examples(3) == [(2, 100, 5.0), (1, 500, 4.0), (0, 500, 2.0)]


def test_profile_interpolation_active_timesteps_peaks_and_max(synthetic):
    a = synthetic
    p = a.profile(1)  # frequency 1 at t=900, 1/3 at 500, 2/3 at 100 (timesteps kept in sampling order)
    assert p.shape == (1001,)
    np.testing.assert_allclose([p[900], p[700], p[500], p[300], p[100], p[1000], p[0]],
                               [1, 2 / 3, 1 / 3, 0.5, 2 / 3, 1, 2 / 3], rtol=1e-6)
    assert a.peaks(1) == [950, 50]  # flat tops at both ends, their middles; 100 apart or more
    act = a.active_timesteps(3)  # zero at 900, 2/3 at 500, 1/3 at 100
    assert act.min() == 0 and act.max() == 899
    assert a.max_at(1, 900) == 9.0 and a.max_at(1, 700) == pytest.approx((9 + 1) / 2)
    with pytest.raises(UnitError, match="channel 7 is not in this activity analysis"):
        a.profile(7)


def test_accumulator_rejects_nan_and_wrong_shape():
    acc = ActivityAccumulator([10], [0, 1], top_n=1)
    with pytest.raises(ActivityError, match="non-finite"):
        acc.update(0, np.array([[np.nan, 1.0]]), [0])
    with pytest.raises(ValueError, match=r"shape \[B, 2\]"):
        acc.update(0, np.ones((1, 3)), [0])
    with pytest.raises(ActivityError, match="no activations were recorded"):
        acc.result(unit_kind="raw", hookpoint=HP)


def test_save_load_round_trip(tmp_path, synthetic):
    synthetic.meta = {"steps": 3}
    back = ActivityAnalysis.load(synthetic.save(tmp_path / "a" / "act.safetensors"))
    for name in ("timesteps", "frequency", "mean", "max", "units", "example_ids", "example_values"):
        np.testing.assert_array_equal(getattr(back, name), getattr(synthetic, name))
    assert (back.hookpoint, back.unit_kind, back.top_n, back.meta) == (HP, "raw", 2, {"steps": 3})
    assert back.peaks(1) == synthetic.peaks(1)
    save_file({"x": np.zeros(2, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ActivityError, match="not an activity analysis"):
        ActivityAnalysis.load(tmp_path / "other.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "a" / "act.safetensors").read_bytes()[:40])
    with pytest.raises(SAEFormatError, match="truncated"):
        ActivityAnalysis.load(tmp_path / "cut.safetensors")


def test_check_matches(synthetic):
    sae = random_sae()
    synthetic.check_matches("output_blocks.4.1", None)  # the LDM spelling of the same block is fine
    with pytest.raises(ActivityError, match="made at hookpoint 'up_blocks.1.attentions.1', not 'mid_block"):
        synthetic.check_matches("mid_block.attentions.0", None)
    with pytest.raises(ActivityError, match="for raw units but SAE features were requested"):
        synthetic.check_matches(HP, sae)
    synthetic.unit_kind, synthetic.sae_id = "sae", sae_fingerprint(sae)
    synthetic.check_matches(HP, sae)
    with pytest.raises(ActivityError, match="different SAE"):
        synthetic.check_matches(HP, random_sae(seed=1))


# ---------------------------------------------------------------------------------------------- on a model
def on(unet, encode_prompt, hookpoint=HP):
    return DiffusersBackend(unet, hookpoint, scheduler=sd15_scheduler(), encode_prompt=encode_prompt)


@pytest.fixture(scope="module")
def analysis(unet, encode_prompt, sae):
    return analyze_activity(on(unet, encode_prompt), PROMPTS, encode_prompt, sae=sae, seeds=[5, 6, 7], steps=4,
                            guidance=3.0, top_n=10, keep_examples=3, batch_size=2)


def test_analysis_matches_an_independent_capture_loop(unet, encode_prompt, sae, analysis):
    """Recompute the statistics with a plain loop over one prompt at a time and compare numbers."""
    sched = sd15_scheduler()
    per_gen = []
    for prompt, seed in zip(PROMPTS, [5, 6, 7]):
        steps = []
        with capture(unet, HP) as rec:  # whole CFG batch; take the conditional half by hand
            sample_with(lambda x, t, c: call_unet(unet, x, t, c), sched, encode_prompt([prompt]),
                        uncond=encode_prompt([""]), guidance=3.0, steps=4, seeds=[seed], latent_shape=(4, 16, 16),
                        on_step=lambda i, t, x: steps.append(sae.dense_acts(rec.tokens[-1][1:]).mean(1)[0]))
        per_gen.append(torch.stack(steps))
    acts = torch.stack(per_gen).numpy()  # [G, T, U]
    assert hook_count(unet) == 0
    from_captured = analyze_captured(acts, analysis.timesteps, hookpoint=HP, sae=sae, top_n=10, keep_examples=3)
    np.testing.assert_allclose(from_captured.frequency, analysis.frequency, rtol=1e-6)
    with pytest.raises(ActivityError, match="expected activations"):
        analyze_captured(acts[:, :2], analysis.timesteps, hookpoint=HP)
    np.testing.assert_allclose(analysis.mean, acts.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(analysis.max, acts.max(0), rtol=1e-5, atol=1e-6)
    ranks = np.argsort(-acts, axis=2)[..., :10]
    freq = np.zeros(acts.shape[1:])
    for g in range(3):
        for t in range(4):
            freq[t, ranks[g, t]] += 1 / 3
    np.testing.assert_allclose(analysis.frequency, freq, rtol=1e-6)
    assert list(analysis.timesteps) == [751, 501, 251, 1]
    best = int(np.argmax(acts[:, 0, 42]))
    assert analysis.examples(42, t=751)[0][:2] == (best, 751)
    assert analysis.unit_kind == "sae" and analysis.sae_id == sae_fingerprint(sae) and len(analysis.units) == 128


def test_analysis_is_deterministic(unet, encode_prompt, sae, analysis):
    again = analyze_activity(on(unet, encode_prompt), PROMPTS, encode_prompt, sae=sae, seeds=[5, 6, 7], steps=4,
                             guidance=3.0, top_n=10, keep_examples=3, batch_size=3)
    np.testing.assert_array_equal(again.frequency, analysis.frequency)
    np.testing.assert_allclose(again.max, analysis.max, rtol=1e-6)  # batch size differs: same seeds per row


def test_raw_channel_analysis_without_cfg(unet, encode_prompt):
    a = analyze_activity(on(unet, encode_prompt, "output_blocks.4.1"), PROMPTS[:2], encode_prompt, steps=3,
                         guidance=1.0, top_n=5)
    assert a.unit_kind == "raw" and len(a.units) == 32 and a.hookpoint == HP
    per_step = a.frequency.sum(1)  # each generation puts at most top_n (positive) units in the top
    assert (per_step <= 5 + 1e-6).all() and per_step.max() == pytest.approx(5.0)
    with pytest.raises(ActivityError, match="no prompts"):
        analyze_activity(on(unet, encode_prompt), [], encode_prompt)


# ---------------------------------------------------------------------------------------------- examples
def test_generated_maps_agree_with_the_analysis(unet, encode_prompt, sae, analysis):
    unit = int(np.argmax(analysis.max[1]))
    latents, maps, t = generate_with_maps(on(unet, encode_prompt), PROMPTS, encode_prompt, unit, 480, sae=sae,
                                          seeds=[5, 6, 7], steps=4, guidance=3.0)
    assert t == 501 and maps.shape == (3, 16, 16) and latents.shape == (3, 4, 16, 16)
    ranked = rank_examples(maps, k=2, prompts=PROMPTS, timestep=t)
    gen, ts, value = analysis.examples(unit, t=t)[0]
    assert (ranked[0].index, ranked[0].timestep) == (gen, ts)
    assert ranked[0].score == pytest.approx(value, rel=1e-5)
    assert ranked[0].prompt == PROMPTS[gen] and ranked[0].score >= ranked[1].score


def test_rank_examples_by_mean_and_max():
    maps = np.zeros((3, 2, 2), np.float32)
    maps[0] = 1.0  # mean 1, max 1
    maps[1, 0, 0] = 3.0  # mean 0.75, max 3
    maps[2, 0, 0] = 1.0  # mean 0.25
    assert [e.index for e in rank_examples(maps, k=3)] == [0, 1, 2]
    assert [e.index for e in rank_examples(maps, k=2, by="max")] == [1, 0]
    with pytest.raises(ActivityError):
        rank_examples(np.zeros((0, 2, 2)))


def test_overlay_and_colormap():
    img = np.full((32, 32, 3), 0.5, np.float32)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 2.0
    out = overlay(img, heat, alpha=0.5)
    assert out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out[31, 31], 0.5)  # no activation, image unchanged
    np.testing.assert_allclose(out[0, 0], 0.5 * 0.5 + 0.5 * colorize(np.array([1.0]))[0], atol=1e-6)
    np.testing.assert_allclose(colorize(np.array([0.0, 1.0])), [[0, 0, 4 / 255], [252 / 255, 1, 164 / 255]],
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        overlay(np.zeros((4, 4)), heat)


def test_unit_activations_raw_and_sae():
    tokens = torch.randn(2, 10, 32)
    torch.testing.assert_close(unit_activations(tokens, None), tokens.mean(1))
    torch.testing.assert_close(unit_activations(tokens, None, [3]), tokens[..., [3]].mean(1))
    sae = random_sae()
    torch.testing.assert_close(unit_activations(tokens, sae, [1, 2]), sae.dense_acts(tokens)[..., [1, 2]].mean(1))
