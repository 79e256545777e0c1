"""Feature search: which SAE features does this image drive, and where — the way people find features to look at.

The image's latent is noised to a timestep (t = 200 by default, where the faithful recipe reads features) with a
few fixed noise draws, and the hooked block's tokens are encoded with the SAE's dense value. Features are ranked by
how unusual their activation is for this image: against the model's own samples in a sample bank (``lift``:
activation ÷ the feature's mean over the pool, which keeps always-on features from crowding the list), against
an activity analysis (``ratio``: ÷ the dataset maximum at t), or by the raw ``activation``. Each hit carries its
heatmap over the image, its activity peak, its dataset maximum and its top pool images, ready to feed LVO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..errors import LVOError
from ..model.backend import Backend
from ..model.noise import step_noise
from ..sae.model import SparseAutoencoder
from .activity import ActivityAnalysis
from .bank import SampleBank

SEARCH_STEP_OFFSET = 7 << 28  # noise draws of the search: no optimizer, metric or bank score uses them
RANKINGS = ("auto", "lift", "ratio", "activation")


@dataclass
class FeatureHit:
    """One feature found on an image."""

    unit: int
    activation: float
    score: float
    heatmap: Tensor
    dataset_max: float | None = None
    ratio: float | None = None
    lift: float | None = None
    activity_peak: int | None = None
    bank_examples: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "activation": round(self.activation, 6), "score": round(self.score, 6),
                "dataset_max": self.dataset_max, "ratio": self.ratio, "lift": self.lift,
                "activity_peak": self.activity_peak, "bank_examples": self.bank_examples,
                "heatmap_max": round(float(self.heatmap.max()), 6)}


def ranking_for(by: str, analysis: ActivityAnalysis | None, bank: SampleBank | None) -> str:
    """``auto`` → ``lift`` with a bank, ``ratio`` with an analysis, else ``activation``; the others need what they
    divide by."""
    if by not in RANKINGS:
        raise LVOError(f"rank features by one of {', '.join(RANKINGS)}, not '{by}'")
    if by == "auto":
        return "lift" if bank is not None else "ratio" if analysis is not None else "activation"
    if by == "lift" and bank is None:
        raise LVOError("ranking by 'lift' divides by the model's own samples: give a sample bank, or rank by "
                       "'ratio' (needs an activity analysis) or 'activation'")
    if by == "ratio" and analysis is None:
        raise LVOError("ranking by 'ratio' divides by the dataset maximum: give an activity analysis, or rank by "
                       "'lift' (needs a sample bank) or 'activation'")
    return by


@torch.no_grad()
def search_features(backend: Backend, sae: SparseAutoencoder, latents: Tensor, *, timestep: int = 200,
                    top: int = 10, by: str = "auto", draws: int = 4, analysis: ActivityAnalysis | None = None,
                    bank: SampleBank | None = None, examples: int = 4,
                    on_progress: Callable[[int, int], None] | None = None,
                    bank_backend: Backend | None = None) -> list[list[FeatureHit]]:
    """The ``top`` features of each image in ``latents`` ``[B, C, H, W]`` (clean, in the model's latent space).
    ``on_progress(done, total)`` over scoring the bank at ``timestep`` (when it is not yet) and the noise draws.

    The bank may hold latents of another size than the images (a photo has any size): it is scored through
    ``bank_backend`` (the same model and block at the bank's latent size; default ``backend``) and only its
    per-feature mean over the pool is compared, which does not depend on the size."""
    if latents.ndim != 4:
        raise LVOError(f"feature search takes latents [B, C, H, W], got shape {tuple(latents.shape)}")
    if not isinstance(top, int) or top <= 0:
        raise LVOError(f"top must be a positive integer, got {top!r}")
    rank = ranking_for(by, analysis, bank)
    if analysis is not None:
        analysis.check_matches(backend.hookpoint.diffusers_name, sae)
    if bank is not None:
        scorer = bank_backend or backend
        bank.check_matches(scorer, sae, any_size=True)
        bank.ensure_scores(scorer, sae, [timestep], on_progress=on_progress)
    with torch.inference_mode(False), torch.no_grad():
        z = latents.detach().to(backend.device, torch.float32)
        t = backend.schedule.check([timestep] * len(z)).to(backend.device)
        per_position = None
        hw = (1, 1)
        for d in range(draws):
            eps = step_noise(range(len(z)), SEARCH_STEP_OFFSET + d, z.shape[1:], backend.device)
            tokens, hw = backend.block_tokens(backend.schedule.add_noise(z, t, eps), t, backend.empty_context(len(z)))
            acts = sae.dense_acts(tokens).float()
            per_position = acts if per_position is None else per_position + acts
            if on_progress is not None:
                on_progress((d + 1) * len(z), draws * len(z))
        per_position = (per_position / draws).cpu()  # [B, N, U]
    means = per_position.mean(1)
    pool_mean = bank.table(timestep, sae).float().mean(0) if bank is not None else None
    analysed = set(analysis.units.tolist()) if analysis is not None else set()
    dmax = (torch.tensor([analysis.max_at(u, timestep) if u in analysed else float("nan")
                          for u in range(sae.d_sae)]) if analysis is not None else None)
    found = []
    for b in range(len(z)):
        if rank == "lift":
            score = means[b] / pool_mean.clamp_min(1e-6)
        elif rank == "ratio":
            score = torch.nan_to_num(means[b] / dmax.clamp_min(1e-6), nan=-1.0)
        else:
            score = means[b]
        order = torch.sort(score, descending=True, stable=True).indices[:top].tolist()
        hits = []
        for u in order:
            hit = FeatureHit(u, float(means[b, u]), float(score[u]), per_position[b, :, u].reshape(hw))
            if pool_mean is not None:
                hit.lift = round(float(means[b, u] / pool_mean[u].clamp_min(1e-6)), 4)
                hit.bank_examples = bank.top(u, timestep, min(examples, bank.size), sae)
            if u in analysed:
                hit.dataset_max = round(analysis.max_at(u, timestep), 6)
                hit.ratio = round(hit.activation / hit.dataset_max, 4) if hit.dataset_max > 0 else None
                peaks = analysis.peaks(u)
                hit.activity_peak = peaks[0] if peaks else None
            hits.append(hit)
        found.append(hits)
    return found


def unit_list(hits: Sequence[FeatureHit]) -> str:
    """The hits as a units string for LVO Feature Hook / ``--units`` (``"12, 305, 7"``)."""
    return ", ".join(str(h.unit) for h in hits)
