"""The FLUX.1 family: a diffusers ``FluxTransformer2DModel`` or ComfyUI's/BFL's Flux, what LVO knows about it.

Its block layout (diffusers' ``transformer_blocks.N`` ↔ ComfyUI's ``double_blocks.N``, the two token streams) is
:mod:`lvo_core.hookpoints.flux`, registered with the naming stage because names are matched before models exist;
its forward, packing and backend are :mod:`.flux_model`. Here: detection, default hookpoint and latent shape, the
backend factory, the folder loader, the tiny random model (FLUX.1-dev's structure at width 32) with its random SAE
and character prompt encoder, and FLUX.1-dev's full-size reference config.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...hookpoints import unwrap_unet
from ...hookpoints.flux import FLUX_LAYOUT, flux_layout
from ..conditioning import Conditioning
from ..flow import FlowMatchSchedule, shift_from_config
from ..tiny import CharPromptEncoder, random_sae
from .base import ModelFamily, register_family
from .flux_model import FluxBackend, default_flux_latent_shape, schedule_of

log = logging.getLogger("lvo_core")

HOOKPOINT = "transformer_blocks.18"  # where sdxl-unbox's FLUX.1 SAE reads the image stream
TINY_HOOKPOINT = "transformer_blocks.1"
TINY_SHIFT = 3.0  # near FLUX.1-dev's resolution shift at 1024 px (e^1.15 ≈ 3.16)


# ------------------------------------------------------------------------------------------------ tiny model
FLUX_DEV_VAE = dict(scaling_factor=0.3611, shift_factor=0.1159)


def tiny_flux(seed: int = 0, num_layers: int = 2, num_single_layers: int = 2, sample_size: int = 16,
              guidance_embeds: bool = True, **overrides):
    """A FluxTransformer2DModel with FLUX.1-dev's layout at width 32 (2 heads × 16), in eval mode.

    ``sample_size`` (latent pixels, even) is recorded in its config: FLUX's own config has no resolution, and
    LVO's default latent shape reads it from there (FLUX.1 itself defaults to 128, i.e. 1024 px).
    """
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    config = dict(patch_size=1, in_channels=64, num_layers=num_layers, num_single_layers=num_single_layers,
                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                  guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6))
    config.update(overrides)
    model = FluxTransformer2DModel(**config).eval()
    model.register_to_config(sample_size=sample_size)
    return model


def tiny_flux_vae(seed: int = 0):
    """A tiny AutoencoderKL with FLUX's 16 latent channels and its scaling/shift factors (32 px ↔ 16×16)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32, 32),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=32, sample_size=32, **FLUX_DEV_VAE).eval()


class CharFluxPromptEncoder(nn.Module):
    """FLUX's conditioning from the character table: T5-like tokens, a CLIP-like pooled vector (their mean) and,
    for guidance-distilled models, the guidance FLUX.1-dev samples with (3.5)."""

    def __init__(self, dim: int = 32, pooled_dim: int = 32, length: int = 6, seed: int = 0,
                 guidance: float | None = 3.5):
        super().__init__()
        self.chars = CharPromptEncoder(dim, length, seed)
        self.pooled_dim, self.guidance = pooled_dim, guidance

    @torch.no_grad()
    def forward(self, prompts: list[str]):
        tokens = self.chars(prompts).to(self.chars.table.device)
        pooled = tokens.mean(dim=1)[:, : self.pooled_dim]
        extras = {"pooled_projections": torch.nn.functional.pad(pooled, (0, self.pooled_dim - pooled.shape[1]))}
        if self.guidance is not None:
            extras["guidance"] = torch.full((len(prompts),), float(self.guidance), device=tokens.device)
        return Conditioning(tokens, extras)


