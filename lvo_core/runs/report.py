"""Write run results to a folder: one PNG per visualization, a contact sheet, latents as safetensors, and one JSON
that records everything needed to reproduce the run (arguments, config, seeds, versions, history, metrics).

Every file is written atomically, so an interrupted run never leaves a file that looks complete but is not. The run
record that uses these writers (rows, resume, fingerprint, ``result.json``) is :mod:`lvo_core.runs.record`.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from ..fileio import atomic_write
from .plots import image_grid


def versions() -> dict[str, str]:
    import diffusers

    from .. import __version__

    return {"lvo_core": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "python": platform.python_version()}


def to_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)


def save_png(image: np.ndarray | torch.Tensor | Image.Image, path: str | Path) -> Path:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(to_uint8(image))
    return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))


def save_json(data: dict[str, Any], path: str | Path) -> Path:
    text = json.dumps(data, indent=2, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, meta: dict[str, str] | None = None) -> Path:
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=meta))


def contact_sheet(images: Sequence[np.ndarray], groups: Sequence[Any], labels: Sequence[str],
                  cell: int = 128, *, title: str = "", subtitle: str = "", legend: Sequence[str] = (),
                  kind: str = "unit") -> Image.Image:
    """One line per group (unit), headed "<kind> <unit>", its images side by side; shorter lines padded with blank
    cells. When every group has a single image (an atlas of many units), the images wrap into a near-square grid
    instead. ``title``, ``subtitle`` and ``legend`` frame it (:func:`~lvo_core.runs.plots.framed`)."""
    frame = dict(title=title, subtitle=subtitle, legend=legend)
    order = list(dict.fromkeys(groups))
    lines = {g: [i for i, gi in enumerate(groups) if gi == g] for g in order}
    width = max(len(v) for v in lines.values())
    if width == 1:
        return image_grid([np.asarray(images[i]) for i in range(len(images))], list(labels),
                          columns=math.ceil(math.sqrt(len(images))), cell=cell, **frame)
    blank = np.ones_like(np.asarray(images[0]))
    tiles, names = [], []
    for g in order:
        idx = lines[g] + [None] * (width - len(lines[g]))
        tiles += [np.asarray(images[i]) if i is not None else blank for i in idx]
        names += [labels[i] if i is not None else "" for i in idx]
    return image_grid(tiles, names, columns=width, cell=cell, row_titles=[f"{kind} {g}" for g in order], **frame)
