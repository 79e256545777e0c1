"""The sample bank and the faithful recipe's wiring, by hand on a tiny model: sampling, scoring, selection,
persistence and resume, fingerprints, and the fallbacks that keep every unit's picture coming."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import pytest
import torch

from lvo_core.analysis.activity import unit_activations
from lvo_core.analysis.bank import (
    SCORE_STEP_OFFSET,
    BankError,
    BankSettings,
    SampleBank,
    build_bank,
    model_fingerprint,
)
from lvo_core.analysis.selection import (
    SELECT_T,
    BankPrior,
    SelectionWarning,
    selection_timesteps,
)
from lvo_core.errors import LVOError
from lvo_core.lvo.recipes import DEFAULT_RECIPE, RECIPES, recipe, recipe_start
from lvo_core.model.backend import DiffusersBackend, call_unet
from lvo_core.model.noise import add_noise, alphas_from_scheduler, step_noise
from lvo_core.model.sampling import ddim_from_alphas, sample_with
from lvo_core.model.tiny import (
    CharPromptEncoder,
    random_sae,
    sd15_scheduler,
    tiny_unet,
    tiny_vae,
)
from lvo_core.toy.ablate import (
    faithful_variants,
    run_variant,
    standard_variants,
    wilson,
)

HP = "up_blocks.1.attentions.1"
SMALL = BankSettings(size=6, steps=3, draws=2, batch_size=4)


@pytest.fixture(scope="module")
def backend(unet):
    return DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())


@pytest.fixture(scope="module")
def bank(backend, sae):
    return build_bank(backend, SMALL, sae=sae, timesteps=[200])


def test_pool_is_plain_unconditional_ddim_sampling(backend, bank):
    assert bank.size == 6 and bank.seeds == [SMALL.seed + i for i in range(6)]
    # the same generation with diffusers' own scheduler and the plain sampling loop, empty prompt, no CFG; at ≤ 4
    # steps with trailing spacing, so the first step starts from pure noise at t = 999 (as few-step models sample)
    from diffusers import DDIMScheduler

    from lvo_core.model.tiny import SD15_BETAS

    few_step = DDIMScheduler(**SD15_BETAS, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    unet = backend.denoiser
    expected = sample_with(lambda x, t, c: call_unet(unet, x, t, c), few_step, backend.empty_context(1), steps=3,
                           seeds=bank.seeds, latent_shape=backend.latent_shape)
    torch.testing.assert_close(bank.latents, expected, rtol=1e-4, atol=1e-4)
    alphas = alphas_from_scheduler(sd15_scheduler())
    torch.testing.assert_close(alphas_from_scheduler(ddim_from_alphas(alphas)), alphas, rtol=0, atol=1e-6)


def test_scores_are_the_mean_dense_activation_over_reserved_draws(backend, sae, bank):
    alphas = backend.schedule.alphas.float()
    t = torch.full((6,), 200)
    total = 0
    for d in range(2):
        x = add_noise(bank.latents, t, alphas, step_noise(range(6), SCORE_STEP_OFFSET + d, (4, 16, 16)))
        with torch.no_grad():
            total = total + unit_activations(backend.block_tokens(x, t, backend.empty_context(6))[0], sae)
    torch.testing.assert_close(bank.table(200, sae).float(), (total / 2).half().float(), rtol=0, atol=0)


def test_selection_picks_the_argmax_per_seed_slot():
    latents = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 4, 2, 2).clone()
    bank = SampleBank(latents, BankSettings(size=5), HP, "model")
    bank.scores[bank.key(200)] = torch.tensor([[0.1, 5.0], [0.9, 4.0], [0.5, 3.0], [0.9, 2.0], [0.2, 1.0]]).half()
    assert bank.top(0, 200, 3) == [1, 3, 2]  # ties by index
    assert bank.top(1, 200, 2) == [0, 1] and bank.top(0, 200, 1, pool=1) == [0]  # pool = a prefix of the bank
    with pytest.raises(BankError, match="larger bank"):
        bank.top(0, 200, 6)
    with pytest.raises(BankError, match="no raw scores of .* at t = 300"):
        bank.score(0, 300)


def test_bank_prior_ranks_by_seed_slot_and_reuses_the_scores(backend, sae, bank, monkeypatch):
    prior = BankPrior(bank, backend, sae, {3: 200, 7: 200}, seeds=[11, 12])
    calls = []
    monkeypatch.setattr("lvo_core.analysis.bank.score_latents", lambda *a, **k: calls.append(a) or None)
    got = prior([3, 3, 7], [11, 12, 12])
    assert not calls  # already scored at t = 200: the bank is reused, not rescored
    order3, order7 = bank.top(3, 200, 2, sae), bank.top(7, 200, 2, sae)
    torch.testing.assert_close(got, bank.latents[[order3[0], order3[1], order7[1]]])
    assert prior.chosen[(3, 11)] == order3[0] and prior.chosen[(7, 12)] == order7[1]
    unranked = BankPrior(bank, backend, sae, {3: 200}, seeds=[11, 12], ranked=False)
    torch.testing.assert_close(unranked([3, 3], [11, 12]), bank.latents[[0, 1]])
    with pytest.raises(LVOError, match="seed 99"):
        prior([3], [99])


def test_saved_bank_resumes_and_is_not_rebuilt(backend, sae, tmp_path, monkeypatch):
    stop_after = iter([False, True])
    with pytest.raises(KeyboardInterrupt):
        build_bank(backend, SMALL, sae=sae, out=tmp_path / "bank", should_stop=lambda: next(stop_after))
    assert sorted(p.name for p in (tmp_path / "bank").glob("latents-*")) == ["latents-00000.safetensors"]
    with pytest.raises(BankError, match="unfinished .4 of 6"):
        SampleBank.load(tmp_path / "bank")
    done = build_bank(backend, SMALL, sae=sae, out=tmp_path / "bank", timesteps=[200])  # resumes: 2 more samples
    whole = build_bank(backend, SMALL, sae=sae, timesteps=[200])
    torch.testing.assert_close(done.latents, whole.latents)
    torch.testing.assert_close(done.table(200, sae), whole.table(200, sae))
    index = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert [(e["hookpoint"], e["kind"], e["timestep"]) for e in index["scores"]] == [(HP, "sae", 200)]
    assert index["size"] == 6
    monkeypatch.setattr("lvo_core.analysis.bank.sample_with", lambda *a, **k: pytest.fail("a finished bank was resampled"))
    monkeypatch.setattr("lvo_core.analysis.bank.score_latents", lambda *a, **k: pytest.fail("saved scores were recomputed"))
    again = build_bank(backend, SMALL, sae=sae, out=tmp_path / "bank", timesteps=[200])
    torch.testing.assert_close(again.table(200, sae), whole.table(200, sae))
    with pytest.raises(BankError, match="other settings .steps 3, this run asks 4.; give --steps 3"):
        build_bank(backend, BankSettings(size=6, steps=4, draws=2), out=tmp_path / "bank")


def test_fingerprints_refuse_another_model_and_keep_blocks_and_saes_apart(backend, sae, bank):
    bank.check_matches(backend, sae)
    other = DiffusersBackend(tiny_unet(seed=1), HP, scheduler=sd15_scheduler(), encode_prompt=CharPromptEncoder())
    assert model_fingerprint(other) != model_fingerprint(backend)
    with pytest.raises(BankError, match="different model"):
        bank.check_matches(other, sae)
    with pytest.raises(BankError, match="different model"):
        bank.ensure_scores(other, sae, [200])
    stranger = random_sae(seed=3)
    bank.check_matches(backend, stranger)  # another SAE's scores are its own, never this one's
    with pytest.raises(BankError, match="no sae scores"):
        bank.table(200, stranger)
    elsewhere = DiffusersBackend(backend.denoiser, "up_blocks.1.attentions.0", scheduler=sd15_scheduler(),
                                 encode_prompt=CharPromptEncoder())
    bank.check_matches(elsewhere, sae)
    with pytest.raises(BankError, match="no sae scores of up_blocks.1.attentions.0"):
        bank.table(200, sae)
    small = DiffusersBackend(backend.denoiser, HP, scheduler=sd15_scheduler(), latent_shape=(4, 8, 8),
                             encode_prompt=CharPromptEncoder())
    with pytest.raises(BankError, match="4×16×16 latents, this run makes 4×8×8"):
        bank.check_matches(small, sae)
    bank.check_matches(small, sae, any_size=True)  # feature search reads a bank beside images of any size
    bank.check_matches(backend, sae)
    assert bank.key(200, sae)[0] == HP


def test_selection_timesteps_fall_back_with_a_warning_never_an_error():
    assert selection_timesteps([1, 2])[0] == {1: SELECT_T, 2: SELECT_T}
    assert selection_timesteps([1, 2], 0)[0] == {1: 0, 2: 0}
    assert selection_timesteps([1, 2], {1: 30, 2: 40})[0] == {1: 30, 2: 40}
    with pytest.warns(SelectionWarning, match="no activity analysis"):
        chosen, notes = selection_timesteps([5], "peak", None, fallback=321)
    assert chosen == {5: 321} and "t = 321" in notes[5]
    with pytest.raises(LVOError, match="'peak' or an integer"):
        selection_timesteps([5], "purest")


def test_faithful_recipe_end_to_end_on_the_tiny_model(backend, sae, bank):
    faithful = recipe(DEFAULT_RECIPE)
    assert DEFAULT_RECIPE == "faithful" and faithful.prior == "bank" and faithful.timesteps == "select"
    assert faithful.config.steps == 30 and set(RECIPES) == {"paper", "best", "faithful"}
    assert recipe("paper").prior == "steer" and recipe("paper").config.steps == 100  # the reference is unchanged
    quick = faithful_variants(faithful)[1]  # − polish: the selected image as it is
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row, vis, images = run_variant(backend, quick, [3, 7], sae=sae, analysis=None, seeds=[1, 2],
                                       steer_prior=None, bank=bank)
    assert [(r.unit, r.timestep, r.seed) for r in vis.rows] == [(3, 200, 1), (3, 200, 2), (7, 200, 1), (7, 200, 2)]
    order = bank.top(3, 200, 2, sae)
    torch.testing.assert_close(vis.latents[:2], bank.latents[order])
    assert [m["pool_index"] for m in row.per_row[:2]] == order and images.shape[0] == 4
    short = recipe("faithful", config=replace(faithful.config, steps=3))
    polished, vis2, _ = run_variant(backend, short, [3], sae=sae, analysis=None, seeds=[1], steer_prior=None,
                                    bank=bank)
    assert polished.per_row[0]["activation"] != row.per_row[0]["activation"]  # the polish moved it
    torch.testing.assert_close(vis2.init_latents[0], bank.latents[order[0]])
    with pytest.raises(LVOError, match="sample bank"):
        recipe_start(backend, faithful, [3], sae=sae, analysis=None, seeds=[1])


def test_recipe_fields_are_validated_and_variants_change_one_thing():
    with pytest.raises(LVOError, match="only a bank prior"):
        recipe("best", polish=False)
    with pytest.raises(LVOError, match="needs the bank prior"):
        recipe("best", timesteps="select")
    base = recipe("faithful")
    for variant in faithful_variants(base):
        changed = {k for k in base.__dict__ if getattr(base, k) != getattr(variant, k)} - {"name", "note"}
        assert len(changed) == 1, (variant.name, changed)
    names = [v.name for v in standard_variants()]
    assert names[:3] == ["paper", "best", "faithful"] and len(set(names)) == len(names)
    assert recipe("faithful", raw=True).value == "dense" and recipe("faithful", raw=True).prior == "bank"


def test_wilson_interval_by_hand():
    low, high = wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)  # the textbook 95 % interval for 8/10
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0 and wilson(0, 0) == (0.0, 1.0)


def test_bank_command_builds_scores_and_draws_examples(tmp_path, capsys):
    from lvo_core.cli import main

    out = tmp_path / "bank"
    args = ["bank", "--size", "4", "--steps", "2", "--timesteps", "200,500", "--out", str(out)]
    assert main(args + ["--units", "3", "--k", "2"]) == 0
    bank = SampleBank.load(out)
    assert bank.size == 4 and sorted(k[3] for k in bank.scores) == [200, 500]
    assert (out / "examples.png").is_file() and "model-generated dataset examples" in capsys.readouterr().out
    assert main(args + ["--units", "3", "--k", "9"]) == 2  # more examples than the pool holds: a clean error
    assert "--k 9 asks for more examples than the bank holds" in capsys.readouterr().err
