"""Prior initialization by feature steering, and the "feature icon" baseline.

The reference's prior: sample with the **empty prompt, no CFG, 50 steps**, seeds [1024, 1111, 4359, 3248, 1026],
and at the unit's *active* timesteps push the hooked block towards the unit — SAE features by adding
``strength · decoder direction`` to every token, raw channels by adding a constant to the channel — with
``strength(t) = dataset max of the unit at t × scale`` (scale 500 for SAE features, 50 for raw channels) or a
fixed strength. The final latents are LVO's starting points. A third mode scales the feature's code with the SAE
error preserved (SAeUron's steering). Many (unit, seed) rows steer in one batch, each row with its own unit.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import LVOError, UnitError
from ..hookpoints import check_sae_fits
from ..model.backend import Backend
from ..model.hooks import (
    AddDirection,
    EditFeature,
    ReplaceWithDirection,
    TokenEdit,
    edit,
)
from ..sae.model import SparseAutoencoder
from .activity import ActivityAnalysis

REFERENCE_SEEDS = (1024, 1111, 4359, 3248, 1026)


class SteeringWarning(UserWarning):
    """A unit cannot be steered as asked and falls back to an unsteered prior (said, never silent)."""
DEFAULT_SCALE = {"sae": 500.0, "raw": 50.0}
MODES = ("add", "scale")


def unit_directions(units: Sequence[int], sae: SparseAutoencoder | None, channels: int) -> Tensor:
    """Per-row steering directions ``[B, C]``: unit-norm decoder rows, or one-hot channels for raw units."""
    if sae is not None:
        return torch.stack([sae.direction(u) for u in units]).float()
    bad = [u for u in units if not 0 <= u < channels]
    if bad:
        raise UnitError(f"channel {bad[0]} is out of range: the block has {channels} channels")
    return torch.eye(channels)[list(units)]


def default_scale(sae: SparseAutoencoder | None) -> float:
    """The reference's steering scale: 500 × dataset max for SAE features, 50 × for raw channels."""
    return DEFAULT_SCALE["sae" if sae is not None else "raw"]


def check_strength(value: float, what: str = "strength") -> float:
    value = float(value)
    if not np.isfinite(value):
        raise LVOError(f"steering {what} must be a finite number, got {value}")
    return value


class StrengthSchedule:
    """Per-unit steering strength at a timestep.

    ``gate``: ``active`` — only where the unit's activity profile is > 0 (needs an analysis); ``window`` — within
    the ``window`` of sampling progress (fractions 0–1, like other packs' start/end percent). Default: ``active``
    with an analysis, ``window`` without. Strength: the fixed ``strength``, or, when it is None, the unit's dataset
    maximum at t × ``scale`` (the reference protocol; needs an analysis).
    """

    def __init__(self, units: Sequence[int], *, analysis: ActivityAnalysis | None = None, scale: float | None = None,
                 strength: float | None = None, window: tuple[float, float] = (0.0, 1.0), gate: str | None = None):
        gate = gate or ("active" if analysis is not None else "window")
        if gate not in ("active", "window"):
            raise LVOError(f"steering gate must be 'active' or 'window', got '{gate}'")
        if analysis is None and (strength is None or gate == "active"):
            raise LVOError("steering needs either an activity analysis (strength = dataset max × scale at active "
                           "timesteps) or a fixed strength")
        self.units = [int(u) for u in units]
        self.analysis, self.gate = analysis, gate
        self.scale = 1.0 if scale is None else check_strength(scale, "scale")
        self.strength = None if strength is None else check_strength(strength)
        if not 0.0 <= window[0] <= window[1] <= 1.0:
            raise LVOError(f"steering window must satisfy 0 ≤ start ≤ end ≤ 1, got {window}")
        self.window = window
        self._profiles = [analysis.profile(u) for u in self.units] if analysis is not None else None
        self.notes: dict[int, str] = {}
        if gate == "active":
            kind = "feature" if analysis.unit_kind == "sae" else "channel"
            for u, p in zip(self.units, self._profiles):
                if not (p > 0).any() and u not in self.notes:
                    self.notes[u] = (f"{kind} {u} is never among the top-{analysis.top_n} in this activity analysis, "
                                     f"so it is not steered: its prior is a plain empty-prompt sample. To steer it, "
                                     f"use a window with a fixed strength, or the faithful recipe's sample bank")
                    warnings.warn(self.notes[u], SteeringWarning, stacklevel=2)

    def __call__(self, step: int, steps: int, t: int) -> Tensor:
        return self.at(int(t), step / max(1, steps - 1))

    def at(self, t: int, progress: float) -> Tensor:
        """Strength per unit at timestep ``t``, ``progress`` (0–1) of the way through sampling."""
        t = min(max(int(t), 0), 1000)
        values = []
        for i, unit in enumerate(self.units):
            on = (self._profiles[i][t] > 0 if self.gate == "active"
                  else self.window[0] <= progress <= self.window[1])
            base = self.strength if self.strength is not None else self.analysis.max_at(unit, t) * self.scale
            values.append(base if on else 0.0)
        return torch.tensor(values, dtype=torch.float32)


