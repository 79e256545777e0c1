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

from ..errors import LVOError
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

    def sampler(self, steps: int) -> Any:
        """A fresh diffusers scheduler that samples this model's schedule in ``steps`` steps (priors, banks)."""

    def signature(self) -> bytes:
        """Bytes that change whenever the schedule does (part of sample-bank fingerprints)."""

    def describe(self) -> dict:
        """A JSON-able summary for result records."""


FEW_STEPS = 4  # at most this many sampling steps: a distilled few-step model (SDXL-Turbo), sampled from t = T−1


class DDPMSchedule:
    """ε-prediction with ``z_t = sqrt(ᾱ_t)·z + sqrt(1 − ᾱ_t)·ε`` over the model's own ᾱ table (SD1.x/2.x, SDXL).

    Sampling uses DDIM with the model's ``timestep_spacing`` (SD's ``leading`` unless its scheduler config says
    otherwise); with ``FEW_STEPS`` steps or fewer it switches to ``trailing`` spacing, so the first step starts at
    t = T−1 as SDXL-Turbo is sampled — leading spacing would start a 1-step run at t = 1, from a clean latent.
    """

    def __init__(self, alphas: Tensor, timestep_spacing: str = "leading"):
        self.alphas = torch.as_tensor(alphas, dtype=torch.float64).cpu()
        if timestep_spacing not in ("leading", "trailing", "linspace"):
            raise LVOError(f"timestep_spacing must be leading, trailing or linspace, got '{timestep_spacing}'")
        self.timestep_spacing = timestep_spacing
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_timesteps(self) -> int:
        return len(self.alphas)

    def check(self, timesteps: Sequence[int] | Tensor) -> Tensor:
        return check_timesteps(timesteps, self.alphas)

    def add_noise(self, z: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return add_noise(z, t, table_on(self.alphas, z, self._cache), noise)

    def to_eps(self, output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        return output

    def spacing(self, steps: int) -> str:
        return "trailing" if steps <= FEW_STEPS else self.timestep_spacing

    def sampler(self, steps: int) -> Any:
        from .sampling import ddim_from_alphas

        return ddim_from_alphas(self.alphas, self.spacing(steps))

    def signature(self) -> bytes:
        spacing = b"" if self.timestep_spacing == "leading" else self.timestep_spacing.encode()
        return self.alphas.numpy().tobytes() + spacing

    def describe(self) -> dict:
        return {"kind": "ddpm", "timesteps": self.num_timesteps, "timestep_spacing": self.timestep_spacing}


def table_on(table: Tensor, like: Tensor, cache: dict[tuple, Tensor]) -> Tensor:
    """``table`` on ``like``'s device and dtype, moved once per (device, dtype) and kept in ``cache``: schedules
    index it on every optimizer step."""
    key = (like.device, like.dtype)
    if key not in cache:
        cache[key] = table.to(device=like.device, dtype=like.dtype)
    return cache[key]


def as_schedule(schedule: NoiseSchedule | Tensor) -> NoiseSchedule:
    """A schedule from a schedule or an ᾱ table (the form ComfyUI's sigmas and diffusers' schedulers give)."""
    return DDPMSchedule(schedule) if isinstance(schedule, Tensor) else schedule
