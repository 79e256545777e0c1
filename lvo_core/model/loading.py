"""Load a model for headless use: the embedded tiny model, a local diffusers folder, or a single-file SD checkpoint
with a local config. Nothing is ever downloaded (``local_files_only`` everywhere).

A model folder may encode prompts three ways: a CLIP ``text_encoder/`` + ``tokenizer/`` (needs the optional
``transformers`` package), or an ``lvo_prompt_encoder.json`` naming a built-in encoder (toy models), or none — then
only the empty-prompt embedding is unavailable and commands that need prompts say so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import LVOError
from ..fileio import write_text
from .tiny import (
    CharFluxPromptEncoder,
    CharPromptEncoder,
    CharSDXLPromptEncoder,
    sd15_scheduler,
    sdxl_time_ids,
    tiny_flux,
    tiny_flux_vae,
    tiny_sdxl_unet,
    tiny_unet,
    tiny_vae,
)

PromptEncoder = Callable[[list[str]], Tensor]
TINY = "tiny"
TINY_SDXL = "tiny-sdxl"
TINY_FLUX = "tiny-flux"
TINY_FLUX_SHIFT = 3.0  # near FLUX.1-dev's resolution shift at 1024 px (e^1.15 ≈ 3.16)
log = logging.getLogger("lvo_core")


@dataclass
class LoadedModel:
    """The pieces LVO needs from a diffusion model, plus where they came from."""

    unet: nn.Module
    scheduler: Any
    vae: nn.Module | None
    encode_prompt: PromptEncoder | None
    source: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def decoder(self) -> Callable[[Tensor], Tensor] | None:
        """Latents → images: the VAE's decoder, or the toy world's codec."""
        if self.info.get("decoder") is not None:
            return self.info["decoder"]
        if self.vae is not None:
            from .backend import vae_decoder

            return vae_decoder(self.vae)
        return None

    @property
    def encoder(self) -> Callable[[Tensor], Tensor] | None:
        """Images ``[B, 3, H, W]`` in [-1, 1] → latents: the VAE's encoder (posterior mean, scaled), or the toy
        world's codec."""
        codec = self.info.get("decoder")
        if codec is not None:
            return lambda images: codec.encode(images.float().cpu())
        if self.vae is None:
            return None
        vae = self.vae
        factor = float(getattr(vae.config, "scaling_factor", 0.18215))
        shift = float(getattr(vae.config, "shift_factor", None) or 0.0)  # FLUX's VAE latents are shifted too

        def encode(images: Tensor) -> Tensor:
            param = next(vae.parameters())
            return (vae.encode(images.to(param)).latent_dist.mean - shift) * factor
        return encode

    def require_prompts(self) -> PromptEncoder:
        if self.encode_prompt is None:
            raise LVOError(f"model '{self.source}' has no text encoder: add text_encoder/ and tokenizer/ (and "
                           f"`pip install transformers`) or an lvo_prompt_encoder.json")
        return self.encode_prompt


def write_prompt_encoder_spec(folder: str | Path, dim: int, length: int = 6, seed: int = 0,
                              kind: str = "char", **extra: Any) -> None:
    """Declare the built-in character prompt encoder for a toy model folder: ``kind`` ``char``, ``char-sdxl``
    (``extra``: ``pooled_dim``, ``image_size``) or ``char-flux`` (``pooled_dim``, ``guidance``)."""
    spec = {"kind": kind, "dim": dim, "length": length, "seed": seed, **extra}
    write_text(Path(folder, "lvo_prompt_encoder.json"), json.dumps(spec))


def _sdxl_clip_encoder(folder: Path, device: torch.device, image_size: tuple[int, int]) -> PromptEncoder:
    """SDXL's two CLIP encoders as diffusers' SDXL pipeline uses them: both penultimate hidden states side by side
    as tokens, the second encoder's projected pooled output as ``text_embeds``, uncropped size ids."""
    try:
        from transformers import (
            CLIPTextModel,
            CLIPTextModelWithProjection,
            CLIPTokenizer,
        )
    except ImportError as exc:
        raise LVOError(f"{folder} has SDXL's CLIP text encoders; encoding prompts with them needs the optional "
                       f"package transformers (`pip install transformers`)") from exc
    from .conditioning import Conditioning

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


def _clip_encoder(folder: Path, device: torch.device) -> PromptEncoder:
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:  # optional dependency: only real SD folders need it
        raise LVOError(f"{folder} has a CLIP text encoder; encoding prompts with it needs the optional package "
                       f"transformers (`pip install transformers`)") from exc
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True)
    encoder = CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder", local_files_only=True)
    encoder = encoder.to(device).eval()

    @torch.no_grad()
    def encode(prompts: list[str]) -> Tensor:
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        return encoder(ids)[0]
    return encode


