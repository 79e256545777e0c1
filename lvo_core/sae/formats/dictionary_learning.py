"""dictionary_learning (saprmarks): ``config.json`` + pickled ``ae.pt``, read with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import SAEFormatError
from ..model import SparseAutoencoder
from .common import (
    cast,
    cfg_int,
    check_cfg_dims,
    load_pickled_weights,
    need,
    read_json,
    row_norms,
    rows,
    scale,
    scale_rows,
)
from .registry import SAEFormat, register

DICTIONARY_LEARNING = "dictionary_learning"
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
    config = read_json(folder / "config.json")
    trainer = config.get("trainer", config)
    if not isinstance(trainer, dict):
        raise SAEFormatError(f"{folder / 'config.json'}: 'trainer' must be an object")
    cls = trainer.get("dict_class", "AutoEncoder")
    t = cast(load_pickled_weights(folder / "ae.pt"), dtype)
    legacy = dl_scales_codes_by_decoder_norm(trainer)
    where = folder / "ae.pt"
    legacy = legacy and cls in ("JumpReluAutoEncoder", "GatedAutoEncoder")
    meta: dict[str, Any] = {"cfg": config, "path": str(folder), "dict_class": cls,
                            "codes_scaled_by_decoder_norm": legacy}
    hook = trainer.get("submodule_name") or trainer.get("hookpoint")
    if cls == "AutoEncoder":
        need(t, ("bias", "encoder.weight", "encoder.bias", "decoder.weight"), where)
        d_sae = t["encoder.weight"].shape[0]
        W_enc, b_enc = t["encoder.weight"], t["encoder.bias"]
        W_dec = rows(t["decoder.weight"], d_sae, "decoder.weight", where)
        norms = row_norms(W_dec)
        if not torch.allclose(norms, torch.ones_like(norms)):
            W_enc, b_enc, W_dec = scale_rows(W_enc, norms), scale(b_enc, norms), scale_rows(W_dec, 1.0 / norms)
            meta["folded"] = "decoder norms into the encoder (load_dictionary's normalize_decoder)"
        sae = dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=t["bias"], pre_bias=t["bias"], activation="relu")
    elif cls in ("AutoEncoderTopK", "BatchTopKSAE"):
        need(t, ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec"), where)
        d_sae = t["encoder.weight"].shape[0]
        k = int(k if k is not None else t["k"].item() if "k" in t else cfg_int(trainer, "k", folder, 0))
        sae = dict(W_enc=t["encoder.weight"], b_enc=t["encoder.bias"],
                   W_dec=rows(t["decoder.weight"], d_sae, "decoder.weight", where), b_dec=t["b_dec"],
                   pre_bias=t["b_dec"], activation="topk", k=k)
        threshold = float(t["threshold"].item()) if "threshold" in t and t["threshold"].numel() == 1 else -1.0
        if cls == "BatchTopKSAE" and threshold >= 0:
            # BatchTopK's inference rule is a global threshold on the ReLU'd pre-activations.
            sae.update(activation="jumprelu", k=None, threshold=torch.full((d_sae,), threshold, dtype=sae["W_enc"].dtype))
    elif cls == "JumpReluAutoEncoder":
        need(t, ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"), where)
        d_sae = t["b_enc"].shape[0]
        W_enc, b_enc, threshold = rows(t["W_enc"], d_sae, "W_enc", where), t["b_enc"], t["threshold"]
        W_dec = rows(t["W_dec"], d_sae, "W_dec", where)
        if legacy:
            # pre-2025 encode() multiplied codes by the decoder norm and decode() divided it out: fold it in.
            norms = row_norms(W_dec).clamp_min(1e-12)
            W_enc, b_enc, threshold = scale_rows(W_enc, norms), scale(b_enc, norms), scale(threshold, norms)
            W_dec = scale_rows(W_dec, 1.0 / norms)
        sae = dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=t["b_dec"], pre_bias=torch.zeros_like(t["b_dec"]),
                   activation="jumprelu", threshold=threshold)
    elif cls == "GatedAutoEncoder":
        need(t, ("decoder_bias", "encoder.weight", "r_mag", "gate_bias", "mag_bias", "decoder.weight"), where)
        d_sae = t["encoder.weight"].shape[0]
        W_dec = rows(t["decoder.weight"], d_sae, "decoder.weight", where)
        W_enc = t["encoder.weight"]
        mag_scale, b_mag = t["r_mag"].exp(), t["mag_bias"]
        if legacy:
            # pre-2025 encode() multiplied codes by the decoder norm and decode() divided it out: fold it in.
            norms = row_norms(W_dec).clamp_min(1e-12)
            W_dec = scale_rows(W_dec, 1.0 / norms)
            mag_scale, b_mag = scale(mag_scale, norms), scale(b_mag, norms)
        sae = dict(W_enc=W_enc, b_enc=t["gate_bias"], W_dec=W_dec, b_dec=t["decoder_bias"],
                   pre_bias=t["decoder_bias"], activation="gated", W_mag=scale_rows(W_enc, mag_scale), b_mag=b_mag)
    else:
        raise SAEFormatError(f"{folder}: dictionary_learning class '{cls}' is not supported (AutoEncoder, "
                             f"AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder, GatedAutoEncoder)")
    check_cfg_dims({"d_in": trainer.get("activation_dim"), "d_sae": trainer.get("dict_size")},
                    sae["W_enc"].shape[1], sae["W_enc"].shape[0], folder)
    return SparseAutoencoder(**sae, hookpoint=hook, source_format=DICTIONARY_LEARNING, meta=meta)


register(SAEFormat(DICTIONARY_LEARNING, "folder", "config.json + ae.pt (dictionary_learning)", 30,
                   matches=lambda names: "config.json" in names and "ae.pt" in names,
                   load=_load_dictionary_learning, files=("config.json", "ae.pt")))
