"""The FLUX.1 family: a diffusers ``FluxTransformer2DModel`` or ComfyUI's/BFL's Flux, everything LVO knows about it.

Its block layout: diffusers' ``transformer_blocks.N`` / ``single_transformer_blocks.N`` ↔ ComfyUI's and BFL's
``double_blocks.N`` / ``single_blocks.N``, read off diffusers' ``convert_flux_transformer_checkpoint_to_diffusers``
run on a probe whose every tensor is tagged with the block its name belongs to, so each converted name says which
original block it came from. A DiT block has two token streams; a hookpoint reads the image stream unless asked for
``stream="text"`` (or a ``:text`` suffix).

Its backend: latents ``[B, 16, H, W]`` are packed 2×2 into tokens ``[B, H/2·W/2, 64]`` with position ids,
conditioning is a :class:`~lvo_core.model.conditioning.Conditioning` of T5 tokens plus ``pooled_projections`` (CLIP)
and, for guidance-distilled models (FLUX.1-dev), ``guidance``; noise is flow matching
(:class:`~lvo_core.model.flow.FlowMatchSchedule`) and the model predicts the velocity. Block tokens come from the
hooked stream on the packed grid ``(H/2, W/2)``, so heatmaps work as on a UNet. Also here: its tiny random model
(FLUX.1-dev's structure at width 32), its folder loader and its full-size reference config.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import HookpointError, LVOError
from ...hookpoints import Hookpoint, Layout, strip_prefix, unwrap_unet
from ..conditioning import Conditioning
from ..flow import FlowMatchSchedule, shift_from_config
from ..hooks import TokenGrid
from ..tiny import CharPromptEncoder, random_sae
from . import ModelFamily, register_family
from .flux_model import FluxBackend, default_flux_latent_shape, schedule_of

log = logging.getLogger("lvo_core")

# ------------------------------------------------------------------------------------------------ the layout
STREAMS = ("image", "text")
HOOKPOINT = "transformer_blocks.18"  # where sdxl-unbox's FLUX.1 SAE reads the image stream
TINY_HOOKPOINT = "transformer_blocks.1"
TINY_SHIFT = 3.0  # near FLUX.1-dev's resolution shift at 1024 px (e^1.15 ≈ 3.16)
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

    def stream_view(self, point: Hookpoint, output: Any, grid: TokenGrid | None) \
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
    layout = FluxLayout()
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