def _meta_flux_dev() -> nn.Module:
    """FLUX.1-dev: diffusers' FluxTransformer2DModel defaults (19 double + 38 single blocks, width 3072),
    guidance-distilled."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(guidance_embeds=True)


# ------------------------------------------------------------------------------------------------ the family
class FluxFamily(ModelFamily):
    name = "flux"
    tiny_name = "tiny-flux"
    layout = FLUX_LAYOUT
    folder_name = "transformer"
    prompt_kinds = {"char-flux": lambda cfg: CharFluxPromptEncoder(int(cfg["dim"]), int(cfg["pooled_dim"]),
                                                                   int(cfg.get("length", 6)), int(cfg.get("seed", 0)),
                                                                   cfg.get("guidance"))}
    reference = {"flux": (_meta_flux_dev, (HOOKPOINT,), torch.bfloat16)}  # bf16: FLUX.1's shipped weights

    def owns(self, model: nn.Module) -> bool:
        return flux_layout(model) is not None

    def owns_folder(self, path: Path) -> bool:
        return (path / "transformer" / "config.json").is_file()

    def load_folder(self, path: Path, device: torch.device, dtype: torch.dtype) -> Any:
        """A local diffusers FLUX folder: ``transformer/``, optional ``vae/`` and ``scheduler/`` (its shift; a
        resolution-dependent one is taken at the transformer's default latent size)."""
        from diffusers import AutoencoderKL, FluxTransformer2DModel

        from ..loading import LoadedModel, place, prompt_encoder

        transformer = place(FluxTransformer2DModel.from_pretrained(str(path), subfolder="transformer",
                                                                   local_files_only=True), device, dtype)
        size = json.loads((path / "transformer" / "config.json").read_text()).get("sample_size")
        if size:  # LVO's record of a tiny model's latent size (FLUX's own config has none; diffusers ignores it)
            transformer.register_to_config(sample_size=int(size))
        vae = (place(AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True), device, dtype)
               if (path / "vae" / "config.json").is_file() else None)
        config_file = path / "scheduler" / "scheduler_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {"shift": 1.0}
        _, h, w = default_flux_latent_shape(transformer)
        shift = shift_from_config(config, (h // 2) * (w // 2))
        schedule = FlowMatchSchedule(int(config.get("num_train_timesteps", 1000)), shift)
        return LoadedModel(transformer, schedule.sampler(), vae, prompt_encoder(path, device), str(path),
                           {"config": str(path), "vae": f"{path}/vae" if vae is not None else None, "shift": shift})

    def folder_prompt_encoder(self, folder: Path, device: torch.device) -> tuple[bool, Any]:
        if not (folder / "transformer").is_dir():  # a FLUX folder: T5 + CLIP, not the SD encoder
            return False, None
        if (folder / "text_encoder_2").is_dir():
            log.warning("%s: FLUX's T5 + CLIP prompt encoding is not implemented headless yet; commands that need "
                        "prompts say so (an lvo_prompt_encoder.json works)", folder)
        return True, None

    def encoder_spec(self, encoder: Any) -> dict | None:
        if not isinstance(encoder, CharFluxPromptEncoder):
            return None
        return dict(kind="char-flux", dim=encoder.chars.table.shape[1], length=encoder.chars.length,
                    seed=encoder.chars.seed, pooled_dim=encoder.pooled_dim, guidance=encoder.guidance)

    def default_hookpoint(self, model: nn.Module) -> str:
        """``transformer_blocks.18`` (sdxl-unbox's FLUX.1 SAE), or the last double block when there are fewer."""
        blocks = len(unwrap_unet(model).transformer_blocks)
        return HOOKPOINT if blocks > 18 else f"transformer_blocks.{blocks - 1}"

    def latent_shape(self, model: nn.Module) -> tuple[int, int, int]:
        return default_flux_latent_shape(model)

    def backend(self, model: Any, hookpoint: str, reads: str = "output") -> FluxBackend:
        return FluxBackend(model.denoiser, hookpoint, schedule=schedule_of(model.scheduler), decoder=model.decoder,
                           encode_prompt=model.require_prompts())

    def tiny(self, device: torch.device, dtype: torch.dtype) -> Any:
        from ..loading import LoadedModel, place

        return LoadedModel(place(tiny_flux(), device, dtype), FlowMatchSchedule(1000, TINY_SHIFT).sampler(),
                           place(tiny_flux_vae(), device, dtype), CharFluxPromptEncoder().to(device), self.tiny_name,
                           {"kind": "tiny random FLUX.1-dev-shaped model"})

    def tiny_sae(self) -> Any:
        """On tiny FLUX's image stream."""
        return random_sae(d_in=32, hookpoint=f"transformer.{TINY_HOOKPOINT}")


register_family(FluxFamily())