def steering_edit(units: Sequence[int], sae: SparseAutoencoder | None, channels: int, mode: str = "add") -> TokenEdit:
    """The edit that steers each row towards its unit (strengths are set per step by the sampling loop)."""
    if mode not in MODES:
        raise LVOError(f"steering mode must be one of {MODES}, got '{mode}'")
    if mode == "scale":
        if sae is None:
            raise LVOError("mode 'scale' scales an SAE feature's code; raw channels steer with mode 'add'")
        return EditFeature(sae, list(units), scale=torch.ones(len(units)))
    return AddDirection(unit_directions(units, sae, channels), strength=torch.zeros(len(units)))


@torch.no_grad()
def steer(backend: Backend, units: Sequence[int], seeds: Sequence[int], *, sae: SparseAutoencoder | None = None,
          analysis: ActivityAnalysis | None = None, mode: str = "add", scale: float | None = None,
          strength: float | None = None, window: tuple[float, float] = (0.0, 1.0), steps: int = 50,
          latent_shape: Sequence[int] | None = None, on_step: Callable[[int, int], None] | None = None,
          context: Tensor | None = None, scheduler: Any = None) -> Tensor:
    """Final latents ``[B, C, H, W]`` of an empty-prompt (or ``context``), CFG-free generation per (unit, seed) row,
    steered at the backend's hooked block; ``scheduler`` defaults to the backend's sampler.

    In ``scale`` mode the strength is the factor the feature's code is multiplied by (1 = no change).
    """
    if len(units) != len(seeds):
        raise LVOError(f"got {len(units)} units for {len(seeds)} seeds; give one unit per seed row")
    point = backend.hookpoint
    if sae is not None:
        check_sae_fits(sae.d_in, point, backend.denoiser)
        sae.check_features(sorted(set(units)))
    if analysis is not None:
        analysis.check_matches(point.diffusers_name, sae)
    if scale is None:
        scale = default_scale(sae)
    schedule = StrengthSchedule(units, analysis=analysis, scale=scale, strength=strength, window=window)
    editor = steering_edit(units, sae, point.channels, mode)

    def before_step(i: int, t: int) -> None:
        values = schedule(i, steps, t)
        if mode == "scale":
            editor.scale = torch.where(values != 0, values, torch.ones_like(values))
        else:
            editor.strength = values
        if on_step is not None:
            on_step(i, steps)

    with edit(backend.denoiser, point, editor):
        return backend.sample(backend.empty_context(1) if context is None else context, guidance=1.0, steps=steps,
                              seeds=seeds, latent_shape=latent_shape, before_step=before_step, scheduler=scheduler)


@torch.no_grad()
def feature_icon(backend: Backend, units: Sequence[int], seeds: Sequence[int], *,
                 sae: SparseAutoencoder | None = None, steps: int = 50, latent_shape: Sequence[int] | None = None,
                 context: Tensor | None = None, scheduler: Any = None) -> Tensor:
    """Final latents of an empty-prompt (or ``context``) generation with the hooked block's output replaced by each
    row's unit direction (at the output's own mean token norm) at every step — a cheap baseline beside LVO."""
    point = backend.hookpoint
    if sae is not None:
        check_sae_fits(sae.d_in, point, backend.denoiser)
    editor = ReplaceWithDirection(unit_directions(units, sae, point.channels))
    with edit(backend.denoiser, point, editor):
        return backend.sample(backend.empty_context(1) if context is None else context, guidance=1.0, steps=steps,
                              seeds=seeds, latent_shape=latent_shape, scheduler=scheduler)


class BlockSteer:
    """Steering of a block's tokens at one timestep, for samplers that call the model themselves (ComfyUI).

    ``row_units`` maps batch rows (within one cond/uncond chunk) to units: each row is pushed towards its own unit,
    as in a prior batch of units × seeds. Without it every row is pushed towards all units at once (the usual
    "steer this feature" patch).
    """

    def __init__(self, units: Sequence[int], sae: SparseAutoencoder | None, channels: int, schedule: StrengthSchedule,
                 mode: str = "add", row_units: Sequence[int] | None = None):
        if mode not in MODES:
            raise LVOError(f"steering mode must be one of {MODES}, got '{mode}'")
        if mode == "scale" and sae is None:
            raise LVOError("mode 'scale' scales an SAE feature's code; raw channels steer with mode 'add'")
        self.units, self.sae, self.mode, self.schedule = [int(u) for u in units], sae, mode, schedule
        self.directions = unit_directions(self.units, sae, channels) if mode == "add" else None
        self.row_index = None if row_units is None else [self.units.index(int(u)) for u in row_units]

    def __call__(self, tokens: Tensor, t: int, progress: float) -> Tensor:
        strengths = self.schedule.at(int(t), progress)
        if not strengths.any():
            return tokens
        if self.mode == "add":
            vectors = strengths[:, None] * self.directions  # [U, C]
            if self.row_index is None:
                push = vectors.sum(0)
            else:
                if tokens.shape[0] != len(self.row_index):
                    raise LVOError(f"steering expects {len(self.row_index)} rows (units × seeds), got "
                                   f"{tokens.shape[0]}; keep the latent batch as made by Steering Init")
                push = vectors[self.row_index]
            return AddDirection(push, strength=1.0)(tokens)
        for unit, factor in zip(self.units, strengths.tolist()):
            if factor != 0:
                tokens = EditFeature(self.sae, unit, scale=factor)(tokens)
        return tokens
