"""Named LVO recipes: everything that decides a visualization besides the unit and the seed.

A recipe is more than an :class:`~lvo_core.lvo.optimize.LVOConfig`: it also says where the latent starts (a steering
prior or plain noise, and how hard to steer), which SAE value is maximized and at which timesteps.

* ``paper`` — the reference recipe: steering prior at the reference strength (dataset max × 500 at the unit's active
  timesteps), rows at {0} ∪ activity peaks, dense ReLU value, the reference's SAE settings (raw units: its raw
  settings).
* ``best`` — what showed planted concepts best on the toy world (``python -m lvo_core ablate``; see README): a
  steering prior at a fixed strength over the whole sampling, rows at t = 0, the pre-ReLU value, a gentler step
  (lr 0.02) and the diffusion-prior term at the objective's own gradient scale (t' ≤ 500), which keeps the latent
  on the model's image manifold. It trades activation for recognizability: on the toy world it reaches the
  dataset maximum less often than ``paper`` while its images show the unit's concept far more often. The fixed
  steering strength is in the hooked block's units (the toy block's tokens have norm ≈ 8); scale it with yours.
* ``faithful`` — the default: start from the model's own sample that drives the unit hardest (a
  :mod:`~lvo_core.analysis.bank` of unconditional samples, scored at the selection timestep, t = 200 by default, or the
  unit's activity peak), then a short polish with ``best``'s settings at that timestep. Choosing among the
  model's samples keeps the picture on the data; the polish lifts the activation past the dataset maximum before
  it starts to trade the concept away (measured: ``python -m lvo_core ablate``).

A hand-built run (the CLI's ``--recipe custom``, LVO Optimize) is a recipe too (:func:`custom_recipe`). Every caller —
the CLI's ``visualize`` and ``atlas``, the nodes, the ablation — describes its run as a :class:`RunSpec` and gets
``visualize``'s arguments from :func:`run_arguments` (or the finished run from :func:`build_run`), so their rows carry
the same fields: a bank start's ``pool_index`` and, where the selection timestep was a fallback, its ``note``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..analysis.activity import ActivityAnalysis
from ..analysis.bank import SampleBank
from ..analysis.selection import FALLBACK_T, SELECT_T, BankPrior, SelectionWarning, scored_bank, selection_timesteps
from ..analysis.steering import REFERENCE_SEEDS
from ..errors import LVOError
from ..model.backend import Backend
from ..sae.model import SparseAutoencoder
from .optimize import PRESETS, LVOConfig
from .pipeline import PriorFn, Row, Timesteps, Visualization, visualize
from .regularizers import reference_settings

SteerFactory = Callable[[SparseAutoencoder | None, ActivityAnalysis | None, float | None], PriorFn]


@dataclass(frozen=True)
class Recipe:
    """One way to run LVO: settings, start, value and timesteps. ``prior``: ``steer`` (a steered generation),
    ``random`` (N(0, I)), ``bank`` (the best pool image) or ``given`` (the caller's start: a priors file, a latent)."""

    name: str
    config: LVOConfig
    prior: str = "steer"
    steer_strength: float | None = None
    value: str = "dense"
    timesteps: str | tuple[int, ...] = "peaks"
    raw: bool = False
    note: str = ""
    polish: bool = True
    select: bool = True
    pool: int | None = None
    select_t: str | int = SELECT_T
    fallback_t: int = FALLBACK_T

    def __post_init__(self) -> None:
        if self.prior not in ("steer", "random", "bank", "given"):
            raise LVOError(f"recipe '{self.name}': prior must be 'steer', 'random', 'bank' or 'given', got "
                           f"'{self.prior}'")
        if self.prior != "bank" and not self.polish:
            raise LVOError(f"recipe '{self.name}': only a bank prior can skip the optimization (polish=False)")
        if self.value not in ("dense", "pre", "sparse"):
            raise LVOError(f"recipe '{self.name}': value must be 'dense', 'pre' or 'sparse', got '{self.value}'")
        if isinstance(self.timesteps, str) and self.timesteps not in ("peaks", "select"):
            raise LVOError(f"recipe '{self.name}': timesteps must be 'peaks', 'select' or a tuple of integers")
        if self.timesteps == "select" and self.prior != "bank":
            raise LVOError(f"recipe '{self.name}': timesteps 'select' (the selection timestep) needs the bank prior")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "note": self.note, "prior": self.prior, "steer_strength": self.steer_strength,
                "value": self.value, "timesteps": self.timesteps if isinstance(self.timesteps, str)
                else list(self.timesteps), "raw": self.raw, "polish": self.polish, "select": self.select,
                "pool": self.pool, "select_t": self.select_t, "fallback_t": self.fallback_t,
                "config": self.config.to_dict()}

    def for_raw(self) -> "Recipe":
        """The raw-channel counterpart: the regularizers' raw-channel reference values (TV penalty and gradient blur
        instead of the moment penalty) and the dense value (channels have no pre-ReLU value). Steering keeps the
        recipe's rule: the reference's raw scale (dataset max × 50) when the strength is unset, else that fixed
        strength along the one-hot channel."""
        config = replace(self.config, **reference_settings("raw"))
        return replace(self, name=f"{self.name} (raw channels)", config=config, value="dense", raw=True)


