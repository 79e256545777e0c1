"""Regularization of latent optimization, carried over from pixel-space feature visualization.

* **Augmentations** of the latent before each forward pass (robustness): integer jitter (circular roll),
  rotation and zoom (bilinear, zero fill) — one seeded random draw per step, shared by the batch.
* **Penalties** on the un-augmented latent: total variation, range (values beyond ±τ) and moment (mean 0, std 1).
  They are computed **per batch row**, because rows that optimize different units must not pull on each other.
* **Gradient transforms**: spectral preconditioning (each frequency scaled by 1/(r+1), then rescaled to the
  gradient's own std) and a Gaussian blur whose σ decays linearly over the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import LVOError


# ------------------------------------------------------------------------------------------------ augmentations
@dataclass(frozen=True)
class AugmentDraw:
    """One random draw of the augmentation: integer shifts, angle in degrees, zoom factor."""

    dy: int = 0
    dx: int = 0
    angle: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class Augment:
    """Ranges of the latent augmentation: jitter ±``jitter`` pixels, rotation ±``rotate`` degrees, zoom in
    ``[1, zoom]``. The defaults are the reference's (robustness level L1)."""

    jitter: int = 1
    rotate: float = 5.0
    zoom: float = 1.1

    def __post_init__(self) -> None:
        if self.jitter < 0 or self.rotate < 0 or self.zoom < 1:
            raise LVOError(f"augmentation ranges need jitter ≥ 0, rotate ≥ 0, zoom ≥ 1; got {self}")

    @property
    def is_identity(self) -> bool:
        return self.jitter == 0 and self.rotate == 0 and self.zoom == 1

    def draw(self, generator: torch.Generator) -> AugmentDraw:
        """Draw shifts, angle and zoom from ``generator`` (CPU), always consuming the same numbers."""
        u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        shift = lambda v: min(int(v * (2 * self.jitter + 1)), 2 * self.jitter) - self.jitter  # noqa: E731
        return AugmentDraw(dy=shift(u[0]), dx=shift(u[1]), angle=(2 * u[2] - 1) * self.rotate,
                           scale=1 + u[3] * (self.zoom - 1))


ROBUSTNESS_LEVELS = {
    "L0": Augment(0, 0.0, 1.0),
    "L1": Augment(1, 5.0, 1.1),
    "L2": Augment(8, 15.0, 1.2),
    "L3": Augment(16, 45.0, 1.8),
}


def augment(z: Tensor, draw: AugmentDraw) -> Tensor:
    """Apply one draw to ``z`` ``[B, C, H, W]``: roll, then rotate and zoom about the centre (differentiable).

    A positive angle turns the image counter-clockwise as displayed; zoom > 1 magnifies (never samples outside).
    """
    if draw.dy or draw.dx:
        z = torch.roll(z, shifts=(draw.dy, draw.dx), dims=(-2, -1))
    if draw.angle == 0 and draw.scale == 1:
        return z
    a = math.radians(draw.angle)
    cos, sin = math.cos(a) / draw.scale, math.sin(a) / draw.scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=z.dtype, device=z.device)
    grid = F.affine_grid(theta.expand(z.shape[0], 2, 3), list(z.shape), align_corners=False)
    return F.grid_sample(z, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ------------------------------------------------------------------------------------------------ penalties
def total_variation(z: Tensor) -> Tensor:
    """Per row: mean |Δ_h z| + mean |Δ_w z|."""
    dh = (z[..., 1:, :] - z[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (z[..., :, 1:] - z[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def range_penalty(z: Tensor, tau: float = 3.0) -> Tensor:
    """Per row: mean ReLU(|z| − τ)², zero while every value stays within ±τ."""
    return F.relu(z.abs() - tau).pow(2).flatten(1).mean(1)


def moment_penalty(z: Tensor) -> Tensor:
    """Per row: |mean z| + |std z − 1| — keeps the latent's statistics near the N(0, I) prior."""
    flat = z.flatten(1)
    return flat.mean(1).abs() + (flat.std(1) - 1).abs()


# ------------------------------------------------------------------------------------------------ gradient transforms
def radial_frequency(h: int, w: int, device: torch.device | str = "cpu") -> Tensor:
    """|f| on the FFT grid in integer cycles per image: sqrt(f_y² + f_x²), 0 at DC."""
    fy = torch.fft.fftfreq(h, d=1.0 / h, device=device)
    fx = torch.fft.fftfreq(w, d=1.0 / w, device=device)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def spectral_precondition(grad: Tensor) -> Tensor:
    """Scale each spatial frequency of the gradient by 1/(r+1) (DC keeps weight 1), then rescale each row to the
    std it had before, so the transform reshapes the gradient without changing the step size."""
    h, w = grad.shape[-2:]
    weight = 1.0 / (radial_frequency(h, w, grad.device) + 1.0)
    shaped = torch.fft.ifft2(torch.fft.fft2(grad.float()) * weight).real
    before = grad.float().flatten(1).std(1)
    after = shaped.flatten(1).std(1)
    factor = torch.where(after > 0, before / after.clamp_min(1e-30), torch.ones_like(after))
    return (shaped * factor.reshape(-1, *([1] * (grad.ndim - 1)))).to(grad.dtype)


def blur_sigma(step: int, steps: int, start: float) -> float:
    """σ of the gradient blur at ``step``: linear from ``start`` at step 0 to 0 at the last step."""
    if steps <= 1:
        return float(start)
    return float(start) * (1 - step / (steps - 1))


def gaussian_kernel(sigma: float, size: int = 9) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def gaussian_blur(grad: Tensor, sigma: float, size: int = 9) -> Tensor:
    """Separable Gaussian blur per channel (reflect padding where the image is large enough); σ = 0 is identity."""
    if sigma <= 0:
        return grad
    k = gaussian_kernel(sigma, size).to(device=grad.device, dtype=grad.dtype)
    c = grad.shape[1]
    pad = size // 2
    mode = "reflect" if min(grad.shape[-2:]) > pad else "replicate"
    x = F.pad(grad, (pad, pad, 0, 0), mode=mode)
    x = F.conv2d(x, k.reshape(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    x = F.pad(x, (0, 0, pad, pad), mode=mode)
    return F.conv2d(x, k.reshape(1, 1, size, 1).expand(c, 1, size, 1), groups=c)
