"""Choosing where a faithful visualization starts: the pool image that drives the unit hardest, at a timestep where
the unit means its concept.

By default a fixed, moderately noisy timestep (t = 200 of 1000: on the toy world, where the truth is known, it beat
the unit's activity peak and matched each unit's purest timestep; see the README's ablation); or the unit's
highest activity peak (``"peak"``, which needs an analysis: a unit the analysis never saw active falls back to
the fixed timestep with a warning, never an error, so every unit gets a picture); or a per-unit timestep the caller
chose, e.g. from labelled data. Seed slot k of a unit starts from its k-th best pool image, so the seeds of one
unit show different samples.
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..errors import LVOError, UnitError
from ..model.backend import Backend
from ..sae.model import SparseAutoencoder
from .activity import ActivityAnalysis
from .bank import SampleBank

SELECT_T = 200  # the default selection timestep (measured on the toy world: python -m lvo_core ablate)
FALLBACK_T = SELECT_T  # the "peak" rule's fallback for units no analysis saw active


EXAMPLE_T = 500  # dataset examples' timestep for a unit without an activity peak


def first_peak(unit: int, analysis: ActivityAnalysis | None, fallback: int = EXAMPLE_T) -> tuple[int, bool]:
    """The unit's first (highest) activity peak, else ``fallback`` (no analysis, or one that never saw it active),
    and whether it is the fallback. The one "first peak, else a fixed timestep" rule of the pack."""
    peaks = analysis.peaks(unit) if analysis is not None else []
    return (int(peaks[0]), False) if peaks else (int(fallback), True)


def scored_bank(bank: SampleBank, backend: Backend, sae: SparseAutoencoder | None, timesteps: Sequence[int],
                on_progress: Callable[[int, int], None] | None = None) -> SampleBank:
    """A bank someone handed over, ready to rank by: one of another model, block, SAE or latent size is refused
    before any work, then scored at ``timesteps`` where it is not yet (the scores are saved with it)."""
    bank.check_matches(backend, sae)
    bank.ensure_scores(backend, sae, sorted(set(int(t) for t in timesteps)), on_progress=on_progress)
    return bank


class SelectionWarning(UserWarning):
    """A unit's selection timestep is a fallback, not the data's."""


def selection_timesteps(units: Sequence[int], rule: str | int | Mapping[int, int] = SELECT_T,
                        analysis: ActivityAnalysis | None = None,
                        fallback: int = FALLBACK_T) -> tuple[dict[int, int], dict[int, str]]:
    """Per unit, the timestep its pool images are scored (and polished) at, and a note for each unit whose timestep
    is a fallback. ``rule``: a fixed integer timestep, ``"peak"`` (the unit's highest activity peak), or a mapping
    unit → timestep."""
    chosen: dict[int, int] = {}
    notes: dict[int, str] = {}
    for unit in units:
        unit = int(unit)
        if isinstance(rule, Mapping):
            if unit not in rule:
                raise LVOError(f"no selection timestep given for unit {unit}")
            chosen[unit] = int(rule[unit])
            continue
        if not isinstance(rule, str):
            chosen[unit] = int(rule)
            continue
        if rule != "peak":
            raise LVOError(f"selection timestep rule must be 'peak' or an integer timestep, got '{rule}'")
        try:
            chosen[unit], fell_back = first_peak(unit, analysis, fallback)
        except UnitError:
            chosen[unit], fell_back = int(fallback), True
        if fell_back:
            why = "no activity analysis was given" if analysis is None else "the activity analysis never saw it active"
            notes[unit] = f"unit {unit}: {why}; selected at the fallback timestep t = {fallback}"
            warnings.warn(notes[unit], SelectionWarning, stacklevel=2)
    return chosen, notes


class BankPrior:
    """A prior for :func:`~lvo_core.lvo.pipeline.visualize`: row (unit, seed) starts from the unit's k-th best pool
    image at its selection timestep (among the first ``pool`` images), where k is the seed's place in ``seeds``. Scores missing from the bank are
    computed (and saved with it) on first use."""

    label = "bank"

    def __init__(self, bank: SampleBank, backend: Backend, sae: SparseAutoencoder | None,
                 timesteps: dict[int, int], seeds: Sequence[int], pool: int | None = None, ranked: bool = True):
        bank.check_matches(backend, sae)
        self.bank, self.backend, self.sae = bank, backend, sae
        self.timesteps, self.seeds, self.pool = dict(timesteps), [int(s) for s in seeds], pool
        self.ranked = ranked
        if pool is not None and len(self.seeds) > pool:
            raise LVOError(f"{len(self.seeds)} seeds need at least as many pool images, the pool has {pool}")
        self.chosen: dict[tuple[int, int], int] = {}
        self._order: dict[int, list[int]] = {}

    def pick(self, unit: int, seed: int) -> int:
        """The pool index row (unit, seed) starts from (unranked: pool image k for seed slot k, whatever the unit —
        the ablation of the selection)."""
        if int(seed) not in self.seeds:
            raise LVOError(f"seed {seed} is not one of this prior's seeds {self.seeds}")
        if not self.ranked:
            return self.seeds.index(int(seed))
        unit = int(unit)
        if unit not in self._order:  # one ranking per unit, shared by its seeds
            t = self.timesteps[unit]
            self.bank.ensure_scores(self.backend, self.sae, [t])
            self._order[unit] = self.bank.top(unit, t, len(self.seeds), self.sae, self.pool)
        index = self._order[unit][self.seeds.index(int(seed))]
        self.chosen[(unit, int(seed))] = index
        return index

    def __call__(self, units: list[int], seeds: list[int]) -> Tensor:
        return torch.stack([self.bank.latents[self.pick(u, s)] for u, s in zip(units, seeds)])
