"""The SD1.x/2.x family: a diffusers ``UNet2DConditionModel`` or an LDM-layout UNet (ComfyUI's) without added
conditioning. Its block layout is the UNet layout of :mod:`lvo_core.hookpoints` (shared with SDXL), its backend
:class:`~lvo_core.model.backend.DiffusersBackend`; its folders are loaded by :mod:`lvo_core.model.loading`'s UNet
loader. Also here: the tiny random SD-shaped model with its random SAE, SD1.5's full-size config (memory estimates),
and the conversion of a diffusers UNet's weights to LDM names (single-file checkpoints).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...errors import HookpointError
from ...hookpoints import _diffusers_key_to_ldm, layout_of, unwrap_unet
from ..backend import DiffusersBackend
from ..tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_unet, tiny_vae
from .base import ModelFamily, register_family

HOOKPOINT = "up_blocks.1.attentions.1"  # SAeUron's block on SD1.4/1.5 (LDM: output_blocks.4.1)
# the diffusers UNet config of runwayml/stable-diffusion-v1-5
SD15 = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)


def meta_unet(config: dict) -> nn.Module:
    """A diffusers UNet of ``config`` (built where the caller puts the default device, e.g. ``meta``)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**config)


def unet_latent_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of the latents a diffusers UNet was configured for."""
    config = unwrap_unet(model).config
    return config.in_channels, config.sample_size, config.sample_size


class SDFamily(ModelFamily):
    name = "sd"
    tiny_name = "tiny"
    prompt_kinds = {"char": lambda cfg: CharPromptEncoder(int(cfg["dim"]), int(cfg.get("length", 6)),
                                                          int(cfg.get("seed", 0)))}
    reference = {"sd15": (lambda: meta_unet(SD15), (HOOKPOINT,), torch.float16)}  # fp16: how people run them

    def owns(self, model: nn.Module) -> bool:
        return hasattr(model, "down_blocks") or hasattr(model, "input_blocks")

    def encoder_spec(self, encoder: Any) -> dict | None:
        if type(encoder) is not CharPromptEncoder:
            return None
        return dict(kind="char", dim=encoder.table.shape[1], length=encoder.length, seed=encoder.seed)

    def default_hookpoint(self, model: nn.Module) -> str:
        return HOOKPOINT

    def latent_shape(self, model: nn.Module) -> tuple[int, int, int]:
        return unet_latent_shape(model)

    def backend(self, model: Any, hookpoint: str, reads: str = "output") -> DiffusersBackend:
        return DiffusersBackend(model.denoiser, hookpoint, scheduler=model.scheduler, decoder=model.decoder,
                                encode_prompt=model.require_prompts(), reads=reads)

    def tiny(self, device: torch.device, dtype: torch.dtype) -> Any:
        from ..loading import LoadedModel, place

        return LoadedModel(place(tiny_unet(), device, dtype), sd15_scheduler(), place(tiny_vae(), device, dtype),
                           CharPromptEncoder().to(device), self.tiny_name, {"kind": "tiny random SD-shaped model"})

    def tiny_sae(self) -> Any:
        """On the tiny model's ``up_blocks.1.attentions.1`` output."""
        return random_sae()


def ldm_state_dict(unet: nn.Module, prefix: str = "model.diffusion_model.") -> dict[str, Tensor]:
    """A diffusers UNet's weights under LDM names (what single-file SD checkpoints and ComfyUI use); diffusers'
    own converter maps it back exactly (tested), so ``from_single_file`` loads the result."""
    unet = unwrap_unet(unet)
    if layout_of(unet) != "diffusers":
        raise HookpointError("ldm_state_dict needs a diffusers UNet")
    lpb = int(unet.config.layers_per_block)
    levels = {i for i, b in enumerate(unet.up_blocks) if getattr(b, "attentions", None)}
    out = {}
    for key, value in unet.state_dict().items():
        ldm = _diffusers_key_to_ldm(key, lpb, levels)
        if ldm is None:
            raise HookpointError(f"no LDM name for parameter '{key}'")
        out[prefix + ldm] = value.contiguous()
    return out


register_family(SDFamily())