def _prompt_encoder(folder: Path, device: torch.device) -> PromptEncoder | None:
    spec = folder / "lvo_prompt_encoder.json"
    if spec.is_file():
        cfg = json.loads(spec.read_text())
        kind = cfg.get("kind")
        if kind not in ("char", "char-sdxl", "char-flux"):
            raise LVOError(f"{spec}: unknown prompt encoder kind '{kind}' (known: char, char-sdxl, char-flux)")
        common = int(cfg["dim"]), int(cfg.get("length", 6)), int(cfg.get("seed", 0))
        if kind == "char-flux":
            return CharFluxPromptEncoder(int(cfg["dim"]), int(cfg["pooled_dim"]), int(cfg.get("length", 6)),
                                         int(cfg.get("seed", 0)), cfg.get("guidance")).to(device)
        if kind == "char-sdxl":
            return CharSDXLPromptEncoder(*common, pooled_dim=int(cfg["pooled_dim"]),
                                         image_size=tuple(cfg["image_size"])).to(device)
        return CharPromptEncoder(*common).to(device)
    if (folder / "transformer").is_dir():  # a FLUX folder: T5 + CLIP, not the SD encoder
        if (folder / "text_encoder_2").is_dir():
            log.warning("%s: FLUX's T5 + CLIP prompt encoding is not implemented headless yet; commands that need "
                        "prompts say so (an lvo_prompt_encoder.json works)", folder)
        return None
    if (folder / "text_encoder_2").is_dir():
        return LazyPromptEncoder(lambda: _sdxl_clip_encoder(folder, device, _image_size(folder)))
    if (folder / "text_encoder").is_dir() and (folder / "tokenizer").is_dir():
        return LazyPromptEncoder(lambda: _clip_encoder(folder, device))
    return None


class LazyPromptEncoder:
    """A CLIP encoder loaded on its first prompt, so that a command which never encodes one (``info``) needs
    neither ``transformers`` nor the text encoder's memory."""

    def __init__(self, load: Callable[[], PromptEncoder]):
        self._load, self._encode = load, None

    def __call__(self, prompts: list[str]):
        if self._encode is None:
            self._encode = self._load()
        return self._encode(prompts)


def _image_size(folder: Path) -> tuple[int, int]:
    """Pixel size the UNet was configured for (latent sample size × the VAE's 8× downsampling)."""
    config = json.loads((folder / "unet" / "config.json").read_text()) if (folder / "unet" / "config.json").is_file() \
        else {}
    size = int(config.get("sample_size", 128)) * 8
    return size, size


def _scheduler(folder: Path):
    from diffusers import DDIMScheduler

    if (folder / "scheduler" / "scheduler_config.json").is_file():
        return DDIMScheduler.from_pretrained(str(folder), subfolder="scheduler", local_files_only=True)
    return sd15_scheduler()


def place(module: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move to ``device``; cast only when the dtype differs (diffusers warns about needless casts)."""
    module = module.to(device)
    if next(module.parameters()).dtype != dtype:
        module = module.to(dtype=dtype)
    return module.eval()


VAE_PREFIX = "first_stage_model."


def _single_file_vae(path: Path, folder: Path) -> tuple[nn.Module | None, str | None]:
    """The checkpoint's own VAE when it has one: a VAE that is present but does not load is an error, never a silent
    switch to another VAE. Only a checkpoint without VAE weights uses the config folder's VAE, and says so."""
    from diffusers import AutoencoderKL
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        has_vae = any(key.startswith(VAE_PREFIX) for key in fh.keys())
    if has_vae:
        try:
            vae = AutoencoderKL.from_single_file(str(path), config=str(folder), subfolder="vae",
                                                 local_files_only=True)
        except Exception as exc:
            raise LVOError(f"{path} has VAE weights ({VAE_PREFIX}*) that do not load with {folder}/vae's config "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); fix or re-export the "
                           f"checkpoint, or strip its VAE to use the config folder's") from exc
        return vae, str(path)
    if (folder / "vae" / "diffusion_pytorch_model.safetensors").is_file():
        log.warning("%s has no VAE weights; decoding with the VAE of the config folder %s/vae", path, folder)
        return AutoencoderKL.from_pretrained(str(folder), subfolder="vae", local_files_only=True), f"{folder}/vae"
    log.warning("%s has no VAE weights and %s has no vae/; images cannot be decoded", path, folder)
    return None, None


