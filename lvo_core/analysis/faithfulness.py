"""Faithfulness metrics: does a unit stand for one concept, does its visualization show that concept, and does the
visualization still drive the unit once it has been through the image codec and fresh noise?

These need labelled data (concept purity), a judge (agreement) and an image encoder (re-encode robustness), which
a world with known concepts such as :mod:`lvo_core.toy` provides; on a real model only the activation metrics of
:mod:`lvo_core.analysis.metrics` apply. Everything here is plain tensors and labels, so any world can plug in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import LVOError
from ..model.backend import Backend
from ..model.noise import step_noise
from ..sae.model import SparseAutoencoder
from .activity import unit_activations

REENCODE_STEP_OFFSET = 3 << 29  # noise draws the optimizer and the evaluation metrics never use


@torch.no_grad()
def dataset_activations(backend: Backend, latents: Tensor, timestep: int, sae: SparseAutoencoder | None,
                        context: Tensor | None = None, seed: int = 0, batch_size: int = 256,
                        on_progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Spatial-mean activation ``[N, U]`` of every unit on dataset latents noised to ``timestep`` (seeded per
    image), under ``context`` (one row per image; the empty prompt when None); ``on_progress(images done, images)``
    after each batch."""
    with torch.inference_mode(False), torch.no_grad():
        out = []
        if on_progress is not None:
            on_progress(0, len(latents))
        for start in range(0, len(latents), batch_size):
            z = latents[start:start + batch_size].to(backend.device, torch.float32)
            n = len(z)
            t = backend.schedule.check([timestep]).to(backend.device).expand(n)
            eps = step_noise(range(seed + start, seed + start + n), 0, z.shape[1:], backend.device, torch.float32)
            ctx = backend.empty_context(n) if context is None else context[start:start + n]
            tokens, _ = backend.block_tokens(backend.schedule.add_noise(z, t, eps), t, ctx)
            out.append(unit_activations(tokens, sae).float().cpu())
            if on_progress is not None:
                on_progress(start + n, len(latents))
        return torch.cat(out)


@dataclass
class ConceptPurity:
    """For every unit: its dominant value on each labelled axis among its ``top`` most activating dataset images,
    and the share of those images that carry it. A unit that fires (> 0) on fewer than ``top`` images has no
    reliable top set and counts as inactive (share 0)."""

    axes: dict[str, list[str]]
    dominant: dict[str, np.ndarray]
    share: dict[str, np.ndarray]
    active: np.ndarray
    top: int
    info: dict[str, Any]
    acts: np.ndarray | None = None  # the dataset activations [N, U] it was measured on (top examples come from here)

    @property
    def num_units(self) -> int:
        return len(self.active)

    def concept(self, unit: int) -> tuple[str, str, float]:
        """The unit's purest axis, its dominant value there and the share: e.g. ``("shape", "ring", 0.95)``."""
        axis = max(self.axes, key=lambda a: (self.share[a][unit], -list(self.axes).index(a)))
        return axis, self.axes[axis][int(self.dominant[axis][unit])], float(self.share[axis][unit])

    def purity(self) -> np.ndarray:
        """Per unit, the share of its top images that share one planted concept (best axis)."""
        return np.max(np.stack([self.share[a] for a in self.axes]), axis=0)

    def most_pure(self, count: int, axis: str | None = None) -> list[int]:
        """The ``count`` purest active units (on ``axis``, or on their best axis), purest first, ties by index."""
        score = self.purity() if axis is None else self.share[axis]
        order = np.lexsort((np.arange(self.num_units), -score))
        return [int(u) for u in order if self.active[u]][:count]

    def balanced(self, count: int, eligible: Callable[[int], bool] | None = None,
                 min_share: float = 0.0) -> list[int]:
        """Up to ``count`` test units that cover the concepts: axes alternate, and within an axis each dominant value
        gets its purest unit before any value gets a second. Only units whose best axis is that axis, with a share
        ≥ ``min_share`` and ``eligible(unit)`` true, are candidates."""
        per_axis = []
        for axis in self.axes:
            pool = [u for u in self.most_pure(self.num_units, axis)
                    if self.concept(u)[0] == axis and self.share[axis][u] >= min_share
                    and (eligible is None or eligible(u))]
            firsts, rest, seen = [], [], set()
            for u in pool:
                value = int(self.dominant[axis][u])
                (rest if value in seen else firsts).append(u)
                seen.add(value)
            per_axis.append(firsts + rest)
        chosen: list[int] = []
        while len(chosen) < count and any(per_axis):
            for pool in per_axis:
                if pool and len(chosen) < count:
                    chosen.append(pool.pop(0))
        return chosen

    def summary(self, threshold: float = 0.8) -> dict[str, Any]:
        """Shares of all units that are pure (≥ ``threshold``) on each axis and on any axis."""
        n = self.num_units
        out = {f"{a}_pure": round(float((self.share[a] >= threshold).sum()) / n, 4) for a in self.axes}
        out["any_pure"] = round(float((self.purity() >= threshold).sum()) / n, 4)
        out["active"] = round(float(self.active.sum()) / n, 4)
        return {"units": n, "top": self.top, "threshold": threshold, **out, **self.info}


