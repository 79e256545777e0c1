"""Tiny random components shaped like Stable Diffusion 1.x, for the demo, the tests and the CPU benchmark; the
other families' tiny models (built on these pieces) live in their family modules (:mod:`lvo_core.model.families`).

They build in milliseconds from a seed and download nothing. The UNet keeps SD1.x's layout where it matters for
naming — cross-attention levels first, 2 layers per block — so ``up_blocks.1.attentions.1`` is the LDM block
``output_blocks.4.1`` here too; the scheduler uses SD1.5's scaled-linear β schedule. The character prompt encoder
stands in for CLIP.
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
