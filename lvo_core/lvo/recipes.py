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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from ..analysis.activity import ActivityAnalysis
from ..analysis.bank import SampleBank
from ..analysis.selection import FALLBACK_T, SELECT_T, BankPrior, selection_timesteps
from ..errors import LVOError
from ..model.backend import Backend
from ..sae.model import SparseAutoencoder
from .optimize import PRESETS, LVOConfig
from .pipeline import PriorFn, Timesteps, Visualization, visualize
from .regularizers import reference_settings

SteerFactory = Callable[[SparseAutoencoder | None, ActivityAnalysis | None, float | None], PriorFn]


@dataclass(frozen=True)
class Recipe:
    """One way to run LVO: settings, start, value and timesteps."""

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
        if self.prior not in ("steer", "random", "bank"):
            raise LVOError(f"recipe '{self.name}': prior must be 'steer', 'random' or 'bank', got '{self.prior}'")
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


def recipe(name: str, raw: bool = False, **overrides: Any) -> Recipe:
    """A named recipe (its raw-channel counterpart with ``raw``), with any field overridden."""
    if name not in RECIPES:
        raise LVOError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}")
    chosen = RECIPES[name].for_raw() if raw else RECIPES[name]
    return replace(chosen, **overrides) if overrides else chosen


def recipe_start(backend: Backend, variant: Recipe, units: Sequence[int], *, sae: SparseAutoencoder | None,
                 analysis: ActivityAnalysis | None, seeds: Sequence[int], steer_prior: SteerFactory | None = None,
                 bank: SampleBank | None = None) -> tuple[str | PriorFn, Timesteps, dict[int, str]]:
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
    if bank is None:
        raise LVOError(f"recipe '{variant.name}' starts from a sample bank; build one (`python -m lvo_core bank`) "
                       f"and pass it")
    chosen, notes = selection_timesteps(units, variant.select_t, analysis, variant.fallback_t)
    if variant.timesteps == "select":
        timesteps = {u: [t] for u, t in chosen.items()}
    return BankPrior(bank, backend, sae, chosen, seeds, variant.pool, ranked=variant.select), timesteps, notes


def visualize_recipe(backend: Backend, variant: Recipe, units: Sequence[int], *, sae: SparseAutoencoder | None,
                     analysis: ActivityAnalysis | None = None, seeds: Sequence[int] = (1, 2, 3, 4),
                     steer_prior: SteerFactory | None = None, bank: SampleBank | None = None,
                     **options: Any) -> Visualization:
    """:func:`~lvo_core.lvo.pipeline.visualize` under a recipe (``sae`` None: raw channels). Rows of a bank recipe
    carry the pool image they started from (``pool_index``) and, where the selection timestep was a fallback, a
    ``note`` saying so. ``options`` go to ``visualize`` (batch size, progress, previews, interrupts, …)."""
    prior, timesteps, notes = recipe_start(backend, variant, units, sae=sae, analysis=analysis, seeds=seeds,
                                           steer_prior=steer_prior, bank=bank)
    vis = visualize(backend, list(units), sae=sae, analysis=analysis, timesteps=timesteps, seeds=seeds, prior=prior,
                    config=variant.config, value=variant.value, optimize_latents=variant.polish, **options)
    if isinstance(prior, BankPrior):
        for m in vis.metrics:
            m["pool_index"] = prior.chosen.get((m["unit"], m["seed"]))
            if m["unit"] in notes:
                m["note"] = notes[m["unit"]]
    vis.prior = f"{variant.name}: {vis.prior}"
    return vis
