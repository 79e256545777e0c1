"""Tiny random components shaped like Stable Diffusion 1.x and FLUX.1, for the demo, the tests and the CPU benchmark.

They build in milliseconds from a seed and download nothing. The UNet keeps SD1.x's layout where it matters for
naming — cross-attention levels first, 2 layers per block — so ``up_blocks.1.attentions.1`` is the LDM block
``output_blocks.4.1`` here too; the scheduler uses SD1.5's scaled-linear β schedule. The tiny FLUX keeps FLUX.1-dev's
structure — 16 latent channels packed 2×2 into 64, double- then single-stream blocks, guidance distillation, the
VAE's scaling and shift factors — at widths of 32.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import LVOError
from ..sae.model import SparseAutoencoder

SD15_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def tiny_unet(levels: int = 2, seed: int = 0, sample_size: int = 16, **overrides):
    """A ~1 M-parameter UNet2DConditionModel (widths 32/64, cross-attention dim 32) in eval mode."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    widths = (32, 64, 64, 64)[:levels]
    config = dict(sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=2,
                  block_out_channels=widths,
                  down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
                  cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32)
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


SDXL_TIME_EMBED_DIM = 8  # per size/crop id; SDXL itself uses 256
SDXL_POOLED_DIM = 32  # the pooled text embedding's width; SDXL's second text encoder gives 1280


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
                  addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
                  projection_class_embeddings_input_dim=SDXL_POOLED_DIM + 6 * SDXL_TIME_EMBED_DIM)
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


def tiny_vae(seed: int = 0):
    """A tiny AutoencoderKL with SD's 4 latent channels and one downsampling (32 px images ↔ 16×16 latents)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=32, sample_size=32).eval()


def sd15_scheduler(kind: str = "ddim"):
    """A DDIM (SD1.5's inference settings) or DDPM scheduler with SD1.5's training β schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    if kind == "ddim":
        return DDIMScheduler(**SD15_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    if kind == "ddpm":
        return DDPMScheduler(**SD15_BETAS, clip_sample=False)
    raise LVOError(f"scheduler kind must be 'ddim' or 'ddpm', got '{kind}'")


class CharPromptEncoder(nn.Module):
    """Prompt → ``[B, length, dim]`` from a fixed random table indexed by character codes.

    A stand-in for CLIP where no text encoder can be downloaded: deterministic, and different prompts give
    different conditioning. The empty prompt encodes to zeros.
    """

    def __init__(self, dim: int = 32, length: int = 6, seed: int = 0):
        super().__init__()
        self.register_buffer("table", torch.randn(128, dim, generator=torch.Generator().manual_seed(seed)))
        self.length, self.seed = length, seed

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), self.length, self.table.shape[1])
        for i, prompt in enumerate(prompts):
            codes = torch.tensor([ord(c) % 128 for c in prompt[: self.length]], dtype=torch.long)
            out[i, : len(codes)] = self.table[codes]
        return out


def sdxl_time_ids(batch: int, height: int, width: int) -> torch.Tensor:
    """SDXL's size/crop conditioning ``(original h, w, crop top, left, target h, w)`` for uncropped images."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32).expand(batch, 6).clone()


class CharSDXLPromptEncoder(CharPromptEncoder):
    """:class:`CharPromptEncoder` with SDXL's added conditioning: a pooled embedding (the mean token, projected by a
    fixed random matrix) and the size/crop ids of ``image_size`` pixels."""

    def __init__(self, dim: int = 32, length: int = 6, seed: int = 0, pooled_dim: int = SDXL_POOLED_DIM,
                 image_size: tuple[int, int] = (128, 128)):
        super().__init__(dim, length, seed)
        self.register_buffer("pool", torch.randn(dim, pooled_dim, generator=torch.Generator().manual_seed(seed + 1)))
        self.image_size = image_size

    @torch.no_grad()
    def forward(self, prompts: list[str]):
        from .conditioning import Conditioning

        tokens = super().forward(prompts)
        pooled = tokens.mean(dim=1) @ self.pool
        return Conditioning(tokens, {"text_embeds": pooled, "time_ids": sdxl_time_ids(len(prompts), *self.image_size)})


def random_sae(d_in: int = 32, d_sae: int = 128, k: int = 4, seed: int = 0, **fields) -> SparseAutoencoder:
    """A top-k SAE with unit-norm decoder rows and an encoder near the decoder's transpose (so features fire)."""
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    b_dec = torch.randn(d_in, generator=g) * 0.1
    params = dict(W_enc=W_dec.clone() + 0.1 * torch.randn(d_sae, d_in, generator=g),
                  b_enc=torch.randn(d_sae, generator=g) * 0.1, W_dec=W_dec, b_dec=b_dec, pre_bias=b_dec,
                  activation="topk", k=k, hookpoint="unet.up_blocks.1.attentions.1", source_format="random")
    params.update(fields)
    return SparseAutoencoder(**params)


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
        from .conditioning import Conditioning

        tokens = self.chars(prompts).to(self.chars.table.device)
        pooled = tokens.mean(dim=1)[:, : self.pooled_dim]
        extras = {"pooled_projections": torch.nn.functional.pad(pooled, (0, self.pooled_dim - pooled.shape[1]))}
        if self.guidance is not None:
            extras["guidance"] = torch.full((len(prompts),), float(self.guidance), device=tokens.device)
        return Conditioning(tokens, extras)
