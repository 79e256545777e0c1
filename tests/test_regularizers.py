"""Regularizers as registered terms: the reference settings give main's numbers, and a term defined in one place
reaches the history, the CLI, the config's JSON, the fingerprint, the ablation and the optimization."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import pytest
import torch
from conftest import random_sae

from lvo_core.cli import build_parser
from lvo_core.commands.boundary import recorded_args
from lvo_core.commands.lvo_run import lvo_config
from lvo_core.lvo import regularizers
from lvo_core.lvo.objectives import Channel, SAEFeature
from lvo_core.lvo.optimize import PRESETS, ConfigError, LVOConfig, history_keys, optimize, preset
from lvo_core.lvo.recipes import recipe
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.sampling import seeded_noise
from lvo_core.model.tiny import CharPromptEncoder, sd15_scheduler, tiny_vae
from lvo_core.runs.record import fingerprint
from lvo_core.toy.ablate import components_of, switched_off

HP = "up_blocks.1.attentions.1"
SEEDS = [1, 2, 7]


@pytest.fixture(scope="module")
def backend(unet):
    return DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())


def run(backend, config, raw: bool, value: str = "dense"):
    obj = Channel([3, 5, 9]) if raw else SAEFeature(random_sae(), [3, 8, 20], value=value)
    return optimize(backend, obj, seeded_noise(SEEDS, (4, 16, 16)), [0, 200, 600], SEEDS, replace(config, steps=6))


# ---------------------------------------------------------------------------------------------- same numbers as main
# Computed on main (e84ddf9, before the terms existed) with the same calls: final loss per row, Σ|z| and Σz.
MAIN = {
    "sae": ([-0.40073341131210327, -0.7068653702735901, -0.1245129257440567], 2475.385577741079, -24.591346881818026),
    "raw": ([1.0816278457641602, 1.150963306427002, 0.7795202136039734], 2397.4276733621955, 182.96606212481856),
    "faithful": ([-0.15924787521362305, -0.6729421615600586, 0.2773122787475586], 2468.0020238071447,
                 -9.707595401792787),
    "faithful_raw": ([1.1727110147476196, 1.2386271953582764, 0.8871896862983704], 2404.31037366949,
                     136.85657573491335),
}
CASES = {"sae": (PRESETS["sae"], False, "dense"), "raw": (PRESETS["raw"], True, "dense"),
         "faithful": (recipe("faithful").config, False, "pre"),
         "faithful_raw": (recipe("faithful", raw=True).config, True, "dense")}


@pytest.mark.parametrize("case", list(MAIN))
def test_reference_settings_give_mains_numbers(backend, case):
    config, raw, value = CASES[case]
    result = run(backend, config, raw, value)
    loss, abs_sum, total = MAIN[case]
    assert result.history["loss"][-1].tolist() == pytest.approx(loss, rel=1e-5, abs=1e-6)
    assert float(result.latents.double().abs().sum()) == pytest.approx(abs_sum, rel=1e-6)
    assert float(result.latents.double().sum()) == pytest.approx(total, rel=1e-5, abs=1e-3)
    assert list(result.history) == ["activation", "tv", "range", "moment", "loss"]


def test_config_json_and_fingerprints_are_mains():
    """The config JSON and its fingerprints are main's. The recorded arguments' fingerprints changed once, on
    purpose, when --bank-size became "the bank as it is" (default None) and left the fingerprint (a bank recipe
    fingerprints the bank's identity instead): they are pinned anew here."""
    assert list(regularizers.REGISTRY) == ["tv", "range", "moment", "precondition", "blur", "diffusion_prior"]
    assert {k: fingerprint({"config": v.to_dict()}) for k, v in PRESETS.items()} == {"sae": "2ac86991f00baf03",
                                                                                      "raw": "981e260bf04ea79f"}
    assert fingerprint({"config": recipe("faithful").config.to_dict()}) == "d2a723d1ead49c4d"
    assert fingerprint({"config": recipe("best", raw=True).config.to_dict()}) == "54bb712d966ec73f"
    assert fingerprint(recipe("faithful").describe()) == "45e6ff42ba2283c6"
    assert set(PRESETS["sae"].to_dict()) == {
        "steps", "lr", "optimizer", "weight_decay", "noise", "augment", "tv_weight", "range_weight", "range_tau",
        "moment_weight", "precondition", "blur_sigma", "maximize", "seed", "preview_every", "precision",
        "check_every", "prior_weight", "prior_t_min", "prior_t_max", "prior_relative"}
    parser = build_parser()
    for argv, args_fp, config_fp in [
            ([], "aa7926a1af1a5952", "2ac86991f00baf03"),
            (["--recipe", "paper", "--tv-weight", "0.2", "--no-precondition"], "d092303cff1c0283", "9dd32629bbdd15e9"),
            (["--no-penalties", "--blur-sigma", "0.3", "--prior-weight", "0.5", "--preset", "raw"], "a67fab90e453be6e",
             "1f25f11d05ac42d0")]:
        s = parser.parse_args(["visualize", "--units", "3", "--device", "cpu", *argv])
        config = lvo_config(s, s.preset or "sae", None if s.preset else recipe("paper").config)
        assert fingerprint(recorded_args(s)) == args_fp, argv
        assert fingerprint({"config": config.to_dict()}) == config_fp, argv


def test_terms_compose_and_unknown_names_list_the_known_ones():
    raw = PRESETS["raw"]
    assert [(p.name, p.weight) for p in raw.penalties] == [("tv", 0.5), ("range", 0.5), ("moment", 0.0)]
    assert [g.name for g in raw.gradient_transforms if g.active] == ["precondition", "blur"]
    assert raw.term("blur") == regularizers.Blur(sigma=0.5) and raw.blur_sigma == 0.5
    assert replace(raw, tv_weight=0.1).term("tv").weight == 0.1 and replace(raw, tv_weight=0.1).range_tau == 3.0
    built = LVOConfig(terms=[regularizers.TotalVariation(weight=0.5), regularizers.Blur(sigma=0.5)], moment_weight=0.0)
    assert built == raw and built.to_dict() == raw.to_dict()  # terms compose into the raw preset
    with pytest.raises(ConfigError, match="unknown regularizer 'l3'; known: tv, range, moment, precondition, blur, "
                                          "diffusion_prior"):
        regularizers.lookup("l3")
    with pytest.raises(ConfigError, match="unknown LVO setting.*l3_weight; the regularizers' settings are tv_weight, "
                                          "range_weight, range_tau"):
        LVOConfig(l3_weight=1.0)
    with pytest.raises(ConfigError, match="tv_weight must be a finite number ≥ 0, got -1"):
        LVOConfig(tv_weight=-1.0)


# ---------------------------------------------------------------------------------------------- a term in one place
@pytest.fixture
def l2_term():
    """A toy L2 penalty, defined and registered here and nowhere else (unregistered afterwards)."""
    saved = dict(regularizers.REGISTRY)

    @regularizers.register
    @dataclass(frozen=True)
    class L2(regularizers.Penalty):
        """Mean z² per row."""

        name: ClassVar[str] = "l2"
        label: ClassVar[str] = "L2"
        weight: float = regularizers.setting(0.0, "L2 weight")

        def __call__(self, z: torch.Tensor) -> torch.Tensor:
            return z.pow(2).flatten(1).mean(1)

    yield L2
    regularizers.REGISTRY.clear()
    regularizers.REGISTRY.update(saved)


def test_a_term_defined_in_one_place_reaches_everything(l2_term, backend):
    assert history_keys() == ("activation", "tv", "range", "moment", "l2", "loss")
    parser = build_parser()
    s = parser.parse_args(["visualize", "--units", "3", "--device", "cpu", "--l2-weight", "0.25"])
    config = lvo_config(s, "sae")
    assert s.l2_weight == 0.25 and config.l2_weight == 0.25 and config.to_dict()["l2_weight"] == 0.25
    assert LVOConfig.from_dict(config.to_dict()) == config
    assert PRESETS["sae"].to_dict()["l2_weight"] == 0.0  # a config built before the term gets its default
    plain = parser.parse_args(["visualize", "--units", "3", "--device", "cpu"])
    assert fingerprint(recorded_args(s)) != fingerprint(recorded_args(plain))
    assert fingerprint({"config": config.to_dict()}) != fingerprint({"config": lvo_config(plain, "sae").to_dict()})
    assert lvo_config(parser.parse_args(["visualize", "--units", "3", "--l2-weight", "0.25", "--no-penalties"]),
                      "sae").l2_weight == 0.0
    off = switched_off(recipe("paper"), "penalties")
    assert off.note == "no TV, range, moment or L2 penalty" and "penalties" in components_of(recipe("paper"))

    init = seeded_noise(SEEDS, (4, 16, 16))
    base = run(backend, PRESETS["sae"], raw=False)
    strong = run(backend, preset("sae", l2_weight=2.0), raw=False)
    assert base.history["l2"][0].tolist() == pytest.approx(init.pow(2).flatten(1).mean(1).tolist(), rel=1e-6)
    assert strong.history["l2"][0].tolist() == base.history["l2"][0].tolist()  # measured before the first step
    # the weighted term enters the loss and pulls every row's mean square down
    assert (strong.history["loss"][0] - base.history["loss"][0]).tolist() == pytest.approx(
        (2.0 * base.history["l2"][0]).tolist(), rel=1e-5)
    assert (strong.latents.pow(2).flatten(1).mean(1) < base.latents.pow(2).flatten(1).mean(1)).all()


def test_register_refuses_clashes(l2_term):
    @dataclass(frozen=True)
    class Other(regularizers.Penalty):
        name: ClassVar[str] = "other"
        weight: float = regularizers.setting(0.0, key="tv_weight")

        def __call__(self, z: torch.Tensor) -> torch.Tensor:
            return z.sum((1, 2, 3))

    with pytest.raises(Exception, match="clashes"):
        regularizers.register(Other)
