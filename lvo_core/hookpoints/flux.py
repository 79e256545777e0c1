"""The FLUX.1 block layout: diffusers' ``transformer_blocks.N`` / ``single_transformer_blocks.N`` ↔ ComfyUI's and
BFL's ``double_blocks.N`` / ``single_blocks.N``, and which part of a block's output is the hooked token stream.

The correspondence is read off diffusers' ``convert_flux_transformer_checkpoint_to_diffusers``, run on a probe whose
every tensor is tagged with the block its name belongs to, so each converted name says which original block it
came from. A DiT block has two token streams; a hookpoint reads the image stream unless asked for ``stream="text"``
(or a ``:text`` suffix). Why this is here and not in the FLUX family (:mod:`lvo_core.model.families.flux`): names
are matched before any model exists — an SAE root's folders against ``double_blocks.18`` in :mod:`lvo_core.sae`, a
stage that comes before models — so the layout registers itself with the naming stage; the family uses it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import HookpointError, LVOError
from .core import Hookpoint, Layout, register_layout, strip_prefix, unwrap_unet

STREAMS = ("image", "text")
_FLUX_BLOCK = re.compile(r"^((?:transformer_blocks|single_transformer_blocks|double_blocks|single_blocks)\.\d+)"
                         r"(?::(\w+))?$")
_FLUX_PROBE_LEN = 3 * 3072 + 4 * 3072  # the converter splits single-block weights by FLUX.1's fixed sizes


def flux_layout(model: nn.Module) -> str | None:
    """``flux`` for a diffusers FluxTransformer2DModel, ``flux-ldm`` for ComfyUI's Flux, else None."""
    if hasattr(model, "transformer_blocks") and hasattr(model, "single_transformer_blocks"):
        return "flux"
    if hasattr(model, "double_blocks") and hasattr(model, "single_blocks"):
        return "flux-ldm"
    return None


def is_flux(model: nn.Module) -> bool:
    return flux_layout(unwrap_unet(model)) is not None


class _TaggedProbe(dict):
    """A stand-in checkpoint for diffusers' FLUX converter: any name it pops yields a tensor tagged with the
    block that name belongs to (views of one element, so the probe costs nothing), and the names are recorded."""

    def __init__(self, num_double: int, num_single: int, guidance: bool):
        super().__init__({f"double_blocks.{i}.": None for i in range(num_double)})
        self.update({f"single_blocks.{i}.": None for i in range(num_single)})
        if guidance:
            self["guidance_in."] = None
        self.blocks: list[str] = []
        self.popped: list[str] = []

    def pop(self, key, *default):
        self.popped.append(key)
        m = re.match(r"^((?:double_blocks|single_blocks)\.\d+)\.", key)
        tag = -1
        if m:
            if m.group(1) not in self.blocks:
                self.blocks.append(m.group(1))
            tag = self.blocks.index(m.group(1))
        return torch.full((1,), tag, dtype=torch.int32).expand(_FLUX_PROBE_LEN)


@lru_cache(maxsize=16)
def _flux_conversion(num_double: int, num_single: int, guidance: bool = False) -> tuple[dict[str, str], tuple]:
    """({diffusers block: ComfyUI/BFL block}, converted parameter names) as diffusers' converter maps them."""
    from diffusers.loaders.single_file_utils import (
        convert_flux_transformer_checkpoint_to_diffusers,
    )

    probe = _TaggedProbe(num_double, num_single, guidance)
    converted = convert_flux_transformer_checkpoint_to_diffusers(probe)
    pairs: dict[str, str] = {}
    for key, value in converted.items():
        tag = int(value.reshape(-1)[0])
        block = re.match(r"^((?:transformer_blocks|single_transformer_blocks)\.\d+)\.", key)
        if tag >= 0 and block and pairs.setdefault(block.group(1), probe.blocks[tag]) != probe.blocks[tag]:
            raise HookpointError(f"diffusers' FLUX converter maps {block.group(1)} from two blocks")
    return pairs, tuple(converted)


def _flux_block_map(num_double: int, num_single: int, guidance: bool = False) -> dict[str, str]:
    return _flux_conversion(num_double, num_single, guidance)[0]


def _flux_counts(model: nn.Module) -> tuple[int, int]:
    if flux_layout(model) == "flux":
        return len(model.transformer_blocks), len(model.single_transformer_blocks)
    return len(model.double_blocks), len(model.single_blocks)


def flux_name_map(model: nn.Module) -> dict[str, str]:
    """{diffusers block: ComfyUI block} for a FLUX transformer of either layout. On a diffusers model the converted
    parameter names are checked against the model's own, so a DiT that merely looks like FLUX is refused."""
    layout = flux_layout(model)
    double, single = _flux_counts(model)
    guidance = any(k.startswith(("time_text_embed.guidance_embedder.", "guidance_in.")) for k, _ in
                   model.named_parameters())
    pairs, converted = _flux_conversion(double, single, guidance)
    if layout == "flux":
        own = {k for k, _ in model.named_parameters()}
        missing = sorted(k for k in converted if re.match(r"^(single_)?transformer_blocks\.", k) and k not in own)
        if missing:
            raise HookpointError(f"{type(model).__name__} has FLUX's block names but not its parameters (e.g. "
                                 f"{missing[0]}); cannot map its blocks to ComfyUI names")
    return pairs


def flux_inner_dim(model: nn.Module) -> int:
    """Width of both token streams (3072 for FLUX.1)."""
    for attr in ("inner_dim", "hidden_size"):
        value = getattr(model, attr, None)
        if isinstance(value, int):
            return value
    raise HookpointError(f"cannot tell the width of {type(model).__name__}'s token streams")


def _flux_name(name: str) -> tuple[str, str | None] | None:
    m = _FLUX_BLOCK.match(name)
    return (m.group(1), m.group(2)) if m else None


