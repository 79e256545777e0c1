"""The SDXL family: a UNet with SDXL's added conditioning (diffusers' ``addition_embed_type="text_time"``, LDM's
``label_emb``) — the pooled text embedding and the size/crop ids, carried by a
:class:`~lvo_core.model.conditioning.Conditioning`. It shares the SD family's UNet layout and backend; what is its
own: detection, the two CLIP encoders of a diffusers folder, the tiny SDXL-shaped model with its random SAE (read on
the block's update, as sdxl-unbox's SAEs are) and SDXL base 1.0's full-size config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import LVOError
from ..conditioning import Conditioning
from ..tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_vae
from .base import register_family
from .sd import SDFamily, meta_unet

TIME_EMBED_DIM = 8  # per size/crop id; SDXL itself uses 256
POOLED_DIM = 32  # the pooled text embedding's width; SDXL's second text encoder gives 1280
# the diffusers UNet config of stabilityai/sdxl-turbo (= SDXL base 1.0)
SDXL = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
HOOKPOINTS = ("down_blocks.2.attentions.1", "mid_block.attentions.0", "up_blocks.0.attentions.0",
              "up_blocks.0.attentions.1")  # sdxl-unbox's four


def tiny_sdxl_unet(seed: int = 0, sample_size: int = 16, **overrides):
    """A small UNet2DConditionModel shaped like SDXL: three levels (no attention at the first), linear
    projections, ``text_time`` added conditioning (pooled text embedding + 6 size/crop ids), so sdxl-unbox's
    blocks ``down_blocks.2.attentions.1``, ``mid_block.attentions.0`` and ``up_blocks.0.attentions.0/1`` exist."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    config = dict(sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=2,
                  block_out_channels=(32, 64, 64), transformer_layers_per_block=(1, 1, 2),
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                  cross_attention_dim=32, attention_head_dim=(2, 4, 4), norm_num_groups=32,
                  use_linear_projection=True, addition_embed_type="text_time",
                  addition_time_embed_dim=TIME_EMBED_DIM,
                  projection_class_embeddings_input_dim=POOLED_DIM + 6 * TIME_EMBED_DIM)
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


def sdxl_time_ids(batch: int, height: int, width: int) -> torch.Tensor:
    """SDXL's size/crop conditioning ``(original h, w, crop top, left, target h, w)`` for uncropped images."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).expand(batch, 6).clone()


class CharSDXLPromptEncoder(CharPromptEncoder):
    """:class:`CharPromptEncoder` with SDXL's added conditioning: a pooled embedding (the mean token, projected by a
    fixed random matrix) and the size/crop ids of ``image_size`` pixels."""

    def __init__(self, dim: int = 32, length: int = 6, seed: int = 0, pooled_dim: int = POOLED_DIM,
                 image_size: tuple[int, int] = (128, 128)):
        super().__init__(dim, length, seed)
        self.register_buffer("pool", torch.randn(dim, pooled_dim, generator=torch.Generator().manual_seed(seed + 1)))
        self.image_size = image_size

    @torch.no_grad()
    def forward(self, prompts: list[str]):
        tokens = super().forward(prompts)
        pooled = tokens.mean(dim=1) @ self.pool
        return Conditioning(tokens, {"text_embeds": pooled, "time_ids": sdxl_time_ids(len(prompts), *self.image_size)})


def clip_encoder(folder: Path, device: torch.device, image_size: tuple[int, int]):
    """SDXL's two CLIP encoders as diffusers' SDXL pipeline uses them: both penultimate hidden states side by side
    as tokens, the second encoder's projected pooled output as ``text_embeds``, uncropped size ids."""
    try:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
    except ImportError as exc:
        raise LVOError(f"{folder} has SDXL's CLIP text encoders; encoding prompts with them needs the optional "
                       f"package transformers (`pip install transformers`)") from exc

    pairs = [(CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True),
              CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder", local_files_only=True)),
             (CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer_2", local_files_only=True),
              CLIPTextModelWithProjection.from_pretrained(str(folder), subfolder="text_encoder_2",
                                                          local_files_only=True))]
    pairs = [(tok, enc.to(device).eval()) for tok, enc in pairs]

    @torch.no_grad()
    def encode(prompts: list[str]) -> Conditioning:
        states, pooled = [], None
        for tokenizer, encoder in pairs:
            ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(device)
            out = encoder(ids, output_hidden_states=True)
            states.append(out.hidden_states[-2])
            pooled = out[0]  # the projected pooled embedding of the last (projection) encoder
        return Conditioning(torch.cat(states, dim=-1),
                            {"text_embeds": pooled, "time_ids": sdxl_time_ids(len(prompts), *image_size).to(device)})
    return encode


def image_size(folder: Path) -> tuple[int, int]:
    """Pixel size the UNet was configured for (latent sample size × the VAE's 8× downsampling)."""
    config_file = folder / "unet" / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    size = int(config.get("sample_size", 128)) * 8
    return size, size


class SDXLFamily(SDFamily):
    name = "sdxl"
    tiny_name = "tiny-sdxl"
    prompt_kinds = {"char-sdxl": lambda cfg: CharSDXLPromptEncoder(
        int(cfg["dim"]), int(cfg.get("length", 6)), int(cfg.get("seed", 0)), pooled_dim=int(cfg["pooled_dim"]),
        image_size=tuple(cfg["image_size"]))}
    reference = {"sdxl": (lambda: meta_unet(SDXL), HOOKPOINTS, torch.float16)}

    def owns(self, model: nn.Module) -> bool:
        config = getattr(model, "config", None)
        if hasattr(model, "down_blocks"):
            return getattr(config, "addition_embed_type", None) == "text_time"
        return hasattr(model, "input_blocks") and hasattr(model, "label_emb")

    def folder_prompt_encoder(self, folder: Path, device: torch.device) -> tuple[bool, Any]:
        if not (folder / "text_encoder_2").is_dir():
            return False, None
        from ..loading import LazyPromptEncoder

        return True, LazyPromptEncoder(lambda: clip_encoder(folder, device, image_size(folder)))

    def encoder_spec(self, encoder: Any) -> dict | None:
        if not isinstance(encoder, CharSDXLPromptEncoder):
            return None
        return dict(kind="char-sdxl", dim=encoder.table.shape[1], length=encoder.length, seed=encoder.seed,
                    pooled_dim=encoder.pool.shape[1], image_size=list(encoder.image_size))

    def tiny(self, device: torch.device, dtype: torch.dtype) -> Any:
        from ..loading import LoadedModel, place

        return LoadedModel(place(tiny_sdxl_unet(), device, dtype), sd15_scheduler(), place(tiny_vae(), device, dtype),
                           CharSDXLPromptEncoder().to(device), self.tiny_name,
                           {"kind": "tiny random SDXL-shaped model"})

    def tiny_sae(self) -> Any:
        """On the SDXL-shaped model's ``up_blocks.0.attentions.1`` update (output − input), like sdxl-unbox's."""
        return random_sae(d_in=64, d_sae=256, input_kind="update", hookpoint="unet.up_blocks.0.attentions.1")


register_family(SDXLFamily())
