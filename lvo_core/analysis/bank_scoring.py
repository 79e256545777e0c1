"""Scoring a sample bank: every unit's spatial-mean dense activation on each pool latent noised to a timestep,
averaged over noise draws that no optimizer or metric uses (so a score never shares noise with what it selects)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..model.backend import Backend
from ..model.noise import step_noise
from ..sae.model import SparseAutoencoder
from .activity import unit_activations
from .bank_format import SCORE_STEP_OFFSET

Progress = Callable[[int, int], None]


@torch.no_grad()
def score_latents(backend: Backend, latents: Tensor, t: int, sae: SparseAutoencoder | None, draws: int,
                  batch_size: int = 32, on_progress: Progress | None = None) -> Tensor:
    """Spatial-mean dense activation ``[N, U]`` (fp16) of every unit on ``latents`` noised to ``t``, averaged over
    ``draws`` noise draws seeded per image (reserved step indices: independent of batching).
    ``on_progress(image-draws done, images × draws)`` after every draw of every batch."""
    with torch.inference_mode(False), torch.no_grad():
        out = []
        for start in range(0, len(latents), batch_size):
            z = latents[start:start + batch_size].to(backend.device, torch.float32)
            tt = torch.full((len(z),), int(t), device=backend.device, dtype=torch.long)
            total = None
            for d in range(draws):
                eps = step_noise(range(start, start + len(z)), SCORE_STEP_OFFSET + d, z.shape[1:], backend.device)
                tokens, _ = backend.block_tokens(backend.schedule.add_noise(z, tt, eps), tt, backend.empty_context(len(z)))
                acts = unit_activations(tokens, sae).float()
                total = acts if total is None else total + acts
                if on_progress is not None:
                    on_progress(start * draws + (d + 1) * len(z), len(latents) * draws)
            out.append((total / draws).half().cpu())
        return torch.cat(out)