def _flux_point(model: nn.Module, block: str, stream: str, pairs: dict[str, str]) -> Hookpoint:
    layout = flux_layout(model)
    other = pairs[block]
    path = block if layout == "flux" else other
    suffix = ":text" if stream == "text" else ""
    kind = "double" if block.startswith("transformer_blocks") else "single"
    return Hookpoint(block + suffix, other + suffix, path, model.get_submodule(path), flux_inner_dim(model), kind,
                     stream, layout)


def _flux_hookpoints(model: nn.Module) -> list[Hookpoint]:
    pairs = flux_name_map(model)
    points = [_flux_point(model, block, "image", pairs) for block in pairs]
    points.sort(key=lambda p: flux_forward_order(p.diffusers_name))
    return points


def flux_forward_order(diffusers_name: str) -> tuple[int, int]:
    """Sort key following the forward pass: double-stream blocks, then single-stream blocks."""
    block = diffusers_name.split(":")[0]
    return (0 if block.startswith("transformer_blocks") else 1, int(block.rsplit(".", 1)[1]))


def _resolve_flux(model: nn.Module, name: str, stream: str | None) -> Hookpoint:
    wanted = strip_prefix(name)
    parsed = _flux_name(wanted)
    pairs = flux_name_map(model)
    if parsed is not None:
        block, suffix = parsed
        if suffix is not None and stream is not None and suffix != stream:
            raise HookpointError(f"'{name}' names the {suffix} stream but stream='{stream}' was asked for")
        chosen = stream or suffix or "image"
        if chosen not in STREAMS:
            raise HookpointError(f"unknown token stream '{chosen}' in '{name}': a FLUX block has the streams "
                                 f"{', '.join(STREAMS)}")
        if block not in pairs:
            block = {v: k for k, v in pairs.items()}.get(block, block)
        if block in pairs:
            return _flux_point(model, block, chosen, pairs)
    double, single = _flux_counts(model)
    hint = (" FLUX hooks whole blocks; the sdxl-unbox FLUX SAE reads 'transformer_blocks.18'."
            if parsed is None else f" This model has {double} double-stream and {single} single-stream blocks.")
    raise HookpointError(f"unknown hookpoint '{name}' on a FLUX transformer.{hint} Valid: transformer_blocks.0…"
                         f"{double - 1} (ComfyUI: double_blocks.N), single_transformer_blocks.0…{single - 1} "
                         f"(single_blocks.N), optionally with ':text' for the text stream")


def spellings(name: str) -> list[str] | None:
    """Both spellings of a FLUX block name without a model (diffusers' first when given), None for other names."""
    flux = _flux_name(name)
    if flux is None:
        return None
    block, stream = flux
    index = int(block.rsplit(".", 1)[1])
    counts = (index + 1, 1) if block.split(".")[0] in ("transformer_blocks", "double_blocks") else (1, index + 1)
    pairs = _flux_block_map(*counts)
    other = pairs.get(block) or {v: k for k, v in pairs.items()}.get(block)
    suffix = ":text" if stream == "text" else ""
    return list(dict.fromkeys([block + suffix, other + suffix]))


class FluxLayout(Layout):
    """FLUX-shaped DiTs in diffusers' or ComfyUI's naming; each block has an image and a text token stream."""

    describe = ("a FLUX transformer (transformer_blocks/single_transformer_blocks or "
                "double_blocks/single_blocks)")
    point_layouts = ("flux", "flux-ldm")
    tail = ("norm_out", "proj_out", "final_layer")

    def owns(self, model: nn.Module) -> bool:
        return flux_layout(model) is not None

    def hookpoints(self, model: nn.Module) -> list[Hookpoint]:
        return _flux_hookpoints(model)

    def resolve(self, model: nn.Module, name: str, stream: str | None) -> Hookpoint:
        return _resolve_flux(model, name, stream)

    def forward_order(self, diffusers_name: str) -> tuple:
        return flux_forward_order(diffusers_name)

    def spellings(self, name: str) -> list[str] | None:
        return spellings(name)

    def stream_view(self, point: Hookpoint, output: Any, grid: Any) \
            -> tuple[Tensor, tuple[int, int], Callable[[Tensor], Any]]:
        """diffusers' blocks return ``(text, image)``, ComfyUI's double blocks ``(image, text)`` and its single
        blocks one ``[text; image]`` sequence, split by the call's token grid."""
        text = point.stream == "text"
        if isinstance(output, (tuple, list)):
            index = (0 if text else 1) if point.layout == "flux" else (1 if text else 0)
            tokens = output[index]

            def rewrap(new: Tensor) -> Any:
                return type(output)([new if i == index else part for i, part in enumerate(output)])
        elif isinstance(output, Tensor):
            if grid is None:
                raise LVOError(f"block '{point.diffusers_name}' outputs one [text; image] sequence; splitting it "
                               f"needs the call's token grid (hook the model through lvo_core.model.hooks)")
            cut = output.shape[1] - grid.image_len
            tokens = output[:, :cut] if text else output[:, cut:]

            def rewrap(new: Tensor) -> Any:
                return torch.cat([new, output[:, cut:]] if text else [output[:, :cut], new], dim=1)
        else:
            raise TypeError(f"cannot read token streams from a block output of type {type(output).__name__}")
        if text:
            return tokens, (1, tokens.shape[1]), rewrap
        if grid is None or grid.image_len != tokens.shape[1]:
            raise LVOError(f"block '{point.diffusers_name}' gave {tokens.shape[1]} image tokens but the call's grid "
                           f"is {None if grid is None else grid.hw}; cannot lay them out for heatmaps")
        return tokens, grid.hw, rewrap


FLUX_LAYOUT = register_layout(FluxLayout())
