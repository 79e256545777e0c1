"""The flags of ``visualize`` and ``atlas`` as one :class:`~lvo_core.lvo.recipes.RunSpec`: the recipe (``faithful``
unless the flags describe a hand-built run), its settings overridden by the flags, the start it needs (a sample
bank built or resumed in ``--bank``, a steering prior, a ``steer`` priors file) — then the run builder of
:mod:`lvo_core.lvo.recipes` makes ``visualize``'s arguments, as it does for the nodes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ..analysis.bank import BankSettings, SampleBank, build_bank, read_settings
from ..analysis.steering import steer
from ..errors import LVOError
from ..lvo.optimize import preset, resolve_precision
from ..lvo.priors import PriorTable
from ..lvo.recipes import CUSTOM, Recipe, RunSpec, custom_recipe, recipe, run_arguments, score_bank
from ..lvo.regularizers import settings_from_flags
from ..lvo.transforms import ROBUSTNESS_LEVELS
from .boundary import BANK_SAMPLING, BANK_SCORING, Progress, recorded_args
from .setup import backend_for, check_units, load_analysis, setup


def steer_prior(model, sae, hookpoint: str, analysis, s: Any):
    """The steered-generation prior with the ``--mode/--scale/--strength/--window/--prior-steps`` settings."""
    backend = backend_for(model, hookpoint)

    def prior(units: list[int], seeds: list[int]) -> torch.Tensor:
        progress = Progress(f"steer {len(units)} rows")
        return steer(backend, units, seeds, sae=sae, analysis=analysis,
                     mode=s.mode, scale=s.scale, strength=s.strength, window=tuple(s.window), steps=s.prior_steps,
                     on_step=lambda i, n: progress(i + 1, n))
    prior.label = "steer"
    return prior


def lvo_config(s: Any, kind: str, base: Any = None):
    """The LVO config from a preset (or a recipe's ``base`` config) and the flags that override it."""
    if base is None:
        config = preset(s.preset or kind, robustness=s.robustness)
    else:
        config = base if s.robustness is None else replace(base, augment=ROBUSTNESS_LEVELS[s.robustness])
    overrides: dict[str, Any] = {"precision": resolve_precision(s.precision, s.device), "check_every": s.check_every}
    for name in ("steps", "lr", "optimizer", "seed"):
        if getattr(s, name) is not None:
            overrides[name] = getattr(s, name)
    overrides.update(settings_from_flags(vars(s)))  # the regularizers' flags: --tv-weight, --no-penalties, …
    if s.no_noise:
        overrides["noise"] = False
    if s.no_augment:
        overrides["augment"] = ROBUSTNESS_LEVELS["L0"]
    if s.minimize:
        overrides["maximize"] = False
    return replace(config, **overrides)


def chosen_recipe(s: Any) -> str:
    """``--recipe``, or by default ``faithful`` — unless ``--prior`` or ``--preset`` describe a hand-built run."""
    if s.recipe:
        return s.recipe
    return CUSTOM if s.prior is not None or s.preset is not None else "faithful"


def flag_recipe(s: Any, name: str, kind: str) -> Recipe:
    """The recipe ``name`` with the flags' overrides; ``custom`` is built from the flags alone (start: ``--prior``,
    default ``steer``; a priors file is a ``given`` start)."""
    if name == CUSTOM:
        prior = s.prior or "steer"
        if prior not in ("steer", "random") and not Path(prior).is_file():
            raise LVOError(f"--prior {prior}: give 'steer', 'random' or an existing priors.safetensors file")
        return custom_recipe(lvo_config(s, kind), prior=prior if prior in ("steer", "random") else "given",
                             value=s.value or "dense", timesteps=s.timesteps or "peaks", raw=kind == "raw")
    variant = recipe(name, raw=kind == "raw")
    if s.select_t is not None:
        variant = replace(variant, select_t=s.select_t)
    variant = replace(variant, config=lvo_config(s, kind, variant.config), value=s.value or variant.value)
    if s.timesteps is not None:
        if variant.prior == "bank":
            raise LVOError(f"--timesteps sets the rows of a hand-built run; the {name} recipe polishes at its "
                           f"selection timestep: give --select-t (a timestep or 'peak') instead")
        variant = replace(variant, timesteps=s.timesteps if isinstance(s.timesteps, str) else tuple(s.timesteps))
    return variant


def bank_for(s: Any, backend, spec: RunSpec, cluster: Any = None) -> SampleBank:
    """The sample bank in ``--bank`` (default ``<out>/bank``): built or resumed, and scored at the units' selection
    timesteps, by one process (rank 0 under torchrun; the others wait and load it). A bank that is there is used
    as it is: all of it, or its first ``--bank-size`` images when that is smaller (a larger one grows it); its
    sampler settings are its own, and only another model or latent size is refused, before any work."""
    folder = Path(s.bank) if s.bank else Path(s.out) / "bank"
    have = read_settings(folder)
    settings = replace(have or BankSettings(), size=s.bank_size or (have or BankSettings()).size)
    if cluster is None or cluster.rank == 0:
        built = build_bank(backend, settings, sae=spec.sae, out=folder, on_progress=Progress(BANK_SAMPLING))
        score_bank(backend, replace(spec, bank=built), on_progress=Progress(BANK_SCORING))
    if cluster is not None:
        cluster.barrier()
    bank = SampleBank.load(folder)
    bank.check_matches(backend, spec.sae)
    return bank.prefix(s.bank_size) if s.bank_size and s.bank_size < bank.size else bank


def lvo_setup(s: Any, cluster: Any = None):
    """What ``visualize`` and ``atlas`` run: ``(backend, visualize kwargs, info, fingerprint settings, units)``
    from the flags' :class:`~lvo_core.lvo.recipes.RunSpec` (``--units all`` becomes every feature or channel)."""
    model, sae, hookpoint = setup(s)
    if s.units != "all":
        check_units(model, hookpoint, s.units, sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    kind = "sae" if sae is not None else "raw"
    backend = backend_for(model, hookpoint, sae)
    count = sae.d_sae if sae is not None else backend.hookpoint.channels
    todo = list(range(count)) if s.units == "all" else list(s.units)
    name = chosen_recipe(s)
    settings = recorded_args(s)
    info = {"command": s.command, "args": dict(settings), "hookpoint": hookpoint, "model": model.source,
            "sae": None if sae is None else sae.summary(), "recipe": name}
    variant = flag_recipe(s, name, kind)

    def steering(unit_sae, unit_analysis, strength):
        flags = SimpleNamespace(**{**vars(s), "strength": strength if strength is not None else s.strength})
        return steer_prior(model, unit_sae, hookpoint, unit_analysis, flags)

    spec = RunSpec(variant, todo, list(s.seeds), sae=sae, analysis=analysis, steer=steering,
                   prior=PriorTable.load(s.prior) if variant.prior == "given" else None)
    if variant.prior == "bank":
        spec.bank = bank_for(s, backend, spec, cluster)
    kwargs = dict(run_arguments(backend, spec), batch_size=s.batch_size, display=s.display,
                  eval_samples=s.eval_samples)
    if name != CUSTOM:
        info["recipe"] = settings["recipe_settings"] = variant.describe()
    if spec.bank is not None:  # the bank by identity, not by folder content (scores are added to it over time)
        info["bank"] = settings["bank"] = {k: v for k, v in spec.bank.describe().items() if k != "scores"}
    return backend, kwargs, info, settings, todo
