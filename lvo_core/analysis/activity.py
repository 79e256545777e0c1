"""Time-step activity analysis: at which diffusion timesteps is a unit (SAE feature or raw channel) active?

Protocol of the reference: generate from a prompt set while recording every unit's spatial-mean activation at
every scheduler timestep; for each generation and timestep take the top-N units (N = 20). A unit's *activity
profile* at t is the fraction of generations in which it is among them. Profiles are interpolated onto the integer
grid 0…1000 (units whose activation is not positive are never counted, so ties at zero cannot enter the
top-N arbitrarily); *active timesteps* are where the profile is > 0; *peaks* are local maxima at least 100 timesteps
apart, highest 3 kept. We also keep each unit's mean and maximum activation per timestep (the dataset maximum
that LVO's metrics and steering strengths are relative to) and its top-activating generations (dataset examples).

Statistics are accumulated in streaming fashion, so memory does not grow with the number of prompts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import Tensor

from ..errors import ActivityError, LVOError, SAEFormatError, UnitError
from ..fileio import atomic_write, check_safetensors_file, ensure_folder
from ..hookpoints import Hookpoint, check_sae_fits
from ..identity import digest, float_prefix
from ..model.backend import Backend
from ..model.hooks import capture
from ..sae.model import SparseAutoencoder

GRID = np.arange(1001)
FORMAT_VERSION = 1


def find_peaks(y: np.ndarray, min_distance: int = 100, top: int = 3) -> list[int]:
    """Indices of the highest local maxima of ``y``, no two closer than ``min_distance``; at most ``top``.

    Flat tops count once, at their middle; the ends of the array count as maxima when nothing beside them is
    higher (a unit most active at the noisiest timestep has its peak there). Zero-valued maxima are not peaks.
    Among peaks closer than ``min_distance`` the higher one wins (ties: the earlier), as scipy's
    ``find_peaks(distance=…)`` does.
    """
    y = np.asarray(y, dtype=np.float64)
    padded = np.concatenate([[-np.inf], y, [-np.inf]])
    candidates = []
    i = 1
    while i < len(padded) - 1:
        j = i
        while j + 1 < len(padded) - 1 and padded[j + 1] == padded[i]:
            j += 1
        if padded[i - 1] < padded[i] > padded[j + 1] and padded[i] > 0:
            candidates.append((i - 1 + j - 1) // 2)
        i = j + 1
    order = sorted(candidates, key=lambda k: (-y[k], k))
    kept: list[int] = []
    for k in order:
        if all(abs(k - other) >= min_distance for other in kept):
            kept.append(k)
    return kept[:top]


def sae_fingerprint(sae: SparseAutoencoder) -> str:
    """A short content hash of an SAE's encoder, to tell later whether an analysis belongs to it."""
    return digest((("W_enc", sae.W_enc), ("b_enc", sae.b_enc)), values=float_prefix(1 << 22), header=(),
                  extra=str((sae.d_in, sae.d_sae)).encode(), length=16)