def concept_purity(acts: Tensor | np.ndarray, labels: dict[str, np.ndarray], names: dict[str, Sequence[str]],
                   top: int = 20, **info: Any) -> ConceptPurity:
    """Concept purity of every unit from dataset activations ``[N, U]`` and per-image labels per axis
    (``labels["shape"][i]`` indexes ``names["shape"]``)."""
    acts = np.asarray(acts, dtype=np.float64)
    if acts.shape[0] < top:
        raise LVOError(f"concept purity over the top {top} images needs at least {top} images, got {acts.shape[0]}")
    order = np.argsort(-acts, axis=0, kind="stable")[:top]
    active = (acts > 0).sum(axis=0) >= top
    dominant, share = {}, {}
    for axis, values in labels.items():
        counts = np.stack([np.bincount(values[order[:, u]], minlength=len(names[axis]))
                           for u in range(acts.shape[1])])
        dominant[axis] = counts.argmax(1)
        share[axis] = np.where(active, counts.max(1) / top, 0.0)
    return ConceptPurity({a: list(names[a]) for a in labels}, dominant, share, active, top, dict(info), acts)


def concept_agreement(purity: ConceptPurity, units: Sequence[int],
                      reads: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """Per visualization: the unit's dominant concept, what the judge read on that axis, and whether they agree.
    ``reads[i]`` maps each axis to the judge's reading (``"none"`` when it sees no concept)."""
    rows = []
    for unit, read in zip(units, reads):
        axis, value, share = purity.concept(int(unit))
        rows.append({"unit": int(unit), "concept": f"{axis}={value}", "purity": round(share, 4),
                     "judged": read.get(axis, "none"), "agrees": read.get(axis) == value,
                     "read": dict(read)})
    return rows


@torch.no_grad()
def reencode_robustness(backend: Backend, latents: Tensor, units: Sequence[int], timesteps: Sequence[int],
                        sae: SparseAutoencoder | None, encode: Callable[[Tensor], Tensor] | None = None,
                        draws: int = 8, seed: int = 0, top: int = 1) -> list[float]:
    """Per row, the share of ``draws`` fresh noise draws under which the unit is still among the ``top`` most
    active units of the layer, after the latent went through decode → clamp to [-1, 1] → ``encode`` (the trip an
    image takes when it is saved and loaded again; skipped without an encoder)."""
    return reencode_report(backend, latents, units, timesteps, sae, encode, draws, seed, top)[0]


@torch.no_grad()
def reencode_report(backend: Backend, latents: Tensor, units: Sequence[int], timesteps: Sequence[int],
                    sae: SparseAutoencoder | None, encode: Callable[[Tensor], Tensor] | None = None,
                    draws: int = 8, seed: int = 0, top: int = 1) -> tuple[list[float], list[float | None]]:
    """Per row: :func:`reencode_robustness`, and the share of the unit's activation that survives the trip (mean
    over the same draws after ÷ before; None where the activation before is not positive). The second separates
    what the trip destroys from how selective the image was to begin with."""
    with torch.inference_mode(False), torch.no_grad():
        z = latents.detach().to(backend.device, torch.float32)
        trip = z if encode is None else encode(backend.decode(z).float().clamp(-1, 1)).to(backend.device,
                                                                                          torch.float32)
        t = backend.schedule.check(list(timesteps)).to(backend.device)
        context = backend.empty_context(len(z))
        unit_index = torch.as_tensor(list(units), device=backend.device)
        hits = torch.zeros(len(z))
        before = torch.zeros(len(z))
        after = torch.zeros(len(z))
        for d in range(draws):
            eps = step_noise([seed + r for r in range(len(z))], REENCODE_STEP_OFFSET + d, z.shape[1:],
                             backend.device, torch.float32)
            acts = {}
            for name, x in (("after", trip), ("before", z)):
                tokens, _ = backend.block_tokens(backend.schedule.add_noise(x, t, eps), t, context)
                acts[name] = unit_activations(tokens, sae).float()
            target = acts["after"].gather(1, unit_index[:, None])
            rank = (acts["after"] > target).sum(1) + 1
            hits += (rank <= top).float().cpu()
            after += target[:, 0].cpu()
            before += acts["before"].gather(1, unit_index[:, None])[:, 0].cpu()
        robust = [round(float(h) / draws, 4) for h in hits]
        retained = [round(float(a / b), 4) if b > 0 else None for a, b in zip(after, before)]
        return robust, retained
