"""SAELens 5.x and 6.x: ``cfg.json`` + ``sae_weights.safetensors`` (standard, topk, jumprelu, gated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import SAEFormatError
from ..model import SparseAutoencoder
from .common import cast, cfg_int, check_cfg_dims, need, read_json, read_safetensors, row_norms, rows, scale, scale_rows
from .registry import SAEFormat, register

SAELENS = "saelens"


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


def load_saelens(folder: Path, k: int | None = None, weights: Path | None = None,
                  cfg: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> SparseAutoencoder:
    """SAELens 5.x and 6.x folders.

    Two per-latent scalings are folded into the weights so the in-memory SAE computes the library's numbers:
    ``rescale_acts_by_decoder_norm`` (6.x topk) multiplies the pre-activations by each latent's decoder norm
    *before* TopK and divides it out again in decode, which equals encoder rows and bias times the norm and unit
    decoder rows; ``finetuning_scaling_factor`` (5.x; tensor ``finetuning_scaling_factor`` or the older
    ``scaling_factor``) multiplies codes before decoding, which equals scaled decoder rows.
    """
    cfg = read_json(folder / "cfg.json") if cfg is None else cfg
    weights = weights or folder / "sae_weights.safetensors"
    t = cast(read_safetensors(weights), dtype)
    activation, cfg_k = _saelens_activation(cfg)
    need(t, ("W_enc", "W_dec", "b_dec") + (("b_gate", "b_mag", "r_mag") if activation == "gated" else ("b_enc",)),
          weights)
    d_sae = cfg_int(cfg, "d_sae", folder) or int(t["W_dec"].shape[0])
    W_enc = rows(t["W_enc"], d_sae, "W_enc", weights)
    W_dec = rows(t["W_dec"], d_sae, "W_dec", weights)
    check_cfg_dims(cfg, W_enc.shape[1], W_enc.shape[0], folder)
    norm = str(cfg.get("normalize_activations") or "none")
    input_norm = {"none": "none", "constant_norm_rescale": "rescale", "layer_norm": "standardize"}.get(norm)
    if input_norm is None:
        raise SAEFormatError(f"{folder}: SAELens normalize_activations='{norm}' is not supported "
                             f"(none, constant_norm_rescale, layer_norm)")
    b_dec = t["b_dec"]
    pre_bias = b_dec if cfg.get("apply_b_dec_to_input", True) else torch.zeros_like(b_dec)
    extra: dict[str, Any] = {}
    if activation == "jumprelu":
        need(t, ("threshold",), weights)
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
            t = cast(t, torch.float32)
            meta["upcast"] = "float32, so folding the decoder norms does not round the weights"
        norms = row_norms(W_dec).clamp_min(1e-12)
        W_enc, b_enc = scale_rows(W_enc, norms), scale(b_enc, norms)
        W_dec = scale_rows(W_dec, 1.0 / norms)
        meta["folded"] = "decoder norms into the encoder (rescale_acts_by_decoder_norm)"
    scaling = t.get("finetuning_scaling_factor", t.get("scaling_factor"))
    if scaling is not None and not bool((scaling == 1).all()):
        if scaling.shape != (W_dec.shape[0],):
            raise SAEFormatError(f"{weights}: finetuning scaling factor has shape {tuple(scaling.shape)}, "
                                 f"expected ({W_dec.shape[0]},); the weights file does not belong to this config")
        W_dec = scale_rows(W_dec, scaling)
        meta["folded"] = "finetuning_scaling_factor into the decoder"
    hook = cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name")
    if activation == "topk" and k is None and cfg_k is None:
        raise SAEFormatError(f"{folder}: a topk SAE without 'k' in its config; pass k explicitly")
    return SparseAutoencoder(
        W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, pre_bias=pre_bias, activation=activation,
        k=int(k if k is not None else cfg_k) if activation == "topk" else None, input_norm=input_norm,
        hookpoint=hook, source_format=SAELENS, meta=meta, **extra)


register(SAEFormat(SAELENS, "folder", "cfg.json + sae_weights.safetensors (SAELens)", 20,
                   matches=lambda names: "cfg.json" in names and "sae_weights.safetensors" in names,
                   load=load_saelens, files=("cfg.json",)))
