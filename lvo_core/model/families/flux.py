"""The FLUX.1 family: a diffusers ``FluxTransformer2DModel`` or ComfyUI's/BFL's Flux, what LVO knows about it.

Its block layout (diffusers' ``transformer_blocks.N`` ↔ ComfyUI's ``double_blocks.N``, the two token streams) is
:mod:`lvo_core.hookpoints.flux`, registered with the naming stage because names are matched before models exist.
Here: its forward and backend — latents ``[B, 16, H, W]`` are packed 2×2 into tokens ``[B, H/2·W/2, 64]`` with
position ids; conditioning is a :class:`~lvo_core.model.conditioning.Conditioning` of T5 tokens plus
``pooled_projections`` (CLIP) and, for guidance-distilled models (FLUX.1-dev), ``guidance``; noise is flow matching
(:class:`~lvo_core.model.flow.FlowMatchSchedule`) and the model predicts the velocity; block tokens come from the
hooked stream on the packed grid ``(H/2, W/2)``, so heatmaps work as on a UNet — and the family object: detection,
default hookpoint and latent shape, backend factory, folder loader, the tiny random model (FLUX.1-dev's structure
at width 32) with its random SAE and character prompt encoder, and FLUX.1-dev's full-size reference config.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import LVOError
from ...hookpoints import Hookpoint, unwrap_unet
from ...hookpoints.flux import FLUX_LAYOUT, flux_layout
from ..backend import Decoder, ModuleBackend, vae_decoder
from ..conditioning import Conditioning, extras_of, tokens_of
from ..flow import FlowMatchSchedule, shift_from_config
from ..hooks import TokenGrid
from ..tiny import CharPromptEncoder, random_sae
from .base import ModelFamily, register_family

log = logging.getLogger("lvo_core")

HOOKPOINT = "transformer_blocks.18"  # where sdxl-unbox's FLUX.1 SAE reads the image stream
TINY_HOOKPOINT = "transformer_blocks.1"
TINY_SHIFT = 3.0  # near FLUX.1-dev's resolution shift at 1024 px (e^1.15 ≈ 3.16)


DEFAULT_GUIDANCE = 3.5  # FLUX.1-dev's guidance_scale in diffusers' pipeline and ComfyUI's Flux conditioning
DEFAULT_LATENT = 128  # 1024 px, FLUX.1's native resolution
FluxCall = Callable[[nn.Module, Tensor, Tensor, Any], Tensor]


# ------------------------------------------------------------------------------------------------ packing
def check_latents(x: Tensor) -> tuple[int, int]:
    """The packed grid ``(H/2, W/2)`` of FLUX latents, refusing shapes FLUX cannot pack."""
    if x.ndim != 4:
        raise LVOError(f"FLUX latents are [B, 16, H, W]; got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise LVOError(f"FLUX latents need even H and W (they are packed in 2×2 patches); got {h}×{w} — use an image "
                       f"size that is a multiple of 16 px")
    return h // 2, w // 2


def pack(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` → ``[B, H/2·W/2, 4C]``, each token one 2×2 patch (channel-major, as FLUX's pipeline)."""
    b, c = x.shape[:2]
    h, w = check_latents(x)
    return x.reshape(b, c, h, 2, w, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w, c * 4)


