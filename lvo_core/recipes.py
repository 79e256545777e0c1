"""Named LVO recipes: everything that decides a visualization besides the unit and the seed.

A recipe is more than an :class:`~lvo_core.optimize.LVOConfig`: it also says where the latent starts (a steering
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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .errors import LVOError
from .optimize import PRESETS, LVOConfig


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

    def __post_init__(self) -> None:
        if self.prior not in ("steer", "random"):
            raise LVOError(f"recipe '{self.name}': prior must be 'steer' or 'random', got '{self.prior}'")
        if self.value not in ("dense", "pre", "sparse"):
            raise LVOError(f"recipe '{self.name}': value must be 'dense', 'pre' or 'sparse', got '{self.value}'")
        if isinstance(self.timesteps, str) and self.timesteps != "peaks":
            raise LVOError(f"recipe '{self.name}': timesteps must be 'peaks' or a tuple of integers")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "note": self.note, "prior": self.prior, "steer_strength": self.steer_strength,
                "value": self.value, "timesteps": self.timesteps if isinstance(self.timesteps, str)
                else list(self.timesteps), "raw": self.raw, "config": self.config.to_dict()}

    def for_raw(self) -> "Recipe":
        """The raw-channel counterpart: the reference's raw penalties and gradient blur, and the dense value
        (channels have no pre-ReLU value). Steering keeps the recipe's rule: the reference's raw scale (dataset max
        × 50) when the strength is unset, else that fixed strength along the one-hot channel."""
        raw = PRESETS["raw"]
        config = replace(self.config, tv_weight=raw.tv_weight, moment_weight=raw.moment_weight,
                         blur_sigma=raw.blur_sigma)
        return replace(self, name=f"{self.name} (raw channels)", config=config, value="dense", raw=True)


BEST_CONFIG = replace(PRESETS["sae"], lr=0.02, prior_weight=1.0, prior_relative=True, prior_t_max=500)

RECIPES: dict[str, Recipe] = {
    "paper": Recipe("paper", PRESETS["sae"], note="the reference recipe"),
    "best": Recipe("best", BEST_CONFIG, steer_strength=5.0, value="pre", timesteps=(0,),
                   note="tuned on the toy world for concept agreement"),
}


def recipe(name: str, raw: bool = False, **overrides: Any) -> Recipe:
    """A named recipe (its raw-channel counterpart with ``raw``), with any field overridden."""
    if name not in RECIPES:
        raise LVOError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}")
    chosen = RECIPES[name].for_raw() if raw else RECIPES[name]
    return replace(chosen, **overrides) if overrides else chosen
