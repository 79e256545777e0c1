"""Shared fixtures: tiny random SD-shaped diffusers models and SAEs, built in milliseconds, nothing downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn

from lvo_core.model.tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_unet

torch.set_num_threads(int(os.environ.get("LVO_TEST_THREADS", "2")))
__all__ = ["random_sae", "ldm_view"]


@pytest.fixture(scope="session")
def unet():
    return tiny_unet()


@pytest.fixture(scope="session")
def sd15_unet():
    """Four levels like SD1.5 (three with cross-attention), at tiny widths: for naming tests."""
    return tiny_unet(levels=4)


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


@pytest.fixture
def scheduler():
    return sd15_scheduler("ddim")


@pytest.fixture(scope="session")
def encode_prompt():
    return CharPromptEncoder()


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


from comfy_standins import fake_comfy, pack  # noqa: E402,F401  (the ComfyUI stand-ins, for node tests anywhere)