def load_model(spec: str = TINY, *, config: str | None = None, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> LoadedModel:
    """``tiny``; a diffusers folder (``unet/``, optional ``vae/``, ``scheduler/``, text encoder); or a single-file
    checkpoint (``.safetensors``) whose UNet (and VAE, if present) load with ``config`` = a local diffusers folder."""
    device = torch.device(device)
    if spec == TINY:
        return LoadedModel(place(tiny_unet(), device, dtype), sd15_scheduler(), place(tiny_vae(), device, dtype),
                           CharPromptEncoder().to(device), TINY, {"kind": "tiny random SD-shaped model"})
    if spec == TINY_SDXL:
        return LoadedModel(place(tiny_sdxl_unet(), device, dtype), sd15_scheduler(), place(tiny_vae(), device, dtype),
                           CharSDXLPromptEncoder().to(device), TINY_SDXL, {"kind": "tiny random SDXL-shaped model"})
    if spec == TINY_FLUX:
        from .flow import FlowMatchSchedule

        return LoadedModel(place(tiny_flux(), device, dtype), FlowMatchSchedule(1000, TINY_FLUX_SHIFT).sampler(),
                           place(tiny_flux_vae(), device, dtype), CharFluxPromptEncoder().to(device), TINY_FLUX,
                           {"kind": "tiny random FLUX.1-dev-shaped model"})
    from diffusers import AutoencoderKL, UNet2DConditionModel

    path = Path(spec)
    if not path.exists():
        raise LVOError(f"model {path} does not exist; give a local diffusers folder, a .safetensors checkpoint "
                       f"with --config, or one of {', '.join(repr(n) for n in (TINY, TINY_SDXL, TINY_FLUX))} (on the command line "
                       f"also 'toy', the trained toy world; in Python lvo_core.toy.load_toy_model)")
    if path.is_dir() and (path / "transformer" / "config.json").is_file():
        return _load_flux_folder(path, device, dtype)
    if path.is_file():
        if config is None:
            raise LVOError(f"{path} is a single-file checkpoint: also give --config, a local diffusers folder "
                           f"with the model's configs (unet/config.json, scheduler/, vae/, tokenizer/: the model's "
                           f"hub repository fetched once without its weights, see the README); nothing is downloaded")
        folder = Path(config)
        if not (folder / "unet" / "config.json").is_file():
            raise LVOError(f"config folder {folder} has no unet/config.json")
        if path.suffix != ".safetensors":
            raise LVOError(f"{path}: only .safetensors checkpoints are loaded (a .ckpt is a pickle that can run code)")
        unet = UNet2DConditionModel.from_single_file(str(path), config=str(folder), subfolder="unet",
                                                     local_files_only=True)
        vae, vae_source = _single_file_vae(path, folder)
    else:
        folder = path
        sub = "unet" if (path / "unet" / "config.json").is_file() else None
        if sub is None and not (path / "config.json").is_file():
            raise LVOError(f"{path} has neither unet/config.json nor config.json; it is not a diffusers model folder")
        unet = UNet2DConditionModel.from_pretrained(str(path), subfolder=sub, local_files_only=True)
        vae = (AutoencoderKL.from_pretrained(str(path), subfolder="vae", local_files_only=True)
               if (path / "vae" / "config.json").is_file() else None)
        vae_source = f"{path}/vae" if vae is not None else None
    unet = place(unet, device, dtype)
    vae = place(vae, device, dtype) if vae is not None else None
    return LoadedModel(unet, _scheduler(folder), vae, _prompt_encoder(folder, device), str(path),
                       {"config": str(folder), "vae": vae_source})


def _load_flux_folder(path: Path, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """A local diffusers FLUX folder: ``transformer/``, optional ``vae/`` and ``scheduler/`` (its shift; a
    resolution-dependent one is taken at the transformer's default latent size)."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from .flow import FlowMatchSchedule, shift_from_config
    from .flux import default_flux_latent_shape

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
    return LoadedModel(transformer, schedule.sampler(), vae, _prompt_encoder(path, device), str(path),
                       {"config": str(path), "vae": f"{path}/vae" if vae is not None else None, "shift": shift})


def save_model_folder(model: LoadedModel, folder: str | Path) -> Path:
    """Write a loaded model as a diffusers folder (UNet or FLUX transformer, VAE, scheduler; a char prompt encoder
    spec when it has one)."""
    folder = Path(folder)
    from .flux import is_flux

    flux = is_flux(model.unet)
    model.unet.save_pretrained(str(folder / ("transformer" if flux else "unet")))
    if model.vae is not None:
        model.vae.save_pretrained(str(folder / "vae"))
    model.scheduler.save_pretrained(str(folder / "scheduler"))
    enc = model.encode_prompt
    if isinstance(enc, CharSDXLPromptEncoder):
        write_prompt_encoder_spec(folder, enc.table.shape[1], enc.length, enc.seed, kind="char-sdxl",
                                  pooled_dim=enc.pool.shape[1], image_size=list(enc.image_size))
    elif isinstance(enc, CharFluxPromptEncoder):
        write_prompt_encoder_spec(folder, enc.chars.table.shape[1], enc.chars.length, enc.chars.seed,
                                  kind="char-flux", pooled_dim=enc.pooled_dim, guidance=enc.guidance)
    elif isinstance(enc, CharPromptEncoder):
        write_prompt_encoder_spec(folder, enc.table.shape[1], enc.length, enc.seed)
    return folder
