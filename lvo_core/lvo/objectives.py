"""What LVO maximizes: per-row unit activations of a block's tokens, and a small algebra to combine them.

An objective maps block tokens ``[B, H·W, C]`` (with their ``(H, W)``) to one value per batch row ``[B]``. Rows
are independent — each can target its own unit — which is what lets many units be optimized in one batch. SAE
objectives gather only the encoder rows of the requested features, so their cost does not grow with the SAE's size.

Objectives add, scale and negate (``a + 0.5 * b``, ``-a``) and carry readable names for the result JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..errors import LVOError, UnitError
from ..sae.model import SparseAutoencoder

VALUES = ("dense", "pre", "sparse")
REDUCTIONS = ("mean", "max")


def _per_row(indices: int | Sequence[int], batch: int) -> list[int]:
    idx = [int(indices)] * batch if isinstance(indices, int) else [int(i) for i in indices]
    if len(idx) == 1 and batch > 1:
        idx = idx * batch
    if len(idx) != batch:
        raise UnitError(f"got {len(idx)} unit indices for a batch of {batch} rows; give one per row or one for all")
    return idx


def _reduce(values: Tensor, hw: tuple[int, int], reduce: str, mask: Tensor | None) -> Tensor:
    """``[B, N]`` per-position values → ``[B]``: spatial mean (optionally mask-weighted) or max."""
    if mask is not None:
        m = mask.to(values).reshape(-1, hw[0] * hw[1])
        if reduce == "max":
            return values.masked_fill(m.expand_as(values) <= 0, float("-inf")).amax(1)
        return (values * m).sum(1) / m.sum(1).clamp_min(1e-12)
    return values.mean(1) if reduce == "mean" else values.amax(1)


class Objective:
    """Base class: ``objective(tokens, hw) -> [B]`` values to maximize."""

    name = "objective"

    def __call__(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __add__(self, other: "Objective") -> "Objective":
        return Combination([(1.0, self), (1.0, other)])

    def __mul__(self, weight: float) -> "Objective":
        return Combination([(float(weight), self)])

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)


@dataclass(eq=False)
class Combination(Objective):
    """A weighted sum of objectives (what ``+``, ``*`` and ``-`` build)."""

    terms: list[tuple[float, Objective]]

    def __call__(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        return sum(w * term(tokens, hw) for w, term in self.terms)

    @property
    def name(self) -> str:
        return " + ".join(f"{w:g}*{t.name}" for w, t in self.terms)


@dataclass(eq=False)
class SAEFeature(Objective):
    """Activation of an SAE feature per row (``features``: one index for all rows, or one per row).

    ``value``: ``dense`` — ReLU of the pre-activation, the paper's unit (no TopK); ``pre`` — the pre-activation
    itself, which keeps a gradient where the ReLU is still zero; ``sparse`` — the feature's value in the SAE's
    sparse code (TopK/JumpReLU applied, needs every encoder row). ``reduce``: spatial ``mean`` (paper) or ``max``;
    ``mask``: ``[H, W]`` or ``[B, H, W]`` weights for a masked mean (or the region for ``max``).
    """

    sae: SparseAutoencoder
    features: int | Sequence[int]
    value: str = "dense"
    reduce: str = "mean"
    mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.value not in VALUES or self.reduce not in REDUCTIONS:
            raise LVOError(f"value must be one of {VALUES} and reduce one of {REDUCTIONS}")
        feats = [self.features] if isinstance(self.features, int) else list(self.features)
        self.sae.check_features(sorted(set(feats)))

    @property
    def name(self) -> str:
        return f"sae[{self.features}].{self.value}.{self.reduce}"

    def per_position(self, tokens: Tensor) -> Tensor:
        """``[B, N]`` values of each row's feature at every position."""
        idx = _per_row(self.features, tokens.shape[0])
        if self.value == "sparse":
            code = self.sae.encode(tokens)
            return code.gather(-1, torch.tensor(idx, device=code.device).reshape(-1, 1, 1)
                               .expand(-1, code.shape[1], 1))[..., 0]
        pre = self.sae.row_pre_acts(tokens, idx)
        return pre if self.value == "pre" else torch.relu(pre)

    def __call__(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        return _reduce(self.per_position(tokens).float(), hw, self.reduce, self.mask)


@dataclass(eq=False)
class Channel(Objective):
    """A raw channel of the block per row (the raw-layer baseline)."""

    channels: int | Sequence[int]
    reduce: str = "mean"
    mask: Tensor | None = None

    @property
    def name(self) -> str:
        return f"channel[{self.channels}].{self.reduce}"

    def per_position(self, tokens: Tensor) -> Tensor:
        idx = _per_row(self.channels, tokens.shape[0])
        bad = [c for c in idx if not 0 <= c < tokens.shape[-1]]
        if bad:
            raise UnitError(f"channel {bad[0]} is out of range: the block has {tokens.shape[-1]} channels "
                            f"(valid 0..{tokens.shape[-1] - 1})")
        index = torch.tensor(idx, device=tokens.device).reshape(-1, 1, 1).expand(-1, tokens.shape[1], 1)
        return tokens.gather(-1, index)[..., 0]

    def __call__(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        return _reduce(self.per_position(tokens).float(), hw, self.reduce, self.mask)


@dataclass(eq=False)
class Direction(Objective):
    """Projection of every token on a direction (``[C]`` for all rows or ``[B, C]``), e.g. a probe vector."""

    direction: Tensor
    reduce: str = "mean"
    mask: Tensor | None = None
    label: str = "direction"

    @property
    def name(self) -> str:
        return self.label

    def __call__(self, tokens: Tensor, hw: tuple[int, int]) -> Tensor:
        d = self.direction.to(tokens)
        d = d.expand(tokens.shape[0], -1) if d.ndim == 1 else d
        return _reduce(torch.einsum("bnc,bc->bn", tokens, d).float(), hw, self.reduce, self.mask)
