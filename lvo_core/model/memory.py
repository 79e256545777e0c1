"""How much memory LVO's trainable copy takes on full-size architectures, measured without any weights.

The optimizer runs on a copy of the model up to the hooked block (ComfyUI's weights are inference tensors;
:func:`~lvo_core.model.backend.trainable_copy`). Its size decides whether LVO fits beside the loaded model, so it is
measured here on the real architectures, built on PyTorch's ``meta`` device from their published configs (each
family's ``reference``): the same code path as a real run, no download, no memory.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import LVOError
from ..hookpoints import resolve_hookpoint
from .backend import trainable_copy
from .families.base import families


def architectures() -> dict[str, tuple]:
    """{architecture: (builder, the hookpoints people use there, the dtype people run it in)} of every family."""
    return {arch: ref for family in reversed(families()) for arch, ref in family.reference.items()}


def reference_hookpoints() -> dict[str, tuple[str, ...]]:
    return {arch: ref[1] for arch, ref in architectures().items()}


HOOKPOINTS = reference_hookpoints()  # the blocks people hook, per architecture (SAeUron's, sdxl-unbox's)


def meta_model(arch: str) -> torch.nn.Module:
    """The full-size architecture with every parameter on the meta device (shapes only, no storage)."""
    known = architectures()
    if arch not in known:
        raise LVOError(f"unknown architecture '{arch}'; known: {', '.join(known)}")
    with torch.device("meta"):
        return known[arch][0]()


def copy_sizes(arch: str, dtype: torch.dtype | None = None) -> list[dict[str, Any]]:
    """One row per usual hookpoint: parameters of the whole model and of the trainable copy, and the copy's GiB in
    ``dtype`` (by default the one people run the architecture in)."""
    model = meta_model(arch)
    dtype = dtype or architectures()[arch][2]
    total = sum(p.numel() for p in model.parameters())
    item = torch.empty((), dtype=dtype).element_size()
    rows = []
    for name in architectures()[arch][1]:
        copy, _ = trainable_copy(model, resolve_hookpoint(model, name))
        params = sum(p.numel() for p in copy.parameters())
        rows.append({"architecture": arch, "hookpoint": name, "model_params": total, "copy_params": params,
                     "copy_fraction": round(params / total, 3), "dtype": str(dtype).removeprefix("torch."),
                     "copy_gib": round(params * item / 2 ** 30, 3)})
    return rows