@dataclass
class ActivityAnalysis:
    """Per-timestep statistics for a set of units. Arrays are ``[T, U]`` with T in sampling order."""

    timesteps: np.ndarray
    frequency: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    units: np.ndarray
    unit_kind: str
    hookpoint: str
    top_n: int
    num_generations: int
    example_ids: np.ndarray
    example_values: np.ndarray
    sae_id: str | None = None
    prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def column(self, unit: int) -> int:
        hits = np.flatnonzero(self.units == int(unit))
        if not len(hits):
            kind = "feature" if self.unit_kind == "sae" else "channel"
            raise UnitError(f"{kind} {unit} is not in this activity analysis (it covers {len(self.units)} units, "
                            f"{int(self.units.min())}..{int(self.units.max())}); rerun the analysis for it")
        return int(hits[0])

    def _interp(self, values: np.ndarray) -> np.ndarray:
        order = np.argsort(self.timesteps)
        return np.interp(GRID, self.timesteps[order].astype(np.float64), values[order].astype(np.float64))

    def profile(self, unit: int) -> np.ndarray:
        """Activity profile of ``unit`` on the grid 0…1000."""
        return self._interp(self.frequency[:, self.column(unit)])

    def active_timesteps(self, unit: int) -> np.ndarray:
        return GRID[self.profile(unit) > 0]

    def peaks(self, unit: int, min_distance: int = 100, top: int = 3) -> list[int]:
        """Timesteps of the unit's activity peaks, highest first."""
        return [int(GRID[i]) for i in find_peaks(self.profile(unit), min_distance, top)]

    def max_at(self, unit: int, t: int | float) -> float:
        """The unit's dataset maximum of spatial-mean activation at timestep ``t`` (linear in between)."""
        return float(self._interp(self.max[:, self.column(unit)])[int(round(float(t)))])

    def examples(self, unit: int, t: int | None = None, k: int | None = None) -> list[tuple[int, int, float]]:
        """Top-activating generations as ``(generation, timestep, value)``, best first.

        At one timestep (the sampled timestep nearest ``t``) or, with ``t=None``, over all timesteps with each
        generation listed once at its strongest timestep.
        """
        col = self.column(unit)
        rows = range(len(self.timesteps)) if t is None else [int(np.argmin(np.abs(self.timesteps - t)))]
        found: dict[int, tuple[int, int, float]] = {}
        for r in rows:
            for gen, val in zip(self.example_ids[r, col], self.example_values[r, col]):
                if gen < 0 or not np.isfinite(val):
                    continue
                if gen not in found or val > found[gen][2]:
                    found[int(gen)] = (int(gen), int(self.timesteps[r]), float(val))
        ranked = sorted(found.values(), key=lambda e: (-e[2], e[0]))
        return ranked[:k] if k else ranked

    def check_matches(self, hookpoint: str, sae: SparseAutoencoder | None) -> None:
        """Refuse an analysis made for another block or another SAE than the one about to be used."""
        from ..hookpoints import equivalent_names

        if not set(equivalent_names(hookpoint)) & set(equivalent_names(self.hookpoint)):
            raise ActivityError(f"this activity analysis was made at hookpoint '{self.hookpoint}', not "
                                f"'{hookpoint}'; rerun the analysis for '{hookpoint}'")
        if (sae is None) != (self.unit_kind == "raw"):
            raise ActivityError(f"this activity analysis is for {self.unit_kind} units but "
                                f"{'raw channels' if sae is None else 'SAE features'} were requested")
        if sae is not None and self.sae_id and self.sae_id != sae_fingerprint(sae):
            raise ActivityError("this activity analysis was made with a different SAE (its fingerprint differs); "
                                "rerun the analysis with the SAE you are using")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file: arrays as tensors, everything else as JSON in the header metadata."""
        path = Path(path)
        ensure_folder(path.parent)
        arrays = {"timesteps": self.timesteps.astype(np.int64), "frequency": self.frequency.astype(np.float32),
                  "mean": self.mean.astype(np.float32), "max": self.max.astype(np.float32),
                  "units": self.units.astype(np.int64), "example_ids": self.example_ids.astype(np.int64),
                  "example_values": self.example_values.astype(np.float32)}
        info = {"format_version": FORMAT_VERSION, "unit_kind": self.unit_kind, "hookpoint": self.hookpoint,
                "top_n": self.top_n, "num_generations": self.num_generations, "sae_id": self.sae_id,
                "prompts": self.prompts, "seeds": self.seeds, "meta": self.meta}
        atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata={"lvo_activity": json.dumps(info)}))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ActivityAnalysis":
        path = Path(path)
        check_safetensors_file(path)
        try:
            with safe_open(str(path), framework="np") as fh:
                raw = fh.metadata() or {}
                arrays = {key: fh.get_tensor(key) for key in fh.keys()}
        except Exception as exc:
            raise SAEFormatError(f"{path} is not a readable activity analysis: {exc}") from exc
        if "lvo_activity" not in raw:
            raise ActivityError(f"{path} is a safetensors file but not an activity analysis (no 'lvo_activity' "
                                f"metadata)")
        info = json.loads(raw["lvo_activity"])
        if info.get("format_version") != FORMAT_VERSION:
            raise ActivityError(f"{path} has activity format {info.get('format_version')}, expected {FORMAT_VERSION}")
        info.pop("format_version")
        return cls(**arrays, **info)


class ActivityAccumulator:
    """Streaming statistics of unit activations, fed one (generation batch, timestep) at a time."""

    def __init__(self, timesteps: Sequence[int], units: Sequence[int], top_n: int = 20, keep_examples: int = 8):
        if top_n <= 0 or keep_examples <= 0:
            raise LVOError("top_n and keep_examples must be positive")
        self.timesteps = np.asarray([int(t) for t in timesteps], dtype=np.int64)
        self.units = np.asarray(units, dtype=np.int64)
        T, U = len(self.timesteps), len(self.units)
        self.top_n, self.k = min(top_n, U), keep_examples
        self.counts = np.zeros((T, U), dtype=np.int64)
        self.sums = np.zeros((T, U), dtype=np.float64)
        self.maxima = np.full((T, U), -np.inf, dtype=np.float32)
        self.seen = np.zeros(T, dtype=np.int64)
        self.ex_vals = np.full((T, U, keep_examples), -np.inf, dtype=np.float32)
        self.ex_ids = np.full((T, U, keep_examples), -1, dtype=np.int64)

    def update(self, step: int, acts: Tensor | np.ndarray, generation_ids: Sequence[int]) -> None:
        """Add spatial-mean activations ``acts`` ``[B, U]`` of generations ``generation_ids`` at ``timesteps[step]``."""
        a = acts.detach().float().cpu().numpy() if isinstance(acts, Tensor) else np.asarray(acts, np.float32)
        if a.ndim != 2 or a.shape[1] != len(self.units):
            raise LVOError(f"expected activations of shape [B, {len(self.units)}], got {a.shape}")
        if not np.isfinite(a).all():
            raise ActivityError(f"non-finite unit activations at timestep {self.timesteps[step]}; the model or "
                                f"SAE produced NaN/inf")
        ids = np.asarray(generation_ids, dtype=np.int64)
        top = np.argsort(-a, axis=1, kind="stable")[:, : self.top_n]
        positive = np.take_along_axis(a, top, 1) > 0  # a unit at zero is not "active", whatever its rank
        np.add.at(self.counts[step], top[positive], 1)
        self.sums[step] += a.sum(0)
        self.maxima[step] = np.maximum(self.maxima[step], a.max(0))
        self.seen[step] += len(a)
        vals = np.concatenate([self.ex_vals[step], a.T], axis=1)  # [U, K + B]
        gens = np.concatenate([self.ex_ids[step], np.broadcast_to(ids, (len(self.units), len(ids)))], axis=1)
        best = np.argsort(-vals, axis=1, kind="stable")[:, : self.k]
        self.ex_vals[step] = np.take_along_axis(vals, best, 1)
        self.ex_ids[step] = np.take_along_axis(gens, best, 1)

    def result(self, **info: Any) -> ActivityAnalysis:
        if not self.seen.any():
            raise ActivityError("no activations were recorded; the analysis needs at least one generation")
        n = np.maximum(self.seen, 1)[:, None]
        return ActivityAnalysis(
            timesteps=self.timesteps, frequency=(self.counts / n).astype(np.float32),
            mean=(self.sums / n).astype(np.float32), max=np.where(np.isfinite(self.maxima), self.maxima, 0.0),
            units=self.units, top_n=self.top_n, num_generations=int(self.seen.max()),
            example_ids=self.ex_ids, example_values=np.where(self.ex_ids >= 0, self.ex_vals, -np.inf), **info)


def analyze_captured(acts: Tensor | np.ndarray, timesteps: Sequence[int], *, hookpoint: str,
                     units: Sequence[int] | None = None, sae: SparseAutoencoder | None = None, top_n: int = 20,
                     keep_examples: int = 8, **info: Any) -> ActivityAnalysis:
    """Activity analysis from spatial-mean activations captured elsewhere, ``[G generations, T timesteps, U]``."""
    a = acts.detach().float().cpu().numpy() if isinstance(acts, Tensor) else np.asarray(acts, np.float32)
    if a.ndim != 3 or a.shape[1] != len(timesteps):
        raise ActivityError(f"expected activations [generations, {len(timesteps)} timesteps, units], got {a.shape}")
    acc = ActivityAccumulator(timesteps, units if units is not None else range(a.shape[2]), top_n, keep_examples)
    for step in range(a.shape[1]):
        acc.update(step, a[:, step], range(a.shape[0]))
    return acc.result(unit_kind="raw" if sae is None else "sae", hookpoint=hookpoint,
                      sae_id=sae_fingerprint(sae) if sae is not None else None, **info)


def unit_activations(tokens: Tensor, sae: SparseAutoencoder | None, units: Sequence[int] | None = None) -> Tensor:
    """Spatial-mean activation of each unit, ``[B, U]``, from block tokens ``[B, H·W, C]``.

    SAE units use the dense ReLU pre-activation (no TopK), raw units the channel value — the paper's definition.
    """
    if sae is None:
        values = tokens if units is None else tokens[..., list(units)]
    else:
        values = sae.dense_acts(tokens, units)
    return values.float().mean(dim=1)


def spatial_map(tokens: Tensor, hw: tuple[int, int], unit: int, sae: SparseAutoencoder | None) -> Tensor:
    """Per-position activation of one unit, ``[B, H, W]`` — the heatmap behind a dataset example."""
    values = tokens[..., unit] if sae is None else sae.dense_acts(tokens, [unit])[..., 0]
    return values.float().reshape(tokens.shape[0], *hw)


@torch.no_grad()
def analyze_activity(backend: Backend, prompts: Sequence[str],
                     encode_prompt: Callable[[list[str]], Tensor] | None = None, *,
                     sae: SparseAutoencoder | None = None, seeds: Sequence[int] | None = None, steps: int = 50,
                     guidance: float = 7.5, latent_shape: Sequence[int] | None = None, top_n: int = 20,
                     keep_examples: int = 8, batch_size: int = 4, rows: str = "cond",
                     on_generation: Callable[[int, int, Tensor], None] | None = None,
                     on_progress: Callable[[int, int], None] | None = None, scheduler: Any = None) -> ActivityAnalysis:
    """Generate one image per prompt (seeded) with the backend and accumulate every unit's activity at its hooked
    block at every timestep.

    With CFG the model sees ``[uncond; cond]``; statistics come from the conditional half (``rows="cond"``), which
    fixes the reference's mix-up of halves. ``encode_prompt`` defaults to the backend's; ``scheduler`` to its
    sampler. ``on_generation(first_id, count, final_latents)`` receives each batch's final latents (to decode and
    keep the dataset images); ``on_progress(image-steps done, prompts × steps)`` after every denoising step.
    """
    if not prompts:
        raise ActivityError("no prompts given; activity analysis needs at least one prompt")
    encode_prompt = encode_prompt or backend.encode_prompt
    if encode_prompt is None:
        raise LVOError("activity analysis encodes prompts: give encode_prompt (this backend has no prompt encoder)")
    point: Hookpoint = backend.hookpoint
    if sae is not None:
        check_sae_fits(sae.d_in, point, backend.denoiser)
    seeds = list(seeds) if seeds is not None else list(range(len(prompts)))
    if len(seeds) != len(prompts):
        raise LVOError(f"got {len(seeds)} seeds for {len(prompts)} prompts; give one seed per prompt")
    size = latent_shape or backend.latent_shape
    units = np.arange(sae.d_sae if sae is not None else point.channels)
    scheduler = scheduler if scheduler is not None else backend.sampler(steps)
    scheduler.set_timesteps(steps)
    acc = ActivityAccumulator([int(t) for t in scheduler.timesteps], units, top_n, keep_examples)
    uncond = encode_prompt([""]) if guidance != 1.0 else None
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        ids = list(range(start, start + len(chunk)))
        cond = encode_prompt(chunk)
        with capture(backend.denoiser, point, rows=rows if guidance != 1.0 else None) as rec:
            def on_step(i: int, _t: int, _latents: Tensor) -> None:
                acc.update(i, unit_activations(rec.tokens[-1], sae), ids)
                rec.clear()
                if on_progress is not None:
                    on_progress(start * steps + (i + 1) * len(chunk), len(prompts) * steps)

            latents = backend.sample(cond, uncond=uncond, guidance=guidance, steps=steps,
                                     seeds=seeds[start:start + len(chunk)], latent_shape=size, on_step=on_step,
                                     scheduler=scheduler)
        if on_generation is not None:
            on_generation(start, len(chunk), latents)
    return acc.result(unit_kind="raw" if sae is None else "sae", hookpoint=point.diffusers_name,
                      sae_id=sae_fingerprint(sae) if sae is not None else None, prompts=list(prompts), seeds=seeds,
                      meta={"steps": steps, "guidance": guidance, "scheduler": type(scheduler).__name__,
                            "latent_shape": list(size), "rows": rows})
