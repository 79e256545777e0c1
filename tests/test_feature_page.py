"""The feature page of one unit, from hand-made activity, bank and run results whose numbers are known, and from the
toy world's real ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvo_core.analysis.activity import analyze_captured
from lvo_core.analysis.bank import BankError, BankSettings, SampleBank
from lvo_core.errors import ActivityError, LVOError, UnitError
from lvo_core.model.tiny import random_sae
from lvo_core.runs.feature_page import feature_card, feature_sheet, histogram_chart

HP = "up_blocks.1.attentions.1"
SAE = random_sae(d_in=32, d_sae=6)


def analysis():
    """4 generations × timesteps 900/500/100 × 6 features, every feature at 0.1 but feature 2: 0 except on
    generation 0 at 900 (0.5), generation 1 at 500 (3.0) and 100 (1.5), generation 3 at 100 (2.0)."""
    acts = np.full((4, 3, 6), 0.1, np.float32)
    acts[:, :, 2] = 0.0
    acts[0, 0, 2], acts[1, 1, 2], acts[1, 2, 2], acts[3, 2, 2] = 0.5, 3.0, 1.5, 2.0
    return analyze_captured(acts, [900, 500, 100], hookpoint=HP, sae=SAE, top_n=1, keep_examples=4,
                            prompts=["a cat", "a rose", "a sea", "a hill"], seeds=[10, 11, 12, 13])


def bank():
    scores = torch.zeros(10, 6)
    scores[:, 2] = torch.tensor([0.0, 0.25, 0.875, 0.0, 0.375, 1.0, 0.125, 0.0, 0.625, 0.25])  # exact in fp16
    b = SampleBank(torch.zeros(10, 4, 2, 2), BankSettings(size=10), HP, "model")
    b.scores[b.key(200, SAE)] = scores.half()
    return b


def faithful_result():
    rows = [{"unit": u, "timestep": 200, "seed": s, "activation": a, "prior_activation": a / 2, "ratio": a / 3.0,
             "dataset_max": 3.0, "selectivity": a - 0.1, "rank": 1, "num_units": 6, "pool_index": p}
            for u, s, a, p in [(2, 1, 2.4, 5), (5, 1, 0.3, 0), (2, 2, 1.8, 2)]]
    return {"recipe": {"name": "faithful"}, "metrics": rows}


def test_card_numbers_from_every_source():
    card = feature_card(2, hookpoint="output_blocks.4.1", sae=SAE, analysis=analysis(), bank=bank(), bank_t=200,
                        results=[faithful_result(), {"prior": "steering init", "metrics": [{"unit": 5}]}], top=3,
                        bins=5)
    assert card["label"] == "feature 2" and card["kind"] == "feature" and json.loads(json.dumps(card)) == card
    act = card["activity"]
    assert [(e["generation"], e["timestep"], e["value"], e["prompt"], e["seed"]) for e in act["examples"]] == [
        (1, 500, 3.0, "a rose", 11), (3, 100, 2.0, "a hill", 13), (0, 900, 0.5, "a cat", 10)]
    assert act["dataset_max"] == 3.0 and act["dataset_max_t"] == 500
    # the top-1 unit: in 1 of 4 generations at 900 and at 500, in 2 at 100; flat beyond the sampled timesteps
    assert (act["profile"][90], act["profile"][50], act["profile"][10], act["profile"][0]) == (0.25, 0.25, 0.5, 0.5)
    assert act["profile"][70] == 0.25 and act["profile"][30] == pytest.approx(0.375) and len(act["profile"]) == 101
    assert act["peaks"] == [50] and act["active_range"] == [0, 1000] and act["max"][50] == 3.0
    assert act["max"][10] == 2.0 and act["max"][90] == 0.5
    hist = card["bank"]["histogram"]
    assert sum(hist["counts"]) == card["bank"]["size"] == 10
    assert hist["counts"] == [4, 3, 0, 1, 2] and hist["edges"][0] == 0.0 and hist["edges"][-1] == pytest.approx(1.0)
    assert card["bank"]["density"] == 0.7 and card["bank"]["mean"] == 0.35
    top = card["bank"]["top"]
    assert [e["index"] for e in top] == [5, 2, 8] and [e["seed"] for e in top] == [(1 << 20) + i for i in (5, 2, 8)]
    assert top[0]["lift"] == pytest.approx(1.0 / 0.35, rel=1e-4)
    assert [e["score"] for e in top] == sorted((e["score"] for e in top), reverse=True)
    (run,) = card["visualizations"]
    assert run["name"] == "faithful" and [r["row"] for r in run["rows"]] == [0, 2]
    assert run["median_ratio"] == pytest.approx(0.7) and run["rows"][0]["pool_index"] == 5
    assert card["notes"] == ["steering init has no visualization of unit 2 (it shows [5])"]
    twice = feature_card(2, hookpoint=HP, sae=SAE, results=[faithful_result(), faithful_result()])
    assert [r["name"] for r in twice["visualizations"]] == ["faithful", "faithful 2"]


def test_card_refuses_what_does_not_belong_and_says_what_is_missing():
    assert "nothing to show yet" in feature_card(1, hookpoint=HP, sae=SAE)["notes"][0]
    with pytest.raises(UnitError, match="6 features"):
        feature_card(6, hookpoint=HP, sae=SAE)
    with pytest.raises(ActivityError, match="hookpoint"):
        feature_card(2, hookpoint="up_blocks.1.attentions.2", sae=SAE, analysis=analysis())
    with pytest.raises(ActivityError, match="different SAE"):
        feature_card(2, hookpoint=HP, sae=random_sae(d_in=32, d_sae=6, seed=3), analysis=analysis())
    with pytest.raises(BankError, match="no sae scores of .* at t = 500"):
        feature_card(2, hookpoint=HP, sae=SAE, bank=bank(), bank_t=500)
    with pytest.raises(BankError, match="no sae scores of down_blocks.1.attentions.0"):  # other blocks: kept apart
        feature_card(2, hookpoint="down_blocks.1.attentions.0", sae=SAE, bank=bank())
    with pytest.raises(LVOError, match="no 'metrics' list"):
        feature_card(2, hookpoint=HP, sae=SAE, results=[{"images": []}])


def test_sheet_draws_every_given_section():
    card = feature_card(2, hookpoint=HP, sae=SAE, analysis=analysis(), bank=bank(), results=[faithful_result()],
                        top=3)
    tiles = [np.full((32, 32, 3), v, np.float32) for v in (0.2, 0.5, 0.8)]
    bare = feature_sheet(card, analysis())
    full = feature_sheet(card, analysis(), {"examples": tiles, "bank": tiles, "faithful": tiles[:2]}, cell=64)
    assert full.width >= bare.width and full.height > bare.height + 3 * 64
    chart = np.asarray(histogram_chart(card["bank"], "feature 2"))
    assert (chart != 255).any(axis=2).mean() > 0.05  # bars drawn, not a blank panel


from lvo_core.toy import ANALYSIS, SAE_PATH, WEIGHTS  # noqa: E402


@pytest.mark.skipif(not (WEIGHTS / "unet" / "config.json").is_file(), reason="toy weights not trained")
def test_toy_world_card():
    """On the trained toy world, with its shipped activity analysis and a small fresh bank: a consistent card."""
    from lvo_core.analysis.activity import ActivityAnalysis
    from lvo_core.analysis.bank import build_bank
    from lvo_core.model.backend import DiffusersBackend
    from lvo_core.sae import load_sae
    from lvo_core.toy import load_toy_model

    model, sae, act = load_toy_model(), load_sae(SAE_PATH), ActivityAnalysis.load(ANALYSIS)
    backend = DiffusersBackend(model.denoiser, act.hookpoint, scheduler=model.scheduler, decoder=model.decoder,
                               encode_prompt=model.require_prompts())
    b = build_bank(backend, BankSettings(size=12, steps=4, draws=1, batch_size=12), sae=sae, timesteps=[200])
    card = feature_card(319, hookpoint="output_blocks.4.1", sae=sae, analysis=act, bank=b, top=5)
    values = [e["value"] for e in card["activity"]["examples"]]
    assert len(values) == 5 and values == sorted(values, reverse=True)
    assert card["activity"]["dataset_max"] == pytest.approx(float(act.max[:, 319].max()), rel=1e-5)
    assert values[0] == pytest.approx(card["activity"]["dataset_max"], rel=1e-5)  # the best example is the max
    lo, hi = card["activity"]["active_range"]
    assert card["activity"]["peaks"] and all(lo <= p <= hi for p in card["activity"]["peaks"])
    assert sum(card["bank"]["histogram"]["counts"]) == 12 and 0 < card["bank"]["density"] <= 1
    scores = [e["score"] for e in card["bank"]["top"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == card["bank"]["max"]
