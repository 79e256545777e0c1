"""Conditioning that is more than one token tensor: SDXL's pooled text embedding and size/crop ids, FLUX's pooled
embedding and guidance.

:class:`Conditioning` behaves like the ``[B, L, D]`` context tensor the rest of the code passes around — ``to``,
``expand``, slicing, ``len`` and :func:`cat` — so stages that only move conditioning along (the optimizer, banks,
samplers, metrics) never look inside it; only a backend's model call unpacks it. Every tensor in it has the batch
as its first dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from ..errors import LVOError

Context = Tensor  # or Conditioning: everything downstream of a backend accepts either


@dataclass(frozen=True)
class Conditioning:
    """Token conditioning ``tokens`` ``[B, L, D]`` plus named per-row extras (e.g. ``text_embeds`` ``[B, 1280]``,
    ``time_ids`` ``[B, 6]`` for SDXL)."""

    tokens: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self):
        for name, value in self.extras.items():
            if value.shape[0] != self.tokens.shape[0]:
                raise LVOError(f"conditioning extra '{name}' has batch {value.shape[0]}, tokens have "
                                 f"{self.tokens.shape[0]}")

    @property
    def shape(self) -> torch.Size:
        return self.tokens.shape

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Conditioning":
        return Conditioning(self.tokens.to(device=device, dtype=dtype),
                            {k: v.to(device=device, dtype=dtype) for k, v in self.extras.items()})

    def expand(self, batch: int, *_: int) -> "Conditioning":
        """Broadcast a batch of one to ``batch`` rows (``*_`` accepts tensor-style ``expand(b, -1, -1)``)."""
        return Conditioning(self.tokens.expand(batch, *self.tokens.shape[1:]),
                            {k: v.expand(batch, *v.shape[1:]) for k, v in self.extras.items()})

    def detach(self) -> "Conditioning":
        return Conditioning(self.tokens.detach(), {k: v.detach() for k, v in self.extras.items()})

    def clone(self) -> "Conditioning":
        return Conditioning(self.tokens.clone(), {k: v.clone() for k, v in self.extras.items()})

    def __getitem__(self, index) -> "Conditioning":
        if not isinstance(index, (slice, Tensor, list)):
            index = slice(index, index + 1)
        return Conditioning(self.tokens[index], {k: v[index] for k, v in self.extras.items()})


def cat(items: Sequence[Context]) -> Context:
    """Concatenate along the batch (tensors, or conditionings with the same extras)."""
    if all(isinstance(c, Tensor) for c in items):
        return torch.cat(list(items))
    if not all(isinstance(c, Conditioning) for c in items):
        raise LVOError("cannot concatenate plain token tensors with Conditioning; give all as one kind")
    keys = set(items[0].extras)
    if any(set(c.extras) != keys for c in items):
        raise LVOError("conditionings to concatenate must carry the same extras")
    return Conditioning(torch.cat([c.tokens for c in items]),
                        {k: torch.cat([c.extras[k] for c in items]) for k in items[0].extras})


def tokens_of(context: Context) -> Tensor:
    """The token tensor of either form."""
    return context.tokens if isinstance(context, Conditioning) else context


def extras_of(context: Context) -> dict[str, Tensor]:
    """The extras of a conditioning (empty for a plain tensor)."""
    return context.extras if isinstance(context, Conditioning) else {}
