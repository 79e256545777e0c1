"""What every SAE format reader shares: safe file readers (JSON with a size cap, safetensors with clear errors,
pickled weights only through ``torch.load(weights_only=True)``), tensor checks and the per-latent folding helpers,
config integers, and hookpoint names read off sdxl-unbox-style folder names."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from ...errors import SAEFormatError, UnsafeFileError
from ...fileio import check_safetensors_file

MAX_JSON_BYTES = 1 << 20


def read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise SAEFormatError(f"{path} is larger than {MAX_JSON_BYTES} bytes; this is not an SAE config file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SAEFormatError(f"cannot read SAE config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SAEFormatError(f"SAE config {path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_safetensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """All tensors of a safetensors file, with clear errors for empty, truncated, pickled or corrupt files."""
    path = Path(path)
    check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            return {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types; re-raise as a format error with the path
        raise SAEFormatError(f"SAE weights file {path} is corrupt or not a safetensors file: {exc}") from exc


def safetensors_keys(path: str | os.PathLike) -> list[str]:
    """Tensor names from a safetensors header, without reading the tensors."""
    path = Path(path)
    check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            return list(fh.keys())
    except Exception as exc:
        raise SAEFormatError(f"SAE weights file {path} is corrupt or not a safetensors file: {exc}") from exc


def load_pickled_weights(path: Path) -> dict[str, Tensor]:
    """Tensors from a torch.save file, read the safe way: weights_only=True never executes code from the file."""
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnsafeFileError(
            f"{path} could not be read with torch.load(weights_only=True): {exc}. It holds more than tensors; "
            f"it is refused rather than unpickled unrestricted") from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise SAEFormatError(f"{path} does not hold a flat dictionary of tensors")
    return data


def need(tensors: dict[str, Tensor], keys: tuple[str, ...], where: Path) -> None:
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise SAEFormatError(f"{where} lacks tensor(s) {', '.join(missing)}; found: {', '.join(sorted(tensors))}")


def rows(weight: Tensor, d_sae: int, name: str, where: Path) -> Tensor:
    """A weight as ``[d_sae, d_in]`` rows, whichever way round the file stores it."""
    if weight.ndim == 2 and weight.shape[0] == d_sae:
        return weight
    if weight.ndim == 2 and weight.shape[1] == d_sae:
        return weight.T.contiguous()
    raise SAEFormatError(f"{where}: tensor '{name}' has shape {tuple(weight.shape)}, which fits no layout with "
                         f"d_sae={d_sae}")


def cast(tensors: dict[str, Tensor], dtype: torch.dtype | None) -> dict[str, Tensor]:
    """Floating tensors in ``dtype`` (None keeps the file's), before any folding, so that a bf16 file asked for
    in float32 is folded in float32 rather than rounded to bf16 first."""
    if dtype is None:
        return tensors
    return {key: v.to(dtype) if v.is_floating_point() else v for key, v in tensors.items()}


def scale_rows(weight: Tensor, scale: Tensor) -> Tensor:
    """``weight[i] * scale[i]`` computed in at least float32 and returned in ``weight``'s dtype."""
    work = torch.promote_types(weight.dtype, torch.float32)
    return (weight.to(work) * scale.to(work)[:, None]).to(weight.dtype)


def scale(vector: Tensor, scale: Tensor) -> Tensor:
    work = torch.promote_types(vector.dtype, torch.float32)
    return (vector.to(work) * scale.to(work)).to(vector.dtype)


def row_norms(weight: Tensor) -> Tensor:
    return weight.to(torch.promote_types(weight.dtype, torch.float32)).norm(dim=-1)


def cfg_int(cfg: dict[str, Any], key: str, where: Path, default: int | None = None) -> int | None:
    """An integer setting from a config, or ``default`` when absent; anything else is a clear format error."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise SAEFormatError(f"{where}: config field '{key}' must be a non-negative integer, got {value!r}")
    return int(value)


def check_cfg_dims(cfg: dict[str, Any], d_in: int, d_sae: int, where: Path, keys=("d_in", "d_sae")) -> None:
    for key, actual in zip(keys, (d_in, d_sae)):
        claimed = cfg_int(cfg, key, where)
        if claimed not in (None, 0) and claimed != actual:
            raise SAEFormatError(f"{where}: config says {key}={claimed} but the weights have {key}={actual}; "
                                 f"the config and the weights do not belong together")


# sdxl-unbox names its run folders <hookpoint>_k<k>_hidden<latents>_auxk<..>_bs<..>_lr<..> and keeps the SAE in
# their final/ subfolder (utils/loaders.py of surkovv/sdxl-unbox).
_UNBOX_RUN = re.compile(r"^(?P<hook>.+?)_k\d+_hidden\d+(_.*)?$")
_HOOK_LIKE = re.compile(r"^(unet\.|diffusion_model\.)?((down_blocks|up_blocks|input_blocks|output_blocks)\.\d+|"
                        r"mid_block|middle_block)(\.|$)|^(down|up|mid)\.\d+(\.\d+)?$")


def hookpoint_named(folder: Path) -> str | None:
    """A sparsify folder's name when it names a block (roots keep one folder per hookpoint); None for a name like
    ``w16``, so a cfg without a hookpoint is checked by its width, not reported as an unknown hookpoint."""
    return hookpoint_from_folder(folder) or (folder.name if "blocks." in folder.name else None)


def hookpoint_from_folder(folder: Path) -> str | None:
    """The hookpoint an sdxl-unbox-style folder is named after, or None when its name is not a hookpoint.

    ``…/unet.down_blocks.2.attentions.1_k10_hidden5120_auxk256_bs4096_lr0.0001/final`` and
    ``…/unet.down_blocks.2.attentions.1`` both give ``unet.down_blocks.2.attentions.1``.
    """
    name = folder.parent.name if folder.name == "final" else folder.name
    m = _UNBOX_RUN.match(name)
    if m:
        name = m.group("hook")
    return name if _HOOK_LIKE.match(name) else None
