"""A bare ``.safetensors`` weights file: sparsify or SAELens tensor names, with a ``cfg.json`` beside it if any."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import SAEFormatError
from ..model import SparseAutoencoder
from .common import read_json, safetensors_keys
from .registry import SAEFormat, register
from .saelens import load_saelens
from .sparsify import load_sparsify

BARE = "safetensors"


def _load_bare(path: Path, k: int | None = None, dtype: torch.dtype | None = None, **_: Any) -> SparseAutoencoder:
    keys = set(safetensors_keys(path))
    cfg_path = path.parent / "cfg.json"
    cfg = read_json(cfg_path) if cfg_path.is_file() else {}
    if {"encoder.weight", "W_dec"} <= keys:
        return load_sparsify(path.parent, k=k, weights=path, cfg=cfg, dtype=dtype)
    if {"W_enc", "W_dec"} <= keys:
        if "k" not in cfg and k is not None:
            cfg = {**cfg, "architecture": "topk", "k": k}
        if "threshold" in keys and "architecture" not in cfg:
            cfg = {**cfg, "architecture": "jumprelu"}
        return load_saelens(path.parent, k=k, weights=path, cfg=cfg, dtype=dtype)
    raise SAEFormatError(f"{path}: unrecognised tensor names {sorted(keys)[:10]}; expected sparsify "
                         f"(encoder.weight, W_dec, …) or SAELens (W_enc, W_dec, …) names")


register(SAEFormat(BARE, "file", "a .safetensors weights file", 10,
                   matches_file=lambda path: path.suffix == ".safetensors", load=_load_bare))
