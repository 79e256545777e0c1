"""openai-style k-SAEs (sdxl-unbox): ``config.json`` + pickled ``state_dict.pth``, and sdxl-unbox's
``checkpoints/`` root of run folders named after their hookpoint, each with the SAE in ``final/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import SAEFormatError
from ..model import SparseAutoencoder
from .common import cast, cfg_int, check_cfg_dims, hookpoint_from_folder, load_pickled_weights, need, read_json, rows
from .registry import SAEFormat, register

OPENAI = "openai"
OPENAI_ROOT = "openai-multi"


def _is_openai_dir(p: Path) -> bool:
    return (p / "config.json").is_file() and (p / "state_dict.pth").is_file()


def openai_dir(child: Path) -> Path | None:
    """The SAE folder of one sdxl-unbox root entry: the entry itself or its ``final/`` checkpoint."""
    for candidate in (child, child / "final"):
        if _is_openai_dir(candidate):
            return candidate
    return None


def _load_openai(folder: Path, k: int | None = None, dtype: torch.dtype | None = None,
                 **_: Any) -> SparseAutoencoder:
    """openai-style k-SAE (sdxl-unbox): its config has no hookpoint, so it is read from the folder name."""
    config = read_json(folder / "config.json")
    where = folder / "state_dict.pth"
    t = cast(load_pickled_weights(where), dtype)
    need(t, ("encoder.weight", "decoder.weight", "pre_bias", "latent_bias"), where)
    d_sae = t["encoder.weight"].shape[0]
    check_cfg_dims({"d_model": config.get("d_model"), "n_dirs_local": config.get("n_dirs_local")},
                    t["encoder.weight"].shape[1], d_sae, folder, keys=("d_model", "n_dirs_local"))
    k = k if k is not None else cfg_int(config, "k", folder)
    if not k:
        raise SAEFormatError(f"{folder}/config.json has no 'k'; pass k explicitly")
    return SparseAutoencoder(
        W_enc=t["encoder.weight"], b_enc=t["latent_bias"], W_dec=rows(t["decoder.weight"], d_sae, "decoder.weight", where),
        b_dec=t["pre_bias"], pre_bias=t["pre_bias"], activation="topk", k=int(k),
        hookpoint=config.get("hookpoint") or config.get("block") or hookpoint_from_folder(folder),
        source_format=OPENAI, input_kind="update",
        meta={"cfg": config, "path": str(folder)})


def _openai_member(child: Path) -> tuple[str, Path] | None:
    sae_dir = openai_dir(child)
    return None if sae_dir is None else (hookpoint_from_folder(sae_dir) or child.name, sae_dir)


register(SAEFormat(OPENAI, "folder", "config.json + state_dict.pth (openai-style)", 40,
                   matches=lambda names: "config.json" in names and "state_dict.pth" in names, load=_load_openai,
                   files=("config.json", "state_dict.pth")))
register(SAEFormat(OPENAI_ROOT, "root", "sdxl-unbox", 20, member=_openai_member))
