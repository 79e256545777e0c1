"""Writing SAEs: our own layout is sparsify's (SAELens' for what sparsify cannot express), always safetensors;
converting turns any readable SAE, notably the pickled formats, into it once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ...errors import SAEFormatError
from ...fileio import atomic_write, ensure_folder
from ..model import SparseAutoencoder
from .registry import load_sae

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
