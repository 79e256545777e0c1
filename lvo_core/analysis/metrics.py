"""Numbers reported with every visualization, so LVO's images can be judged rather than only looked at.

All activations are measured the way the activity analysis measured the dataset maximum — the unit's spatial mean
(dense ReLU pre-activation for SAE features, the channel value for raw units) on the latent noised to the row's
timestep — averaged over a few fixed evaluation noise draws that the optimizer never saw. So ``ratio`` (activation
reached ÷ dataset maximum at that timestep) compares like with like.

* ``activation`` / ``prior_activation``: the unit on the optimized latent / on the starting latent.
* ``dataset_max`` and ``ratio``: from an :class:`~lvo_core.analysis.activity.ActivityAnalysis`, when one is given.
* ``selectivity``: target minus the mean of all other units of the layer on the same input; ``rank``: the target's
  place among all units (1 = the most active unit of the layer).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import LVOError
from ..model.backend import Backend
from ..model.noise import step_noise
from ..sae.model import SparseAutoencoder
from .activity import ActivityAnalysis, unit_activations

EVAL_STEP_OFFSET = 1 << 30  # evaluation noise uses step indices the optimizer never reaches


def layer_activations(backend: Backend, latents: Tensor, timesteps: Sequence[int] | Tensor, seeds: Sequence[int],
                      sae: SparseAutoencoder | None, samples: int = 4) -> Tensor:
    """Spatial-mean activation of every unit of the layer, ``[B, U]``, averaged over ``samples`` noise draws."""
    with torch.inference_mode(False), torch.no_grad():  # leaving inference mode re-enables grad: switch it off
        device = backend.device
        t = backend.schedule.check(timesteps).to(device)
        t = t.expand(latents.shape[0]) if t.ndim == 0 or len(t) == 1 else t
        z = latents.detach().to(device=device, dtype=torch.float32)
        context = backend.empty_context(z.shape[0])
        total = None
        for s in range(max(1, samples)):
            eps = step_noise(seeds, EVAL_STEP_OFFSET + s, z.shape[1:], device, torch.float32)
            tokens, _ = backend.block_tokens(backend.schedule.add_noise(z, t, eps), t, context)
            acts = unit_activations(tokens, sae)
            total = acts if total is None else total + acts
        return (total / max(1, samples)).float().cpu()


def unit_metrics(backend: Backend, units: Sequence[int], latents: Tensor, init_latents: Tensor,
                 timesteps: Sequence[int], seeds: Sequence[int], sae: SparseAutoencoder | None,
                 analysis: ActivityAnalysis | None = None, samples: int = 4) -> list[dict[str, Any]]:
    """One metrics dict per row (see the module docstring)."""
    final = layer_activations(backend, latents, timesteps, seeds, sae, samples)
    prior = layer_activations(backend, init_latents, timesteps, seeds, sae, samples)
    rows = []
    for b, unit in enumerate(units):
        acts = final[b]
        target = float(acts[unit])
        others = torch.cat([acts[:unit], acts[unit + 1:]])
        row = {"unit": int(unit), "timestep": int(timesteps[b]), "seed": int(seeds[b]),
               "activation": round(target, 6), "prior_activation": round(float(prior[b, unit]), 6),
               "selectivity": round(target - float(others.mean()) if len(others) else target, 6),
               "rank": int((acts > acts[unit]).sum()) + 1, "num_units": int(len(acts)),
               "dataset_max": None, "ratio": None}
        if analysis is not None:
            dmax = analysis.max_at(unit, timesteps[b])
            row["dataset_max"] = round(dmax, 6)
            row["ratio"] = round(target / dmax, 4) if dmax > 0 else None
        rows.append(row)
    return rows


def display_images(images: Tensor, mode: str = "per_image") -> Tensor:
    """Decoded images ``[B, 3, H, W]`` → ``[B, H, W, 3]`` floats in [0, 1] for display.

    ``per_image`` min-max scales each image on its own (default: one odd image cannot wash out the others);
    ``batch`` scales all together, as the reference does.
    """
    x = images.detach().float()
    if mode == "per_image":
        lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    elif mode == "batch":
        lo, hi = x.min(), x.max()
    else:
        raise LVOError(f"display scaling must be 'per_image' or 'batch', got '{mode}'")
    return ((x - lo) / (hi - lo).clamp_min(1e-8)).permute(0, 2, 3, 1).cpu()
