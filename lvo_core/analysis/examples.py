"""Dataset examples: the images that activate a unit most, ranked, with a heatmap of *where* it fires.

The reference lists the generations in which a unit was in the top-20 without ranking them; we rank by the unit's
spatial-mean activation and keep its per-position map, upsampled onto the image as an overlay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import ActivityError, LVOError
from ..hookpoints import check_sae_fits
from ..model.backend import Backend
from ..model.hooks import capture
from ..sae.model import SparseAutoencoder
from .activity import spatial_map

# A perceptually ordered dark-to-bright ramp (black → purple → orange → yellow), interpolated linearly.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32) / 255


@dataclass
class Example:
    """One ranked dataset example of a unit."""

    index: int
    score: float
    heatmap: np.ndarray  # [h, w] activation map at block resolution
    timestep: int | None = None
    prompt: str | None = None


def colorize(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Map values ≥ 0 to RGB floats in [0, 1] with a dark-to-bright ramp; ``vmax`` fixes the top of the scale."""
    v = np.clip(np.asarray(values, np.float32), 0, None)
    top = float(vmax) if vmax is not None else float(v.max())
    v = v / top if top > 0 else np.zeros_like(v)
    pos = np.clip(v, 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    return _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.55, vmax: float | None = None) -> np.ndarray:
    """Blend a heatmap (any resolution, bilinear-upsampled by PIL) over an ``[H, W, 3]`` image in [0, 1]."""
    img = np.asarray(image, np.float32)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise LVOError(f"expected an [H, W, 3] image, got shape {img.shape}")
    h, w = img.shape[:2]
    resized = np.asarray(Image.fromarray(np.asarray(heatmap, np.float32), mode="F").resize((w, h), Image.BILINEAR))
    color = colorize(resized, vmax)
    weight = alpha * (np.clip(resized, 0, None) / (vmax or max(float(resized.max()), 1e-12)))[..., None]
    return np.clip(img * (1 - weight) + color * weight, 0, 1)


def rank_examples(maps: Tensor | np.ndarray, k: int = 8, by: str = "mean",
                  prompts: Sequence[str] | None = None, timestep: int | None = None) -> list[Example]:
    """Rank images by a unit's activation map ``[N, h, w]`` (spatial ``mean``, the paper's unit, or ``max``)."""
    m = maps.detach().float().cpu().numpy() if isinstance(maps, Tensor) else np.asarray(maps, np.float32)
    if m.ndim != 3 or not len(m):
        raise ActivityError(f"expected activation maps of shape [N, h, w] with N ≥ 1, got {m.shape}")
    if by not in ("mean", "max"):
        raise LVOError(f"rank by 'mean' or 'max', got '{by}'")
    scores = m.reshape(len(m), -1).mean(1) if by == "mean" else m.reshape(len(m), -1).max(1)
    order = sorted(range(len(m)), key=lambda i: (-scores[i], i))[:k]
    return [Example(i, float(scores[i]), m[i], timestep, prompts[i] if prompts else None) for i in order]


@torch.no_grad()
def generate_with_maps(backend: Backend, prompts: Sequence[str], encode_prompt: Callable[[list[str]], Tensor] | None,
                       unit: int, timestep: int, *, sae: SparseAutoencoder | None = None,
                       seeds: Sequence[int] | None = None, steps: int = 50, guidance: float = 7.5,
                       latent_shape: Sequence[int] | None = None, batch_size: int = 4,
                       on_progress: Callable[[int, int], None] | None = None, scheduler: Any = None
                       ) -> tuple[Tensor, Tensor, int]:
    """Generate from ``prompts`` with the backend and record ``unit``'s map at its hooked block at the sampled
    timestep nearest ``timestep``; ``encode_prompt`` (None: the backend's) and ``scheduler`` (None: its sampler).

    Returns the final latents ``[N, C, h, w]``, the maps ``[N, H, W]`` and the timestep actually used;
    ``on_progress(image-steps done, prompts × steps)`` after every denoising step.
    """
    point = backend.hookpoint
    encode_prompt = encode_prompt or backend.encode_prompt
    if encode_prompt is None:
        raise LVOError("generating examples encodes prompts: give encode_prompt (this backend has no prompt encoder)")
    if sae is not None:
        check_sae_fits(sae.d_in, point, backend.denoiser)
        sae.check_features([unit])
    elif not 0 <= unit < point.channels:
        raise ActivityError(f"channel {unit} is out of range: block '{point.diffusers_name}' has {point.channels}")
    seeds = list(seeds) if seeds is not None else list(range(len(prompts)))
    size = latent_shape or backend.latent_shape
    scheduler = scheduler if scheduler is not None else backend.sampler(steps)
    scheduler.set_timesteps(steps)
    ts = [int(t) for t in scheduler.timesteps]
    step_index = int(np.argmin([abs(t - timestep) for t in ts]))
    uncond = encode_prompt([""]) if guidance != 1.0 else None
    latents, maps = [], []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        with capture(backend.denoiser, point, rows="cond" if guidance != 1.0 else None) as rec:
            def on_step(i: int, _t: int, _x: Tensor) -> None:
                if i == step_index:
                    maps.append(spatial_map(rec.tokens[-1], rec.hw, unit, sae))
                rec.clear()
                if on_progress is not None:
                    on_progress(start * steps + (i + 1) * len(chunk), len(prompts) * steps)

            latents.append(backend.sample(encode_prompt(chunk), uncond=uncond, guidance=guidance, steps=steps,
                                          seeds=seeds[start:start + len(chunk)], latent_shape=size, on_step=on_step,
                                          scheduler=scheduler))
    return torch.cat(latents), torch.cat(maps), ts[step_index]


@torch.no_grad()
def maps_from_latents(backend, latents: Tensor, unit: int, timestep: int, sae: SparseAutoencoder | None,
                      seed: int = 0, context: Tensor | None = None) -> Tensor:
    """A unit's activation map ``[N, H, W]`` on existing clean latents noised to ``timestep`` (seeded), e.g. the
    VAE encodings of a user's images; ``context`` defaults to the empty prompt."""
    from ..model.noise import step_noise

    with torch.inference_mode(False), torch.no_grad():
        z = latents.detach().to(backend.device, torch.float32)
        t = torch.full((len(z),), int(timestep), dtype=torch.long, device=backend.device)
        eps = step_noise([seed] * len(z), 0, z.shape[1:], backend.device)
        ctx = backend.empty_context(len(z)) if context is None else context.to(backend.device).expand(len(z), -1, -1)
        tokens, hw = backend.block_tokens(backend.schedule.add_noise(z, t, eps), t, ctx)
        return spatial_map(tokens, hw, unit, sae).cpu()
