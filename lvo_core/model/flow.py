"""Flow-matching noise (FLUX.1, SD3): ``x_σ = (1 − σ)·z + σ·ε`` and a velocity-predicting model, ``v = ε − z``.

Timesteps stay integers 0…T−1 as everywhere in LVO. Integer ``t`` means the unshifted time ``u = (t + 1) / T`` —
the entries of diffusers' ``FlowMatchEulerDiscreteScheduler`` training table, read from the clean end: its
``sigmas[T − 1 − t]`` — so ``t = T − 1`` is pure noise (σ = 1) and ``t = 0`` the least noise the model was trained
on. The schedule's shift ``s`` then gives ``σ_t = s·u / (1 + (s − 1)·u)``, diffusers' formula; ComfyUI's FLUX
``shift`` is ``log s`` (its ``flux_time_shift``), and diffusers' resolution-dependent shift of FLUX.1-dev is
``s = exp(μ)`` with μ from :func:`dynamic_shift_mu`.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import LVOError
from .noise import check_timesteps
from .schedule import table_on


def dynamic_shift_mu(image_seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
                     base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """FLUX.1-dev's μ for an image of ``image_seq_len`` packed tokens: linear in the token count between
    ``(base_seq_len, base_shift)`` and ``(max_seq_len, max_shift)`` (the defaults of its scheduler config)."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + slope * (image_seq_len - base_seq_len)


def shift_from_config(config: Any, image_seq_len: int) -> float:
    """The multiplicative shift ``s`` a diffusers flow-matching scheduler config implies for ``image_seq_len``
    tokens: its ``shift``, or ``exp(μ)`` when it shifts by resolution (``use_dynamic_shifting``, FLUX.1-dev)."""
    get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    if get("use_dynamic_shifting", False):
        if get("time_shift_type", "exponential") != "exponential":
            raise LVOError("only exponential resolution-dependent shifting (FLUX's) is supported")
        return math.exp(dynamic_shift_mu(image_seq_len, get("base_image_seq_len", 256), get("max_image_seq_len", 4096),
                                         get("base_shift", 0.5), get("max_shift", 1.15)))
    return float(get("shift", 1.0))


class FlowMatchSchedule:
    """Rectified-flow training noise with a fixed shift; the model predicts the velocity ``v = ε − z``."""

    def __init__(self, num_timesteps: int = 1000, shift: float = 1.0):
        if num_timesteps < 2:
            raise LVOError(f"a flow-matching schedule needs at least 2 timesteps, got {num_timesteps}")
        if not (math.isfinite(shift) and shift > 0):
            raise LVOError(f"flow-matching shift must be a positive number, got {shift}")
        self.T, self.shift = int(num_timesteps), float(shift)
        u = torch.arange(1, self.T + 1, dtype=torch.float64) / self.T
        self.sigmas = self.shift * u / (1 + (self.shift - 1) * u)  # σ_t for t = 0…T−1, increasing
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_timesteps(self) -> int:
        return self.T

    def check(self, timesteps: Sequence[int] | Tensor) -> Tensor:
        return check_timesteps(timesteps, self.sigmas)

    def sigma(self, t: Tensor | Sequence[int], like: Tensor | None = None) -> Tensor:
        """σ_t per timestep (float64 on the CPU, or ``like``'s device and dtype)."""
        t = self.check(t)
        if like is None:
            return self.sigmas[t]
        return table_on(self.sigmas, like, self._cache)[t.to(like.device)]

    def timestep_of(self, sigma: Tensor | float) -> Tensor:
        """The integer timestep nearest to σ (inverts the shift): how ComfyUI's σ values map to LVO's t."""
        s = torch.as_tensor(sigma, dtype=torch.float64).clamp(0, 1)
        u = s / (self.shift - (self.shift - 1) * s)
        return (u * self.T - 1).round().clamp(0, self.T - 1).long()

    def _per_row(self, t: Tensor, like: Tensor) -> Tensor:
        return self.sigma(t, like).reshape(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, z: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        s = self._per_row(t, z)
        return (1 - s) * z + s * noise

    def to_eps(self, output: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """ε from the velocity: ``x = (1 − σ)z + σε`` and ``v = ε − z`` give ``ε = x + (1 − σ)·v``."""
        s = self._per_row(t, x_t)
        return x_t + (1 - s) * output.to(x_t.dtype)

    def sampler(self, steps: int | None = None) -> Any:
        return flow_sampler(self)

    def signature(self) -> bytes:
        return b"flow" + struct.pack("<id", self.T, self.shift)

    def describe(self) -> dict:
        return {"kind": "flow", "timesteps": self.T, "shift": self.shift}


def _indexed_scheduler_class():
    from diffusers import FlowMatchEulerDiscreteScheduler

    class _Indexed(FlowMatchEulerDiscreteScheduler):
        """diffusers' flow-matching Euler sampler whose ``timesteps`` are LVO's integer timesteps (as floats:
        ``step`` refuses integer tensors) and whose σ are exactly the schedule's σ_t at those timesteps, so what a
        sampling loop reports per step (activity, steering gates) means the same t that ``add_noise`` uses."""

        init_noise_sigma = 1.0

        def scale_model_input(self, sample: Tensor, timestep: Any = None) -> Tensor:
            return sample

        def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, **kwargs: Any) -> None:
            if kwargs:
                raise LVOError("the LVO flow sampler picks its own timesteps; give only the number of steps")
            T = self.config.num_train_timesteps
            if not 1 <= num_inference_steps <= T:
                raise LVOError(f"steps must be between 1 and {T}, got {num_inference_steps}")
            # diffusers' own spacing of the unshifted times, then each rounded to a training timestep
            u = torch.linspace(self.sigma_max, self.sigma_min, num_inference_steps, dtype=torch.float64)
            t = (u * T - 1).round().clamp(0, T - 1)
            super().set_timesteps(sigmas=((t + 1) / T).tolist(), device=device)
            self.timesteps = t.to(device=device, dtype=torch.float32)

    return _Indexed


_SAMPLER_CLASS: list = []


def flow_sampler(schedule: FlowMatchSchedule) -> Any:
    """A fresh diffusers ``FlowMatchEulerDiscreteScheduler`` (fixed shift) over LVO's integer timesteps."""
    if not _SAMPLER_CLASS:  # made on first use, so importing this module does not import diffusers
        _SAMPLER_CLASS.append(_indexed_scheduler_class())
    return _SAMPLER_CLASS[0](num_train_timesteps=schedule.T, shift=schedule.shift)
