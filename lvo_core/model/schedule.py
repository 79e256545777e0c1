"""How a backend's model sees noise: the one place that differs between DDPM-family UNets and flow-matching DiTs.

Every stage that noises a latent to a timestep (the optimizer, metrics, the bank, faithfulness checks, feature
search), turns a model output into ε (the diffusion-prior term) or samples (priors, banks) asks the backend's
:class:`NoiseSchedule`, so none of them branches on the architecture. Timesteps are integers 0…T−1 everywhere;
what a timestep means (ᾱ_t, or σ_t for flow matching) is the schedule's business.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch
from torch import Tensor

from .noise import add_noise, check_timesteps


class NoiseSchedule(Protocol):
    """What LVO needs to know about a model's training noise."""

    @property
    def num_timesteps(self) -> int: ...

    def check(self, timesteps: Sequence[int] | Tensor) -> Tensor:
        """Timesteps as a long tensor, refusing any outside 0…T−1 with a message naming the valid range."""

    def add_noise(self, z: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Noise clean latents ``z`` to timesteps ``t`` (one per row, or one for all) as training did."""

    def to_eps(self, output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The model's output at ``x_t`` expressed as the noise ε it implies."""

    def sampler(self) -> Any:
        """A fresh diffusers scheduler that samples this model's schedule (for priors and banks)."""

    def signature(self) -> bytes:
        """Bytes that change whenever the schedule does (part of sample-bank fingerprints)."""

    def describe(self) -> dict:
        """A JSON-able summary for result records."""


class DDPMSchedule:
    """ε-prediction with ``z_t = sqrt(ᾱ_t)·z + sqrt(1 − ᾱ_t)·ε`` over the model's own ᾱ table (SD1.x/2.x, SDXL)."""

    def __init__(self, alphas: Tensor):
        self.alphas = torch.as_tensor(alphas, dtype=torch.float64).cpu()
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_timesteps(self) -> int:
        return len(self.alphas)

    def _table(self, like: Tensor) -> Tensor:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = self.alphas.to(device=like.device, dtype=like.dtype)
        return self._cache[key]

    def check(self, timesteps: Sequence[int] | Tensor) -> Tensor:
        return check_timesteps(timesteps, self.alphas)

    def add_noise(self, z: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return add_noise(z, t, self._table(z), noise)

    def to_eps(self, output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        return output

    def sampler(self) -> Any:
        from .sampling import ddim_from_alphas

        return ddim_from_alphas(self.alphas)

    def signature(self) -> bytes:
        return self.alphas.numpy().tobytes()

    def describe(self) -> dict:
        return {"kind": "ddpm", "timesteps": self.num_timesteps}


def as_schedule(schedule: NoiseSchedule | Tensor) -> NoiseSchedule:
    """A schedule from a schedule or an ᾱ table (the form ComfyUI's sigmas and diffusers' schedulers give)."""
    return DDPMSchedule(schedule) if isinstance(schedule, Tensor) else schedule
