"""How much memory LVO's trainable copy takes on full-size architectures, measured without any weights.

The optimizer runs on a copy of the model up to the hooked block (ComfyUI's weights are inference tensors;
:func:`~lvo_core.model.backend.trainable_copy`). Its size decides whether LVO fits beside the loaded model, so it is
measured here on the real architectures, built on PyTorch's ``meta`` device from their published configs: the
same code path as a real run, no download, no memory.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import LVOError
from ..hookpoints import resolve_hookpoint

# the diffusers UNet configs of runwayml/stable-diffusion-v1-5 and stabilityai/sdxl-turbo (= SDXL base 1.0)
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "sd15": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 cross_attention_dim=768, attention_head_dim=8),
    "sdxl": dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
}
# FLUX.1-dev: diffusers' FluxTransformer2DModel defaults (19 double + 38 single blocks, width 3072), guidance-distilled
FLUX_DEV = dict(guidance_embeds=True)
# the blocks people hook: SAeUron's on SD1.5, sdxl-unbox's four on SDXL(-Turbo) and its FLUX.1 SAE
HOOKPOINTS = {"sd15": ("up_blocks.1.attentions.1",), "flux": ("transformer_blocks.18",),
              "sdxl": ("down_blocks.2.attentions.1", "mid_block.attentions.0", "up_blocks.0.attentions.0",
                       "up_blocks.0.attentions.1")}


def meta_model(arch: str) -> torch.nn.Module:
    """The full-size architecture with every parameter on the meta device (shapes only, no storage)."""
    from diffusers import FluxTransformer2DModel, UNet2DConditionModel

    if arch != "flux" and arch not in ARCHITECTURES:
        raise LVOError(f"unknown architecture '{arch}'; known: {', '.join([*ARCHITECTURES, 'flux'])}")
    with torch.device("meta"):
        return FluxTransformer2DModel(**FLUX_DEV) if arch == "flux" else UNet2DConditionModel(**ARCHITECTURES[arch])


def copy_sizes(arch: str, dtype: torch.dtype | None = None) -> list[dict[str, Any]]:
    """One row per usual hookpoint: parameters of the whole model and of the trainable copy, and the copy's GiB in
    ``dtype`` (as people run these models: fp16 for the UNets, bf16 — FLUX.1's shipped weights — for FLUX)."""
    from .backend import trainable_copy
    from .flux import flux_trainable_copy

    dtype = dtype or (torch.bfloat16 if arch == "flux" else torch.float16)
    model = meta_model(arch)
    copy_fn = flux_trainable_copy if arch == "flux" else trainable_copy
    total = sum(p.numel() for p in model.parameters())
    item = torch.empty((), dtype=dtype).element_size()
    rows = []
    for name in HOOKPOINTS[arch]:
        copy, _ = copy_fn(model, resolve_hookpoint(model, name))
        params = sum(p.numel() for p in copy.parameters())
        rows.append({"architecture": arch, "hookpoint": name, "model_params": total, "copy_params": params,
                     "copy_fraction": round(params / total, 3), "dtype": str(dtype).removeprefix("torch."),
                     "copy_gib": round(params * item / 2 ** 30, 3)})
    return rows