BEST_CONFIG = replace(PRESETS["sae"], lr=0.02, prior_weight=1.0, prior_relative=True, prior_t_max=500)
POLISH_STEPS = 30

RECIPES: dict[str, Recipe] = {
    "paper": Recipe("paper", PRESETS["sae"], note="the reference recipe"),
    "best": Recipe("best", BEST_CONFIG, steer_strength=5.0, value="pre", timesteps=(0,),
                   note="tuned on the toy world for concept agreement"),
    "faithful": Recipe("faithful", replace(BEST_CONFIG, steps=POLISH_STEPS), prior="bank", value="pre",
                       timesteps="select", note="best-scoring pool sample at the selection timestep, short polish"),
}
DEFAULT_RECIPE = "faithful"
CUSTOM = "custom"


def recipe(name: str, raw: bool = False, **overrides: Any) -> Recipe:
    """A named recipe (its raw-channel counterpart with ``raw``), with any field overridden."""
    if name not in RECIPES:
        raise LVOError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}")
    chosen = RECIPES[name].for_raw() if raw else RECIPES[name]
    return replace(chosen, **overrides) if overrides else chosen


def custom_recipe(config: LVOConfig, *, prior: str = "steer", value: str = "dense",
                  timesteps: str | Sequence[int] = "peaks", raw: bool = False) -> Recipe:
    """A hand-built run as a recipe: the settings, start, value and row timesteps given (the CLI's ``--recipe
    custom``, LVO Optimize)."""
    rows = timesteps if isinstance(timesteps, str) else tuple(int(t) for t in timesteps)
    return Recipe(CUSTOM, config, prior=prior, value=value, timesteps=rows, raw=raw, note="built from the settings")


@dataclass
class RunSpec:
    """One LVO run besides the model: the recipe, which units and seeds, and what it reads. ``sae`` None means raw
    channels; ``bank`` serves a bank recipe, ``steer(sae, analysis, strength)`` makes a steer recipe's prior, and
    ``prior`` is a ``given`` recipe's start (a function ``(units, seeds) -> latents``)."""

    recipe: Recipe
    units: list[int]
    seeds: list[int] = field(default_factory=lambda: list(REFERENCE_SEEDS))
    sae: SparseAutoencoder | None = None
    analysis: ActivityAnalysis | None = None
    bank: SampleBank | None = None
    steer: SteerFactory | None = None
    prior: PriorFn | None = None


def required_bank(variant: Recipe, bank: SampleBank | None) -> SampleBank:
    """The bank a bank recipe starts from; refused, saying how to make one, when there is none."""
    if bank is None:
        raise LVOError(f"recipe '{variant.name}' starts from a sample bank; build one (`python -m lvo_core bank`) "
                       f"and pass it")
    return bank


