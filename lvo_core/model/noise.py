"""Schedule-matched noise injection: noise a clean latent to timestep t exactly as the model was trained to see it,

    z_t = sqrt(ᾱ_t) · z + sqrt(1 − ᾱ_t) · ε,

with ᾱ from the model's own 1000-step training schedule — a diffusers scheduler's ``alphas_cumprod``, or
ComfyUI's sigma table (ᾱ = 1 / (1 + σ²) for ε-prediction models). ε is fresh at every optimization step and seeded
per batch row and step, so a row's noise does not depend on its batch neighbours.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..errors import LVOError, TimestepError
from .sampling import seeded_noise


def alphas_from_scheduler(scheduler) -> Tensor:
    """ᾱ_t for t = 0…T−1 from any diffusers scheduler (its training schedule, not the inference subset)."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        raise LVOError(f"{type(scheduler).__name__} has no alphas_cumprod; give a DDPM-family scheduler "
                         f"or a sigma table")
    return torch.as_tensor(alphas, dtype=torch.float64).clone()


def alphas_from_sigmas(sigmas: Tensor | Sequence[float]) -> Tensor:
    """ᾱ_t = 1 / (1 + σ_t²), for a sigma table indexed by training timestep (ComfyUI's ``model_sampling.sigmas``)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.ndim != 1 or not torch.isfinite(s).all() or (s < 0).any():
        raise TimestepError("sigma table must be a 1-D tensor of finite, non-negative values")
    return 1.0 / (1.0 + s ** 2)


def check_timesteps(timesteps: Sequence[int] | Tensor, alphas: Tensor) -> Tensor:
    """Timesteps as a long tensor, refusing any outside the training schedule 0…T−1."""
    t = torch.as_tensor(timesteps)
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise TimestepError(f"timesteps must be integers, got {t.tolist()}")
        t = t.long()
    bad = t[(t < 0) | (t >= len(alphas))]
    if len(bad):
        raise TimestepError(f"timestep {int(bad[0])} is outside the schedule: valid timesteps are 0…{len(alphas) - 1}")
    return t.long()


def add_noise(z: Tensor, timesteps: Sequence[int] | Tensor, alphas: Tensor, noise: Tensor) -> Tensor:
    """``sqrt(ᾱ_t)·z + sqrt(1 − ᾱ_t)·noise`` with one timestep per batch row (or one for all rows)."""
    t = check_timesteps(timesteps, alphas).to(alphas.device)
    a = alphas[t].to(device=z.device, dtype=z.dtype)
    a = a.reshape(-1, *([1] * (z.ndim - 1)))
    return a.sqrt() * z + (1 - a).sqrt() * noise


def step_noise(seeds: Sequence[int], step: int, shape: Sequence[int], device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Fresh ε for optimization step ``step``: one row per seed, drawn on the CPU from a generator seeded by
    ``(seed, step)``, so the same seed and step give the same noise on every device and in every batch."""
    return seeded_noise([(int(seed) * 1_000_003 + int(step) * 7919 + 17) % (2 ** 63 - 1) for seed in seeds],
                        shape, device, dtype)
