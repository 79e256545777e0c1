"""Read every SAE checkpoint layout we meet in the wild into one :class:`SparseAutoencoder`; write ours.

Formats are told apart by file names and safetensors header keys only — nothing is unpickled to find out what a
file is. Pickled formats (dictionary_learning ``ae.pt``, openai-style ``state_dict.pth``) are read with
``torch.load(weights_only=True)``, which refuses to run code; :func:`convert_to_safetensors` turns them into our
safetensors layout once so they never need loading that way again.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..errors import SAEFormatError, UnsafeFileError
from ..fileio import atomic_write, check_safetensors_file, ensure_folder
from .model import SparseAutoencoder

SPARSIFY = "sparsify"
SAELENS = "saelens"
DICTIONARY_LEARNING = "dictionary_learning"
OPENAI = "openai"
SPARSIFY_ROOT = "sparsify-multi"
OPENAI_ROOT = "openai-multi"
ROOT_FORMATS = (SPARSIFY_ROOT, OPENAI_ROOT)
BARE = "safetensors"

MAX_JSON_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------------------- file helpers
def _read_json(path: Path) -> dict[str, Any]:
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


def _load_pickled_weights(path: Path) -> dict[str, Tensor]:
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


def _need(tensors: dict[str, Tensor], keys: tuple[str, ...], where: Path) -> None:
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise SAEFormatError(f"{where} lacks tensor(s) {', '.join(missing)}; found: {', '.join(sorted(tensors))}")


def _rows(weight: Tensor, d_sae: int, name: str, where: Path) -> Tensor:
    """A weight as ``[d_sae, d_in]`` rows, whichever way round the file stores it."""
    if weight.ndim == 2 and weight.shape[0] == d_sae:
        return weight
    if weight.ndim == 2 and weight.shape[1] == d_sae:
        return weight.T.contiguous()
    raise SAEFormatError(f"{where}: tensor '{name}' has shape {tuple(weight.shape)}, which fits no layout with "
                         f"d_sae={d_sae}")


def _cast(tensors: dict[str, Tensor], dtype: torch.dtype | None) -> dict[str, Tensor]:
    """Floating tensors in ``dtype`` (None keeps the file's), before any folding, so that a bf16 file asked for
    in float32 is folded in float32 rather than rounded to bf16 first."""
    if dtype is None:
        return tensors
    return {key: v.to(dtype) if v.is_floating_point() else v for key, v in tensors.items()}


def _scale_rows(weight: Tensor, scale: Tensor) -> Tensor:
    """``weight[i] * scale[i]`` computed in at least float32 and returned in ``weight``'s dtype."""
    work = torch.promote_types(weight.dtype, torch.float32)
    return (weight.to(work) * scale.to(work)[:, None]).to(weight.dtype)


def _scale(vector: Tensor, scale: Tensor) -> Tensor:
    work = torch.promote_types(vector.dtype, torch.float32)
    return (vector.to(work) * scale.to(work)).to(vector.dtype)


def _row_norms(weight: Tensor) -> Tensor:
    return weight.to(torch.promote_types(weight.dtype, torch.float32)).norm(dim=-1)


def cfg_int(cfg: dict[str, Any], key: str, where: Path, default: int | None = None) -> int | None:
    """An integer setting from a config, or ``default`` when absent; anything else is a clear format error."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise SAEFormatError(f"{where}: config field '{key}' must be a non-negative integer, got {value!r}")
    return int(value)


def _check_cfg_dims(cfg: dict[str, Any], d_in: int, d_sae: int, where: Path, keys=("d_in", "d_sae")) -> None:
    for key, actual in zip(keys, (d_in, d_sae)):
        claimed = cfg_int(cfg, key, where)
        if claimed not in (None, 0) and claimed != actual:
            raise SAEFormatError(f"{where}: config says {key}={claimed} but the weights have {key}={actual}; "
                                 f"the config and the weights do not belong together")


# ---------------------------------------------------------------------------------------------------- detection
def detect_format(path: str | os.PathLike) -> str:
    """Name of the layout at ``path``: one of sparsify, sparsify-multi, saelens, dictionary_learning, openai,
    openai-multi (sdxl-unbox's ``checkpoints/`` root), safetensors (a bare weights file). Raises
    :class:`SAEFormatError` for anything else."""
    p = Path(path)
    if not p.exists():
        raise SAEFormatError(f"SAE path {p} does not exist")
    if p.is_file():
        if p.suffix == ".safetensors":
            return BARE
        if p.name == "ae.pt" or p.name == "state_dict.pth":
            return detect_format(p.parent)
        if p.name in ("cfg.json", "config.json"):
            return detect_format(p.parent)
        raise SAEFormatError(f"{p} is not a known SAE file; expected a folder, a .safetensors file, ae.pt or "
                             f"state_dict.pth")
    names = {c.name for c in p.iterdir()}
    if "cfg.json" in names and "sae.safetensors" in names:
        return SPARSIFY
    if "cfg.json" in names and "sae_weights.safetensors" in names:
        return SAELENS
    if "config.json" in names and "ae.pt" in names:
        return DICTIONARY_LEARNING
    if "config.json" in names and "state_dict.pth" in names:
        return OPENAI
    if any(_is_sparsify_dir(c) for c in p.iterdir() if c.is_dir()):
        return SPARSIFY_ROOT
    if any(_openai_dir(c) for c in p.iterdir() if c.is_dir()):
        return OPENAI_ROOT
    raise SAEFormatError(
        f"{p} holds no SAE this pack can read. Expected one of: cfg.json + sae.safetensors (sparsify/SAeUron), "
        f"cfg.json + sae_weights.safetensors (SAELens), config.json + ae.pt (dictionary_learning), config.json + "
        f"state_dict.pth (openai-style), or a folder of sparsify or sdxl-unbox hookpoint folders. "
        f"Found: {sorted(names)[:12]}")


def _is_sparsify_dir(p: Path) -> bool:
    return (p / "cfg.json").is_file() and (p / "sae.safetensors").is_file()


def _is_openai_dir(p: Path) -> bool:
    return (p / "config.json").is_file() and (p / "state_dict.pth").is_file()


def _openai_dir(child: Path) -> Path | None:
    """The SAE folder of one sdxl-unbox root entry: the entry itself or its ``final/`` checkpoint."""
    for candidate in (child, child / "final"):
        if _is_openai_dir(candidate):
            return candidate
    return None


# sdxl-unbox names its run folders <hookpoint>_k<k>_hidden<latents>_auxk<..>_bs<..>_lr<..> and keeps the SAE in
# their final/ subfolder (utils/loaders.py of surkovv/sdxl-unbox).
_UNBOX_RUN = re.compile(r"^(?P<hook>.+?)_k\d+_hidden\d+(_.*)?$")
_HOOK_LIKE = re.compile(r"^(unet\.|diffusion_model\.)?((down_blocks|up_blocks|input_blocks|output_blocks)\.\d+|"
                        r"mid_block|middle_block)(\.|$)|^(down|up|mid)\.\d+(\.\d+)?$")


def _hookpoint_named(folder: Path) -> str | None:
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


def root_members(path: str | os.PathLike) -> dict[str, Path]:
    """Hookpoint name → SAE folder for a multi-hookpoint root (sparsify/SAeUron or sdxl-unbox ``checkpoints/``)."""
    root = Path(path)
    members: dict[str, Path] = {}
    for child in sorted(c for c in root.iterdir() if c.is_dir()):
        if _is_sparsify_dir(child):
            members[child.name] = child
        elif (sae_dir := _openai_dir(child)) is not None:
            members[hookpoint_from_folder(sae_dir) or child.name] = sae_dir
    return members


def list_sae_hookpoints(path: str | os.PathLike) -> list[str]:
    """Hookpoint names inside a multi-hookpoint root (one entry for a single SAE: its own hookpoint)."""
    p = Path(path)
    if detect_format(p) in ROOT_FORMATS:
        return sorted(root_members(p))
    return [load_sae(p).hookpoint or ""]


# ---------------------------------------------------------------------------------------------------- loaders
def _load_sparsify(folder: Path, k: int | None = None, weights: Path | None = None,
                   cfg: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> SparseAutoencoder:
    cfg = _read_json(folder / "cfg.json") if cfg is None else cfg
    weights = weights or folder / "sae.safetensors"
    t = _cast(read_safetensors(weights), dtype)
    _need(t, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), weights)
    if "W_skip" in t:
        raise SAEFormatError(f"{weights} has a skip connection (W_skip): transcoders/skip SAEs are not supported")
    if cfg.get("transcode"):
        raise SAEFormatError(f"{folder}: transcoders (cfg transcode=true) are not supported")
    W_enc, W_dec = t["encoder.weight"], t["W_dec"]
    d_sae, d_in = W_enc.shape
    expansion = cfg_int(cfg, "expansion_factor", folder, 0)
    expected_latents = cfg_int(cfg, "num_latents", folder, 0) or expansion * (cfg_int(cfg, "d_in", folder) or d_in)
    _check_cfg_dims({"d_in": cfg.get("d_in"), "num_latents": expected_latents or None}, d_in, d_sae, folder,
                    keys=("d_in", "num_latents"))
    k = k if k is not None else cfg_int(cfg, "k", folder)
    if not k:
        raise SAEFormatError(f"{weights}: the number of active latents k is unknown; pass k explicitly")
    activation = cfg.get("activation", "topk")
    if activation not in ("topk", "groupmax"):
        raise SAEFormatError(f"{folder}: sparsify activation '{activation}' is not supported (topk or groupmax)")
    return SparseAutoencoder(
        W_enc=W_enc, b_enc=t["encoder.bias"], W_dec=_rows(W_dec, d_sae, "W_dec", weights), b_dec=t["b_dec"],
        pre_bias=t["b_dec"], activation=activation, k=int(k),
        input_norm="standardize" if cfg.get("input_unit_norm") else "none",
        hookpoint=cfg.get("hookpoint") or _hookpoint_named(folder), source_format=SPARSIFY,
        meta={"cfg": cfg, "path": str(folder)})


def _saelens_activation(cfg: dict[str, Any]) -> tuple[str, int | None]:
    arch = str(cfg.get("architecture", "standard")).lower()
    act_fn = str(cfg.get("activation_fn_str") or cfg.get("activation_fn") or "relu").lower()
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise SAEFormatError(f"SAELens 'activation_fn_kwargs' must be an object, got {kwargs!r}")
    k = cfg_int(cfg, "k", Path("cfg.json")) if "k" in cfg else cfg_int(kwargs, "k", Path("cfg.json"))
    if arch == "topk" or act_fn == "topk":
        return "topk", k
    if arch in ("standard", "jumprelu", "gated"):
        if act_fn not in ("relu",):
            raise SAEFormatError(f"SAELens activation function '{act_fn}' is not supported (relu or topk)")
        return ("relu" if arch == "standard" else arch), None
    raise SAEFormatError(f"SAELens architecture '{arch}' is not supported (standard, topk, jumprelu, gated)")


def _load_saelens(folder: Path, k: int | None = None, weights: Path | None = None,
                  cfg: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> SparseAutoencoder:
    """SAELens 5.x and 6.x folders.

    Two per-latent scalings are folded into the weights so the in-memory SAE computes the library's numbers:
    ``rescale_acts_by_decoder_norm`` (6.x topk) multiplies the pre-activations by each latent's decoder norm
    *before* TopK and divides it out again in decode, which equals encoder rows and bias times the norm and unit
    decoder rows; ``finetuning_scaling_factor`` (5.x; tensor ``finetuning_scaling_factor`` or the older
    ``scaling_factor``) multiplies codes before decoding, which equals scaled decoder rows.
    """
    cfg = _read_json(folder / "cfg.json") if cfg is None else cfg
    weights = weights or folder / "sae_weights.safetensors"
    t = _cast(read_safetensors(weights), dtype)
    activation, cfg_k = _saelens_activation(cfg)
    _need(t, ("W_enc", "W_dec", "b_dec") + (("b_gate", "b_mag", "r_mag") if activation == "gated" else ("b_enc",)),
          weights)
    d_sae = cfg_int(cfg, "d_sae", folder) or int(t["W_dec"].shape[0])
    W_enc = _rows(t["W_enc"], d_sae, "W_enc", weights)
    W_dec = _rows(t["W_dec"], d_sae, "W_dec", weights)
    _check_cfg_dims(cfg, W_enc.shape[1], W_enc.shape[0], folder)
    norm = str(cfg.get("normalize_activations") or "none")
    input_norm = {"none": "none", "constant_norm_rescale": "rescale", "layer_norm": "standardize"}.get(norm)
    if input_norm is None:
        raise SAEFormatError(f"{folder}: SAELens normalize_activations='{norm}' is not supported "
                             f"(none, constant_norm_rescale, layer_norm)")
    b_dec = t["b_dec"]
    pre_bias = b_dec if cfg.get("apply_b_dec_to_input", True) else torch.zeros_like(b_dec)
    extra: dict[str, Any] = {}
    if activation == "jumprelu":
        _need(t, ("threshold",), weights)
        extra["threshold"] = t["threshold"]
    if activation == "gated":
        extra["W_mag"] = W_enc * t["r_mag"].exp()[:, None]
        extra["b_mag"] = t["b_mag"]
        b_enc = t["b_gate"]
    else:
        b_enc = t["b_enc"]
    meta: dict[str, Any] = {"cfg": cfg, "path": str(folder)}
    if cfg.get("rescale_acts_by_decoder_norm"):
        if activation != "topk":
            raise SAEFormatError(f"{folder}: rescale_acts_by_decoder_norm is only known for SAELens topk SAEs, "
                                 f"not '{activation}'; convert the SAE with SAELens' fold_W_dec_norm() first")
        if dtype is None and W_dec.dtype in (torch.bfloat16, torch.float16):
            # Folded 16-bit weights would be rounded after scaling, which flips near-tied TopK choices that the
            # library (scaling after its matmul) keeps: fold and run in float32 instead.
            W_enc, W_dec, b_enc, b_dec, pre_bias = (v.float() for v in (W_enc, W_dec, b_enc, b_dec, pre_bias))
            t = _cast(t, torch.float32)
            meta["upcast"] = "float32, so folding the decoder norms does not round the weights"
        norms = _row_norms(W_dec).clamp_min(1e-12)
        W_enc, b_enc = _scale_rows(W_enc, norms), _scale(b_enc, norms)
        W_dec = _scale_rows(W_dec, 1.0 / norms)
        meta["folded"] = "decoder norms into the encoder (rescale_acts_by_decoder_norm)"
    scaling = t.get("finetuning_scaling_factor", t.get("scaling_factor"))
    if scaling is not None and not bool((scaling == 1).all()):
        if scaling.shape != (W_dec.shape[0],):
            raise SAEFormatError(f"{weights}: finetuning scaling factor has shape {tuple(scaling.shape)}, "
                                 f"expected ({W_dec.shape[0]},); the weights file does not belong to this config")
        W_dec = _scale_rows(W_dec, scaling)
        meta["folded"] = "finetuning_scaling_factor into the decoder"
    hook = cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name")
    if activation == "topk" and k is None and cfg_k is None:
        raise SAEFormatError(f"{folder}: a topk SAE without 'k' in its config; pass k explicitly")
    return SparseAutoencoder(
        W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, pre_bias=pre_bias, activation=activation,
        k=int(k if k is not None else cfg_k) if activation == "topk" else None, input_norm=input_norm,
        hookpoint=hook, source_format=SAELENS, meta=meta, **extra)


# Keys the dictionary_learning trainers write into config.json only since their December 2024 rewrite.
DL_POST_2024_KEYS = ("sparsity_warmup_steps", "decay_start", "target_l0")


def dl_scales_codes_by_decoder_norm(trainer_cfg: dict[str, Any]) -> bool:
    """Whether a dictionary_learning JumpReLU/Gated file comes from the code that scaled codes by decoder norms.

    Until 2025-01-01 (JumpReluAutoEncoder) and 2025-01-07 (GatedAutoEncoder) the library's ``encode`` multiplied
    each code by its latent's decoder norm and ``decode`` divided it out again; since then (and in every PyPI
    release) codes are not scaled. The files carry no library version, so the trainer config decides: trainers
    from the December 2024 rewrite on write at least one of :data:`DL_POST_2024_KEYS`; a config with none of them
    is read the old way. Files trained from a git checkout between 2024-12-27 and those dates are read the new
    way, although that code still scaled; with unit-norm decoders both readings agree.
    """
    return not any(key in trainer_cfg for key in DL_POST_2024_KEYS)


def _load_dictionary_learning(folder: Path, k: int | None = None, dtype: torch.dtype | None = None,
                              **_: Any) -> SparseAutoencoder:
    """dictionary_learning ``config.json`` + ``ae.pt``, computing what ``utils.load_dictionary`` computes.

    ``AutoEncoder`` loads with ``normalize_decoder=True``, which rescales encoder rows and bias by the decoder
    norms and makes the decoder unit-norm unless it already is (the library's ``allclose`` test); JumpReLU and
    Gated codes are scaled by the decoder norm only for files :func:`dl_scales_codes_by_decoder_norm` dates
    before 2025.
    """
    config = _read_json(folder / "config.json")
    trainer = config.get("trainer", config)
    if not isinstance(trainer, dict):
        raise SAEFormatError(f"{folder / 'config.json'}: 'trainer' must be an object")
    cls = trainer.get("dict_class", "AutoEncoder")
    t = _cast(_load_pickled_weights(folder / "ae.pt"), dtype)
    legacy = dl_scales_codes_by_decoder_norm(trainer)
    where = folder / "ae.pt"
    legacy = legacy and cls in ("JumpReluAutoEncoder", "GatedAutoEncoder")
    meta: dict[str, Any] = {"cfg": config, "path": str(folder), "dict_class": cls,
                            "codes_scaled_by_decoder_norm": legacy}
    hook = trainer.get("submodule_name") or trainer.get("hookpoint")
    if cls == "AutoEncoder":
        _need(t, ("bias", "encoder.weight", "encoder.bias", "decoder.weight"), where)
        d_sae = t["encoder.weight"].shape[0]
        W_enc, b_enc = t["encoder.weight"], t["encoder.bias"]
        W_dec = _rows(t["decoder.weight"], d_sae, "decoder.weight", where)
        norms = _row_norms(W_dec)
        if not torch.allclose(norms, torch.ones_like(norms)):
            W_enc, b_enc, W_dec = _scale_rows(W_enc, norms), _scale(b_enc, norms), _scale_rows(W_dec, 1.0 / norms)
            meta["folded"] = "decoder norms into the encoder (load_dictionary's normalize_decoder)"
        sae = dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=t["bias"], pre_bias=t["bias"], activation="relu")
    elif cls in ("AutoEncoderTopK", "BatchTopKSAE"):
        _need(t, ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec"), where)
        d_sae = t["encoder.weight"].shape[0]
        k = int(k if k is not None else t["k"].item() if "k" in t else cfg_int(trainer, "k", folder, 0))
        sae = dict(W_enc=t["encoder.weight"], b_enc=t["encoder.bias"],
                   W_dec=_rows(t["decoder.weight"], d_sae, "decoder.weight", where), b_dec=t["b_dec"],
                   pre_bias=t["b_dec"], activation="topk", k=k)
        threshold = float(t["threshold"].item()) if "threshold" in t and t["threshold"].numel() == 1 else -1.0
        if cls == "BatchTopKSAE" and threshold >= 0:
            # BatchTopK's inference rule is a global threshold on the ReLU'd pre-activations.
            sae.update(activation="jumprelu", k=None, threshold=torch.full((d_sae,), threshold, dtype=sae["W_enc"].dtype))
    elif cls == "JumpReluAutoEncoder":
        _need(t, ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"), where)
        d_sae = t["b_enc"].shape[0]
        W_enc, b_enc, threshold = _rows(t["W_enc"], d_sae, "W_enc", where), t["b_enc"], t["threshold"]
        W_dec = _rows(t["W_dec"], d_sae, "W_dec", where)
        if legacy:
            # pre-2025 encode() multiplied codes by the decoder norm and decode() divided it out: fold it in.
            norms = _row_norms(W_dec).clamp_min(1e-12)
            W_enc, b_enc, threshold = _scale_rows(W_enc, norms), _scale(b_enc, norms), _scale(threshold, norms)
            W_dec = _scale_rows(W_dec, 1.0 / norms)
        sae = dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=t["b_dec"], pre_bias=torch.zeros_like(t["b_dec"]),
                   activation="jumprelu", threshold=threshold)
    elif cls == "GatedAutoEncoder":
        _need(t, ("decoder_bias", "encoder.weight", "r_mag", "gate_bias", "mag_bias", "decoder.weight"), where)
        d_sae = t["encoder.weight"].shape[0]
        W_dec = _rows(t["decoder.weight"], d_sae, "decoder.weight", where)
        W_enc = t["encoder.weight"]
        mag_scale, b_mag = t["r_mag"].exp(), t["mag_bias"]
        if legacy:
            # pre-2025 encode() multiplied codes by the decoder norm and decode() divided it out: fold it in.
            norms = _row_norms(W_dec).clamp_min(1e-12)
            W_dec = _scale_rows(W_dec, 1.0 / norms)
            mag_scale, b_mag = _scale(mag_scale, norms), _scale(b_mag, norms)
        sae = dict(W_enc=W_enc, b_enc=t["gate_bias"], W_dec=W_dec, b_dec=t["decoder_bias"],
                   pre_bias=t["decoder_bias"], activation="gated", W_mag=_scale_rows(W_enc, mag_scale), b_mag=b_mag)
    else:
        raise SAEFormatError(f"{folder}: dictionary_learning class '{cls}' is not supported (AutoEncoder, "
                             f"AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder, GatedAutoEncoder)")
    _check_cfg_dims({"d_in": trainer.get("activation_dim"), "d_sae": trainer.get("dict_size")},
                    sae["W_enc"].shape[1], sae["W_enc"].shape[0], folder)
    return SparseAutoencoder(**sae, hookpoint=hook, source_format=DICTIONARY_LEARNING, meta=meta)


def _load_openai(folder: Path, k: int | None = None, dtype: torch.dtype | None = None,
                 **_: Any) -> SparseAutoencoder:
    """openai-style k-SAE (sdxl-unbox): its config has no hookpoint, so it is read from the folder name."""
    config = _read_json(folder / "config.json")
    where = folder / "state_dict.pth"
    t = _cast(_load_pickled_weights(where), dtype)
    _need(t, ("encoder.weight", "decoder.weight", "pre_bias", "latent_bias"), where)
    d_sae = t["encoder.weight"].shape[0]
    _check_cfg_dims({"d_model": config.get("d_model"), "n_dirs_local": config.get("n_dirs_local")},
                    t["encoder.weight"].shape[1], d_sae, folder, keys=("d_model", "n_dirs_local"))
    k = k if k is not None else cfg_int(config, "k", folder)
    if not k:
        raise SAEFormatError(f"{folder}/config.json has no 'k'; pass k explicitly")
    return SparseAutoencoder(
        W_enc=t["encoder.weight"], b_enc=t["latent_bias"], W_dec=_rows(t["decoder.weight"], d_sae, "decoder.weight", where),
        b_dec=t["pre_bias"], pre_bias=t["pre_bias"], activation="topk", k=int(k),
        hookpoint=config.get("hookpoint") or config.get("block") or hookpoint_from_folder(folder),
        source_format=OPENAI, input_kind="update",
        meta={"cfg": config, "path": str(folder)})


def _load_bare(path: Path, k: int | None = None, dtype: torch.dtype | None = None, **_: Any) -> SparseAutoencoder:
    keys = set(safetensors_keys(path))
    cfg_path = path.parent / "cfg.json"
    cfg = _read_json(cfg_path) if cfg_path.is_file() else {}
    if {"encoder.weight", "W_dec"} <= keys:
        return _load_sparsify(path.parent, k=k, weights=path, cfg=cfg, dtype=dtype)
    if {"W_enc", "W_dec"} <= keys:
        if "k" not in cfg and k is not None:
            cfg = {**cfg, "architecture": "topk", "k": k}
        if "threshold" in keys and "architecture" not in cfg:
            cfg = {**cfg, "architecture": "jumprelu"}
        return _load_saelens(path.parent, k=k, weights=path, cfg=cfg, dtype=dtype)
    raise SAEFormatError(f"{path}: unrecognised tensor names {sorted(keys)[:10]}; expected sparsify "
                         f"(encoder.weight, W_dec, …) or SAELens (W_enc, W_dec, …) names")


_LOADERS: dict[str, Callable[..., SparseAutoencoder]] = {
    SPARSIFY: _load_sparsify,
    SAELENS: _load_saelens,
    DICTIONARY_LEARNING: _load_dictionary_learning,
    OPENAI: _load_openai,
    BARE: _load_bare,
}


def _pick_hookpoint(root: Path, hookpoint: str | None) -> Path:
    options = root_members(root)
    if hookpoint is None:
        if len(options) == 1:
            return next(iter(options.values()))
        raise SAEFormatError(f"{root} holds SAEs for several hookpoints: say which one (--hookpoint on the command "
                             f"line, the SAE Loader's hookpoint in ComfyUI), one of: {', '.join(options)}")
    from ..hookpoints import (
        equivalent_names,  # local import: hookpoints imports diffusers lazily too
    )

    wanted = set(equivalent_names(hookpoint))
    for name, folder in options.items():
        if set(equivalent_names(name)) & wanted:
            return folder
    raise SAEFormatError(f"{root} has no SAE for hookpoint '{hookpoint}'; available: {', '.join(options)}")


def load_sae(path: str | os.PathLike, *, hookpoint: str | None = None, k: int | None = None,
             device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SparseAutoencoder:
    """Load the SAE at ``path`` (a folder, a multi-hookpoint root, or a weights file), auto-detecting its format.

    ``hookpoint`` chooses inside a multi-hookpoint root (``unet.`` prefixes and LDM/diffusers spellings of the same
    block all match); ``k`` overrides or supplies the number of active latents; the file's dtype is kept unless
    ``dtype`` is given.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt in ROOT_FORMATS:
        p = _pick_hookpoint(p, hookpoint)
        fmt = detect_format(p)
    elif p.is_file() and fmt != BARE:
        p = p.parent
    sae = _LOADERS[fmt](p, k=k, dtype=dtype)
    if device is not None or dtype is not None:
        sae = sae.to(device=device, dtype=dtype)
    return sae


# ---------------------------------------------------------------------------------------------------- writing
def save_sae(sae: SparseAutoencoder, folder: str | os.PathLike, *, hookpoint: str | None = None) -> Path:
    """Write ``sae`` to ``folder`` in the sparsify/SAeUron layout (``cfg.json`` + ``sae.safetensors``).

    SAEs that sparsify cannot express (ReLU, JumpReLU, gated, or no input centring by ``b_dec``) are written in
    the SAELens layout instead, which can; both load back to an identical :class:`SparseAutoencoder`.
    """
    folder = ensure_folder(folder)
    hook = hookpoint or sae.hookpoint
    centred = torch.equal(sae.pre_bias, sae.b_dec)
    if sae.activation in ("topk", "groupmax") and centred and sae.input_norm in ("none", "standardize"):
        cfg = {"d_in": sae.d_in, "num_latents": sae.d_sae, "expansion_factor": sae.d_sae // sae.d_in, "k": sae.k,
               "activation": sae.activation, "normalize_decoder": True, "multi_topk": False,
               "input_unit_norm": sae.input_norm == "standardize"}
        if hook:
            cfg["hookpoint"] = hook
        tensors = {"encoder.weight": sae.W_enc, "encoder.bias": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
        weights_name = "sae.safetensors"
    else:
        if not (centred or not sae.pre_bias.any()):
            raise SAEFormatError("this SAE subtracts an input bias other than b_dec; no supported layout can hold it")
        arch = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}.get(sae.activation)
        if arch is None:
            raise SAEFormatError(f"an SAE with activation '{sae.activation}' cannot be saved in SAELens layout")
        norm = {"none": "none", "rescale": "constant_norm_rescale", "standardize": "layer_norm"}[sae.input_norm]
        cfg = {"d_in": sae.d_in, "d_sae": sae.d_sae, "architecture": arch, "apply_b_dec_to_input": centred,
               "normalize_activations": norm, "dtype": str(sae.dtype).replace("torch.", ""), "hook_name": hook}
        if sae.k is not None:
            cfg["k"] = sae.k
        tensors = {"W_enc": sae.W_enc.T, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
        if sae.activation == "gated":
            ratio = sae.W_mag.norm(dim=-1) / sae.W_enc.norm(dim=-1).clamp_min(1e-30)
            r_mag = ratio.log()
            if not torch.allclose(sae.W_enc * r_mag.exp()[:, None], sae.W_mag, rtol=1e-4, atol=1e-6):
                raise SAEFormatError("gated SAE magnitude weights are not a per-latent rescaling of the gate weights")
            tensors.update(b_gate=sae.b_enc, b_mag=sae.b_mag, r_mag=r_mag)
        else:
            tensors["b_enc"] = sae.b_enc
        if sae.threshold is not None:
            tensors["threshold"] = sae.threshold
        weights_name = "sae_weights.safetensors"
    tensors = {key: value.detach().contiguous().cpu() for key, value in tensors.items()}
    atomic_write(folder / weights_name, lambda tmp: save_file(tensors, str(tmp)))
    atomic_write(folder / "cfg.json", lambda tmp: tmp.write_text(json.dumps(cfg, indent=2)))
    return folder


def convert_to_safetensors(path: str | os.PathLike, out_folder: str | os.PathLike, *, k: int | None = None) -> Path:
    """Convert any readable SAE (notably the pickled formats) into safetensors with :func:`save_sae`."""
    sae = load_sae(path, k=k)
    return save_sae(sae, out_folder)


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Format and shapes of the SAE(s) at ``path``, for ``info`` commands and the UI."""
    fmt = detect_format(path)
    if fmt in ROOT_FORMATS:
        members = root_members(path)
        return {"format": fmt, "hookpoints": {h: load_sae(folder).summary() for h, folder in members.items()}}
    return load_sae(path).summary()


