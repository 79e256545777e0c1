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
from .families.base import families, family_of, folder_family, tiny_family, tiny_names
from .tiny import sd15_scheduler

PromptEncoder = Callable[[list[str]], Tensor]
TINY = "tiny"
log = logging.getLogger("lvo_core")


@dataclass
class LoadedModel:
    """The pieces LVO needs from a diffusion model, plus where they came from. ``denoiser`` is the module whose
    weights identify the model (a UNet, or a DiT such as FLUX's transformer)."""

    denoiser: nn.Module
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
        shift = float(getattr(vae.config, "shift_factor", None) or 0.0)  # some VAEs' latents are shifted too

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
    """Declare a built-in character prompt encoder for a toy model folder: ``kind`` is one a model family builds
    (``char``; ``char-sdxl`` with ``pooled_dim``, ``image_size``; ``char-flux`` with ``pooled_dim``, ``guidance``)."""
    spec = {"kind": kind, "dim": dim, "length": length, "seed": seed, **extra}
    write_text(Path(folder, "lvo_prompt_encoder.json"), json.dumps(spec))


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


def prompt_encoder(folder: Path, device: torch.device) -> PromptEncoder | None:
    """The prompt encoder of a model folder: an ``lvo_prompt_encoder.json`` of a kind some family builds, the
    encoder a family reads from its folder, or SD's CLIP (loaded on the first prompt)."""
    spec = folder / "lvo_prompt_encoder.json"
    if spec.is_file():
        cfg = json.loads(spec.read_text())
        kinds = {kind: build for family in families() for kind, build in family.prompt_kinds.items()}
        if cfg.get("kind") not in kinds:
            raise LVOError(f"{spec}: unknown prompt encoder kind '{cfg.get('kind')}' (known: "
                           f"{', '.join(sorted(kinds))})")
        return kinds[cfg["kind"]](cfg).to(device)
    for family in families():
        decided, encoder = family.folder_prompt_encoder(folder, device)
        if decided:
            return encoder
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
    tiny = tiny_family(spec)
    if tiny is not None:
        return tiny.tiny(device, dtype)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    path = Path(spec)
    if not path.exists():
        raise LVOError(f"model {path} does not exist; give a local diffusers folder, a .safetensors checkpoint "
                       f"with --config, or one of {', '.join(repr(n) for n in tiny_names())} (on the command line "
                       f"also 'toy', the trained toy world; in Python lvo_core.toy.load_toy_model)")
    family = folder_family(path) if path.is_dir() else None
    if family is not None:
        return family.load_folder(path, device, dtype)
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
    return LoadedModel(unet, _scheduler(folder), vae, prompt_encoder(folder, device), str(path),
                       {"config": str(folder), "vae": vae_source})


def save_model_folder(model: LoadedModel, folder: str | Path) -> Path:
    """Write a loaded model as a diffusers folder (its denoiser in its family's subfolder, VAE, scheduler; a char
    prompt encoder spec when it has one)."""
    folder = Path(folder)
    model.denoiser.save_pretrained(str(folder / family_of(model.denoiser).folder_name))
    if model.vae is not None:
        model.vae.save_pretrained(str(folder / "vae"))
    model.scheduler.save_pretrained(str(folder / "scheduler"))
    spec = next((s for f in families() if (s := f.encoder_spec(model.encode_prompt)) is not None), None)
    if spec is not None:
        write_prompt_encoder_spec(folder, **spec)
    return folder
