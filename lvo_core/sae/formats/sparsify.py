"""sparsify (EleutherAI) and SAeUron: ``cfg.json`` + ``sae.safetensors``, and roots of one such folder per
hookpoint (SAeUron's checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import SAEFormatError
from ..model import SparseAutoencoder
from .common import cast, cfg_int, check_cfg_dims, hookpoint_named, need, read_json, read_safetensors, rows
from .registry import SAEFormat, register

SPARSIFY = "sparsify"
SPARSIFY_ROOT = "sparsify-multi"


def is_sparsify_dir(p: Path) -> bool:
    return (p / "cfg.json").is_file() and (p / "sae.safetensors").is_file()


def load_sparsify(folder: Path, k: int | None = None, weights: Path | None = None,
                   cfg: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> SparseAutoencoder:
    cfg = read_json(folder / "cfg.json") if cfg is None else cfg
    weights = weights or folder / "sae.safetensors"
    t = cast(read_safetensors(weights), dtype)
    need(t, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), weights)
    if "W_skip" in t:
        raise SAEFormatError(f"{weights} has a skip connection (W_skip): transcoders/skip SAEs are not supported")
    if cfg.get("transcode"):
        raise SAEFormatError(f"{folder}: transcoders (cfg transcode=true) are not supported")
    W_enc, W_dec = t["encoder.weight"], t["W_dec"]
    d_sae, d_in = W_enc.shape
    expansion = cfg_int(cfg, "expansion_factor", folder, 0)
    expected_latents = cfg_int(cfg, "num_latents", folder, 0) or expansion * (cfg_int(cfg, "d_in", folder) or d_in)
    check_cfg_dims({"d_in": cfg.get("d_in"), "num_latents": expected_latents or None}, d_in, d_sae, folder,
                    keys=("d_in", "num_latents"))
    k = k if k is not None else cfg_int(cfg, "k", folder)
    if not k:
        raise SAEFormatError(f"{weights}: the number of active latents k is unknown; pass k explicitly")
    activation = cfg.get("activation", "topk")
    if activation not in ("topk", "groupmax"):
        raise SAEFormatError(f"{folder}: sparsify activation '{activation}' is not supported (topk or groupmax)")
    return SparseAutoencoder(
        W_enc=W_enc, b_enc=t["encoder.bias"], W_dec=rows(W_dec, d_sae, "W_dec", weights), b_dec=t["b_dec"],
        pre_bias=t["b_dec"], activation=activation, k=int(k),
        input_norm="standardize" if cfg.get("input_unit_norm") else "none",
        hookpoint=cfg.get("hookpoint") or hookpoint_named(folder), source_format=SPARSIFY,
        meta={"cfg": cfg, "path": str(folder)})


def _sparsify_member(child: Path) -> tuple[str, Path] | None:
    return (child.name, child) if is_sparsify_dir(child) else None


register(SAEFormat(SPARSIFY, "folder", "cfg.json + sae.safetensors (sparsify/SAeUron)", 10,
                   matches=lambda names: "cfg.json" in names and "sae.safetensors" in names, load=load_sparsify,
                   files=("cfg.json",)))
register(SAEFormat(SPARSIFY_ROOT, "root", "sparsify", 10, member=_sparsify_member))