def unpack(tokens: Tensor, hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`pack` for the grid ``hw``."""
    b, _, d = tokens.shape
    h, w = hw
    return tokens.reshape(b, h, w, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, d // 4, 2 * h, 2 * w)


def image_ids(hw: tuple[int, int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """FLUX's position ids of the image tokens ``[h·w, 3]``: (0, row, column)."""
    h, w = hw
    ids = torch.zeros(h, w, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(h, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(w, device=device, dtype=dtype)[None, :]
    return ids.reshape(h * w, 3)


# ------------------------------------------------------------------------------------------------ the model call
def needs_guidance(model: nn.Module) -> bool:
    """Whether the model is guidance-distilled (FLUX.1-dev: the guidance strength is an input, not CFG)."""
    model = unwrap_unet(model)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "guidance_embeds"):
        return bool(config.guidance_embeds)
    params = getattr(model, "params", None)
    return bool(getattr(params, "guidance_embed", False))


def split_conditioning(model: nn.Module, context: Tensor | Conditioning, batch: int, like: Tensor,
                       guidance: float = DEFAULT_GUIDANCE) -> tuple[Tensor, Tensor, Tensor | None]:
    """Tokens, pooled projection and guidance for one call, broadcast to ``batch`` rows; a guidance-distilled
    model without ``guidance`` in the conditioning gets ``guidance``."""
    tokens, extras = tokens_of(context), extras_of(context)
    pooled = extras.get("pooled_projections")
    if pooled is None:
        raise LVOError("FLUX conditioning needs the pooled CLIP embedding: give a Conditioning(tokens, "
                       "{'pooled_projections': [B, 768]}) (the prompt encoder of a FLUX model makes it)")
    g = None
    if needs_guidance(model):
        g = extras.get("guidance")
        g = torch.full((batch,), float(guidance)) if g is None else g.reshape(-1).expand(batch)
        g = g.to(device=like.device, dtype=like.dtype)
    return (tokens.to(like).expand(batch, -1, -1), pooled.to(like).expand(batch, -1), g)


def diffusers_flux_call(model: nn.Module, x: Tensor, sigma: Tensor, context: Tensor | Conditioning,
                        guidance: float = DEFAULT_GUIDANCE) -> Tensor:
    """A diffusers FluxTransformer2DModel's velocity ``[B, 16, H, W]`` at latents ``x`` and noise levels ``sigma``
    ``[B]`` (FLUX takes σ as its timestep, and multiplies it by 1000 itself)."""
    hw = check_latents(x)
    tokens, pooled, g = split_conditioning(model, context, x.shape[0], x, guidance)
    out = model(hidden_states=pack(x), encoder_hidden_states=tokens, pooled_projections=pooled,
                timestep=sigma.to(x.dtype).expand(x.shape[0]), img_ids=image_ids(hw, x.device, x.dtype),
                txt_ids=torch.zeros(tokens.shape[1], 3, device=x.device, dtype=x.dtype), guidance=g,
                return_dict=False)[0]
    return unpack(out, hw)


def schedule_of(scheduler) -> FlowMatchSchedule:
    """The fixed-shift flow schedule of a diffusers flow-matching scheduler (the one a FLUX is sampled with)."""
    config = getattr(scheduler, "config", None)
    if config is None or "shift" not in config:
        raise LVOError(f"a FLUX model samples with a flow-matching scheduler, not {type(scheduler).__name__}; use "
                       f"FlowMatchSchedule(...).sampler() (or the model's own FlowMatchEulerDiscreteScheduler)")
    if config.get("use_dynamic_shifting", False):
        raise LVOError("this scheduler shifts by resolution: build FlowMatchSchedule(shift=shift_from_config(config, "
                       "tokens)).sampler() for the latent size you sample at")
    return FlowMatchSchedule(int(config["num_train_timesteps"]), float(config["shift"]))


def default_flux_latent_shape(model: nn.Module) -> tuple[int, int, int]:
    """``(16, S, S)``: the packed input width / 4 channels at ``config.sample_size`` (tiny models record one),
    else FLUX.1's 128 (1024 px)."""
    model = unwrap_unet(model)
    config = getattr(model, "config", None)
    channels = int(config.in_channels) // 4 if config is not None else int(getattr(model, "in_channels", 64)) // 4
    size = int(getattr(config, "sample_size", None) or DEFAULT_LATENT) if config is not None else DEFAULT_LATENT
    return channels, size, size


# ------------------------------------------------------------------------------------------------ the backend
class FluxBackend(ModuleBackend):
    """A FLUX-shaped transformer with a hooked block (image stream unless the hookpoint says ``:text``).

    ``schedule``: the flow schedule it was trained with; or ``scheduler`` (its diffusers scheduler, whose shift —
    resolution-dependent for FLUX.1-dev — is read for ``latent_shape``); or ``shift`` (1.0 when nothing is
    given, FLUX.1-schnell's). ``call(module, x, sigma, context)`` runs the module's own forward (diffusers' by
    default; the ComfyUI adapter passes ComfyUI's). ``guidance`` fills in for conditionings without one.
    """

    def __init__(self, transformer: nn.Module, hookpoint: str | Hookpoint, *,
                 schedule: FlowMatchSchedule | None = None, scheduler=None, shift: float | None = None,
                 decoder: Decoder | nn.Module | None = None, empty_context: Conditioning | None = None,
                 encode_prompt: Callable[[list[str]], Conditioning] | None = None,
                 latent_shape: Sequence[int] | None = None, copy_weights: bool | str = "auto",
                 guidance: float = DEFAULT_GUIDANCE, call: FluxCall | None = None):
        latent_shape = tuple(latent_shape or default_flux_latent_shape(transformer))
        grid = check_latents(torch.empty(1, *latent_shape, device="meta"))
        if schedule is None:
            if scheduler is not None:
                schedule = FlowMatchSchedule(int(scheduler.config.num_train_timesteps),
                                             shift_from_config(scheduler.config, grid[0] * grid[1]))
            else:
                schedule = FlowMatchSchedule(1000, 1.0 if shift is None else shift)
        if empty_context is None:
            if encode_prompt is None:
                raise LVOError("give the empty-prompt conditioning or a prompt encoder to compute it")
            empty_context = encode_prompt([""])
        if not isinstance(empty_context, Conditioning) or "pooled_projections" not in empty_context.extras:
            raise LVOError("FLUX's empty-prompt conditioning must be a Conditioning with 'pooled_projections'")
        self.guidance = float(guidance)
        self._flux_call = call or diffusers_flux_call

        def sigma_call(module: nn.Module, x: Tensor, t: Tensor, context: Tensor | Conditioning) -> Tensor:
            return self._flux_call(module, x, self.schedule.sigma(t, x), self._guided(context))

        super().__init__(transformer, hookpoint, sigma_call, schedule,
                         decoder=vae_decoder(decoder) if isinstance(decoder, nn.Module) else decoder,
                         empty_context=empty_context, latent_shape=latent_shape, copy_weights=copy_weights)
        if self.hookpoint.stream is None:
            raise LVOError(f"'{self.hookpoint.diffusers_name}' is not a FLUX block")
        self.scheduler = scheduler
        self.encode_prompt = encode_prompt

    def _guided(self, context: Tensor | Conditioning) -> Tensor | Conditioning:
        if needs_guidance(self.denoiser) and isinstance(context, Conditioning) and "guidance" not in context.extras:
            g = torch.full((len(context),), self.guidance, device=context.device)
            return Conditioning(context.tokens, {**context.extras, "guidance": g})
        return context

    def _token_grid(self, x_t: Tensor, context: Tensor) -> TokenGrid:
        return TokenGrid(check_latents(x_t), tokens_of(context).shape[1])


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
