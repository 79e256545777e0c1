"""Shared fixtures: tiny random SD-shaped diffusers models and SAEs, built in milliseconds, nothing downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn

from lvo_core.sae.model import SparseAutoencoder

torch.set_num_threads(int(os.environ.get("LVO_TEST_THREADS", "2")))

SD15_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def make_unet(levels: int = 2, seed: int = 0, **overrides):
    """A tiny UNet2DConditionModel laid out like SD1.x: CrossAttn levels, then a plain bottom level; 2 layers per
    block, so ``up_blocks.1.attentions.1`` ↔ ``output_blocks.4.1`` exactly as in SD1.5."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    widths = (32, 64, 64, 64)[:levels]
    config = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=widths,
                  down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
                  cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32)
    config.update(overrides)
    return UNet2DConditionModel(**config).eval()


@pytest.fixture(scope="session")
def unet():
    return make_unet()


@pytest.fixture(scope="session")
def sd15_unet():
    """Four levels like SD1.5 (three with cross-attention), at tiny widths: for naming tests."""
    return make_unet(levels=4)


@pytest.fixture(scope="session")
def sdxl_unet():
    """SDXL's layout at tiny widths: three levels, attention on the lower two, transformer depth 1/2."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), cross_attention_dim=32, attention_head_dim=2,
        norm_num_groups=32).eval()


def make_scheduler(kind: str = "ddim"):
    from diffusers import DDIMScheduler, DDPMScheduler

    if kind == "ddim":
        return DDIMScheduler(**SD15_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return DDPMScheduler(**SD15_BETAS, clip_sample=False)


@pytest.fixture
def scheduler():
    return make_scheduler("ddim")


class ToyTextEncoder(nn.Module):
    """Prompt → ``[B, 6, 32]`` embedding from character codes: deterministic, different prompts differ."""

    def __init__(self, dim: int = 32, length: int = 6, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(128, dim, generator=g)
        self.length = length

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), self.length, self.table.shape[1])
        for i, prompt in enumerate(prompts):
            codes = [ord(c) % 128 for c in prompt][: self.length]
            for j, code in enumerate(codes):
                out[i, j] = self.table[code]
        return out


@pytest.fixture(scope="session")
def encode_prompt():
    return ToyTextEncoder()


def random_sae(d_in: int = 32, d_sae: int = 128, k: int = 4, seed: int = 0, **kw) -> SparseAutoencoder:
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    b_dec = torch.randn(d_in, generator=g) * 0.1
    fields = dict(W_enc=W_dec.clone() + 0.1 * torch.randn(d_sae, d_in, generator=g),
                  b_enc=torch.randn(d_sae, generator=g) * 0.1, W_dec=W_dec, b_dec=b_dec, pre_bias=b_dec,
                  activation="topk", k=k, hookpoint="up_blocks.1.attentions.1")
    fields.update(kw)
    return SparseAutoencoder(**fields)


@pytest.fixture(scope="session")
def sae():
    return random_sae()


class _Named(nn.Module):
    """Holds one module under a chosen attribute name (LDM calls a downsampler's conv ``op``)."""

    def __init__(self, name: str, module: nn.Module):
        super().__init__()
        self.add_module(name, module)


def ldm_view(unet) -> nn.Module:
    """An LDM-layout module tree (``input_blocks / middle_block / output_blocks``) sharing ``unet``'s submodules.

    Its parameter names are LDM names at block level, so hookpoint resolution on it exercises the LDM path, and
    since the blocks are the very same objects, hooks placed through it fire when the diffusers UNet runs.
    """
    root = nn.Module()
    n = unet.config.layers_per_block + 1
    inputs = [nn.ModuleList([unet.conv_in])]
    for level, block in enumerate(unet.down_blocks):
        for j, resnet in enumerate(block.resnets):
            items = [resnet] + ([block.attentions[j]] if getattr(block, "attentions", None) else [])
            inputs.append(nn.ModuleList(items))
        if block.downsamplers:
            inputs.append(nn.ModuleList([_Named("op", block.downsamplers[0].conv)]))
    root.input_blocks = nn.ModuleList(inputs)
    mid = unet.mid_block
    root.middle_block = nn.ModuleList([mid.resnets[0], mid.attentions[0], mid.resnets[1]])
    outputs = []
    for level, block in enumerate(unet.up_blocks):
        for j, resnet in enumerate(block.resnets):
            items = [resnet] + ([block.attentions[j]] if getattr(block, "attentions", None) else [])
            if j == n - 1 and block.upsamplers:
                items.append(block.upsamplers[0])
            outputs.append(nn.ModuleList(items))
    root.output_blocks = nn.ModuleList(outputs)
    return root
