"""Write run results to a folder: one PNG per visualization, a contact sheet, latents as safetensors, and one JSON
that records everything needed to reproduce the run (arguments, config, seeds, versions, history, metrics).

Every file is written atomically, so an interrupted run never leaves a file that looks complete but is not.
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

from .fileio import atomic_write
from .plots import image_grid


def versions() -> dict[str, str]:
    import diffusers

    from . import __version__

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
                  cell: int = 128) -> Image.Image:
    """One line per group (unit), its images side by side; shorter lines padded with blank cells. When every group
    has a single image (an atlas of many units), the images wrap into a near-square grid instead."""
    order = list(dict.fromkeys(groups))
    lines = {g: [i for i, gi in enumerate(groups) if gi == g] for g in order}
    width = max(len(v) for v in lines.values())
    if width == 1:
        return image_grid([np.asarray(images[i]) for i in range(len(images))], list(labels),
                          columns=math.ceil(math.sqrt(len(images))), cell=cell)
    blank = np.ones_like(np.asarray(images[0]))
    tiles, names = [], []
    for g in order:
        idx = lines[g] + [None] * (width - len(lines[g]))
        tiles += [np.asarray(images[i]) if i is not None else blank for i in idx]
        names += [labels[i] if i is not None else "" for i in idx]
    return image_grid(tiles, names, columns=width, cell=cell)


class RowStore:
    """Per-row results in a folder, written as each batch finishes: ``<stem>.png`` beside the folder, and in
    ``rows/`` the latents (``<stem>.safetensors``) and last, atomically, a JSON marker with the metrics, history and
    the run's fingerprint. A row counts as finished only when its marker exists and names the same fingerprint, so
    an interrupted save is simply redone and rows of runs with other settings are never mixed in."""

    def __init__(self, out: str | Path, kind: str, fingerprint: str):
        self.out, self.kind, self.fingerprint = Path(out), kind, fingerprint
        self.rows_dir = self.out / "rows"
        self.rows_dir.mkdir(parents=True, exist_ok=True)

    def stem(self, row) -> str:
        return f"{self.kind}{row.unit}_t{row.timestep}_seed{row.seed}"

    def save(self, rows, result, metrics, images) -> None:
        for j, (row, m) in enumerate(zip(rows, metrics)):
            stem = self.stem(row)
            save_png(images[j], self.out / f"{stem}.png")
            save_tensors({"latent": result.latents[j], "init_latent": result.init_latents[j]},
                         self.rows_dir / f"{stem}.safetensors")
            save_json({"row": row.__dict__, "fingerprint": self.fingerprint, "metrics": m,
                       "history": {k: v[:, j].round(6).tolist() for k, v in result.history.items()},
                       "complete": result.complete, "files": [f"../{stem}.png", f"{stem}.safetensors"],
                       "stem": stem}, self.rows_dir / f"{stem}.json")

    def finished(self) -> dict:
        """``{Row: marker}`` for every complete row of this fingerprint."""
        from .pipeline import Row

        done = {}
        for marker in sorted(self.rows_dir.glob("*.json")):
            try:
                info = json.loads(marker.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if info.get("fingerprint") == self.fingerprint and all((self.rows_dir / f).is_file()
                                                                   for f in info.get("files", [])):
                done[Row(**info["row"])] = info
        return done

    def image(self, info: dict) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(self.out / f"{info['stem']}.png"), dtype=np.float32) / 255

    def tensors(self, info: dict) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.rows_dir / f"{info['stem']}.safetensors")