def score_bank(backend: Backend, spec: RunSpec, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Refuse a bank of another model, block or SAE, then score it at the units' selection timesteps — before any
    row starts, so the scoring shows as a step of its own (the fallbacks are announced where the rows start)."""
    bank = required_bank(spec.recipe, spec.bank)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SelectionWarning)
        chosen, _ = selection_timesteps(spec.units, spec.recipe.select_t, spec.analysis, spec.recipe.fallback_t)
    scored_bank(bank, backend, spec.sae, list(chosen.values()), on_progress)


def recipe_start(backend: Backend, variant: Recipe, units: Sequence[int], *, sae: SparseAutoencoder | None,
                 analysis: ActivityAnalysis | None, seeds: Sequence[int], steer_prior: SteerFactory | None = None,
                 bank: SampleBank | None = None,
                 given: PriorFn | None = None) -> tuple[str | PriorFn, Timesteps, dict[int, str]]:
    """What a recipe's rows start from and at which timesteps: ``(prior, timesteps, notes)``; ``notes`` says per
    unit where a fallback was used. ``sae`` is None for raw channels."""
    notes: dict[int, str] = {}
    timesteps: Timesteps = variant.timesteps if isinstance(variant.timesteps, str) else list(variant.timesteps)
    if variant.prior == "steer":
        if steer_prior is None:
            raise LVOError(f"variant '{variant.name}' starts from a steering prior; give steer_prior")
        return steer_prior(sae, analysis, variant.steer_strength), timesteps, notes
    if variant.prior == "random":
        return "random", timesteps, notes
    if variant.prior == "given":
        if given is None:
            raise LVOError(f"recipe '{variant.name}' starts from a given prior; pass the prior function")
        return given, timesteps, notes
    bank = required_bank(variant, bank)
    chosen, notes = selection_timesteps(units, variant.select_t, analysis, variant.fallback_t)
    if variant.timesteps == "select":
        timesteps = {u: [t] for u, t in chosen.items()}
    return BankPrior(bank, backend, sae, chosen, seeds, variant.pool, ranked=variant.select), timesteps, notes


def run_arguments(backend: Backend, spec: RunSpec) -> dict[str, Any]:
    """The arguments of :func:`~lvo_core.lvo.pipeline.visualize` (after the backend and units) that run ``spec``:
    its start, rows, settings and value, and ``row_fields`` giving a bank start's rows their ``pool_index`` and
    fallback ``note``. The CLI passes them through the run record, the nodes straight to ``visualize``."""
    prior, timesteps, notes = recipe_start(backend, spec.recipe, spec.units, sae=spec.sae, analysis=spec.analysis,
                                           seeds=spec.seeds, steer_prior=spec.steer, bank=spec.bank, given=spec.prior)
    arguments: dict[str, Any] = dict(sae=spec.sae, analysis=spec.analysis, seeds=list(spec.seeds),
                                     timesteps=timesteps, prior=prior, config=spec.recipe.config,
                                     value=spec.recipe.value, optimize_latents=spec.recipe.polish)
    if isinstance(prior, BankPrior):
        def row_fields(row: Row) -> dict[str, Any]:
            fields = {"pool_index": prior.chosen.get((row.unit, row.seed))}
            return {**fields, "note": notes[row.unit]} if row.unit in notes else fields
        arguments["row_fields"] = row_fields
    return arguments


def build_run(backend: Backend, spec: RunSpec, **options: Any) -> Visualization:
    """Run ``spec`` in memory: :func:`~lvo_core.lvo.pipeline.visualize` with :func:`run_arguments`; ``options`` go
    to ``visualize`` (batch size, progress, previews, interrupts, …). The run's prior is named after its recipe."""
    vis = visualize(backend, list(spec.units), **run_arguments(backend, spec), **options)
    vis.prior = f"{spec.recipe.name}: {vis.prior}"
    return vis


def visualize_recipe(backend: Backend, variant: Recipe, units: Sequence[int], *, sae: SparseAutoencoder | None,
                     analysis: ActivityAnalysis | None = None, seeds: Sequence[int] = (1, 2, 3, 4),
                     steer_prior: SteerFactory | None = None, bank: SampleBank | None = None,
                     **options: Any) -> Visualization:
    """:func:`build_run` with the spec's parts as arguments (Python callers, the README's example): ``sae`` None
    means raw channels; ``options`` go to ``visualize``."""
    spec = RunSpec(variant, list(units), list(seeds), sae=sae, analysis=analysis, bank=bank, steer=steer_prior)
    return build_run(backend, spec, **options)
