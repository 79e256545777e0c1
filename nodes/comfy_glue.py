"""Everything that touches ComfyUI itself, in one small module; the node classes stay thin and testable with stubs.

ComfyUI facts used here: a MODEL is a ModelPatcher whose ``model.diffusion_model`` is an LDM-layout UNet or
``comfy.ldm.flux.model.Flux`` (``double_blocks`` returning ``(img, txt)``, ``single_blocks`` over ``[txt; img]``,
``forward(x, timestep=σ, context, y=pooled, guidance)``); its weights are inference tensors;
``model_sampling.sigmas`` is the training schedule (ᾱ = 1/(1+σ²) for ε models; for FLUX, ModelSamplingFlux's
σ(t) = e^shift / (e^shift + 1/t − 1), i.e. a flow schedule with multiplicative shift e^shift);
LATENT samples are in VAE space and enter the model through ``latent_format.process_in``; non-destructive changes
go on a ``clone()``, here as a DIFFUSION_MODEL wrapper that hooks one block only for the duration of each call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..lvo_core.errors import LVOError
from ..lvo_core.fileio import atomic_write, ensure_folder, write_text
from ..lvo_core.hookpoints import Hookpoint
from ..lvo_core.model.backend import ModuleBackend
from ..lvo_core.model.conditioning import Conditioning, extras_of, tokens_of
from ..lvo_core.model.flow import FlowMatchSchedule
from ..lvo_core.model.flux import (
    DEFAULT_GUIDANCE,
    FluxBackend,
    is_flux,
    split_conditioning,
)
from ..lvo_core.model.hooks import block_view, forward_hook, grid_from_call
from ..lvo_core.model.noise import alphas_from_sigmas
from ..lvo_core.model.units import UnitSpec
from . import sae_folders

# the V3 node schema, pinned to a versioned API as ComfyUI's maintainers advise (in every ComfyUI since 0.3.48)
from comfy_api.v0_0_2 import ComfyExtension, io  # noqa: F401 - re-exported to the node modules

SAE_FOLDER = "sae"
SAE_EXTENSIONS = {".safetensors", ".pt", ".pth"}
WRAPPER_KEY = "lvo"
HUB_HINT = ("SAeUron from the hub repo bcywinski/SAeUron into models/sae/SAeUron, or sdxl-unbox from "
            "surkovv/sdxl-unbox")


# ------------------------------------------------------------------------------------------- requirements
def missing_requirements() -> list[str]:
    """Packages of requirements.txt that ComfyUI does not bring itself and that are not installed (a plain
    ``git clone`` without the pip step): the nodes stay loadable, say what to install and refuse to run."""
    missing = []
    try:
        import diffusers  # noqa: F401  (hookpoint naming and SD layouts)
    except ImportError:
        missing.append("diffusers")
    return missing


def install_hint(missing: list[str]) -> str:
    """One line naming the fix, with the pack's own requirements file and the Python that runs ComfyUI."""
    import sys

    requirements = Path(__file__).resolve().parents[1] / "requirements.txt"
    return (f"comfyui-lvo needs {', '.join(missing)}: install the pack's requirements into ComfyUI's Python "
            f"({sys.executable} -m pip install -r {requirements}) or install the pack with ComfyUI-Manager, then "
            f"restart ComfyUI")


# ------------------------------------------------------------------------------------------- model folders
def register_sae_folder() -> None:
    """Register ``models/sae`` (first) and its extensions with ComfyUI's folder registry, keeping any ``sae:``
    folders extra_model_paths.yaml added before the pack loaded."""
    import folder_paths

    default = os.path.join(folder_paths.models_dir, SAE_FOLDER)
    os.makedirs(default, exist_ok=True)
    if SAE_FOLDER in folder_paths.folder_names_and_paths:
        paths, exts = folder_paths.folder_names_and_paths[SAE_FOLDER]
        paths = [default] + [p for p in paths if p != default]
        folder_paths.folder_names_and_paths[SAE_FOLDER] = (paths, set(exts) | SAE_EXTENSIONS)
    else:
        folder_paths.folder_names_and_paths[SAE_FOLDER] = ([default], set(SAE_EXTENSIONS))


def sae_roots() -> list[Path]:
    """The registered ``sae`` folders that exist (none outside ComfyUI)."""
    try:
        import folder_paths
    except ImportError:
        return []
    return [Path(p) for p in folder_paths.get_folder_paths(SAE_FOLDER) if os.path.isdir(p)]


def list_saes() -> list[str]:
    """Loadable SAEs under every registered ``sae`` folder (symlinks followed to readable SAEs only)."""
    return sae_folders.list_names(sae_roots())


def sae_path(name: str) -> Path:
    """The resolved path of a listed SAE name; a name that is not listed never reaches the file system."""
    path = sae_folders.resolve(sae_roots(), name)
    if path is None:
        raise LVOError(f"SAE '{name[:200]}' not found in the models/sae folders; put SAE files or folders there (e.g. "
                       f"{HUB_HINT}) and refresh")
    return path


def relative_message(text: str, name: str | None = None, target: Path | None = None) -> str:
    return sae_folders.relative_message(text, sae_roots(), name, target)


# ------------------------------------------------------------------------------------------- model access
def load(model) -> None:
    """Make sure patches are applied and weights are on the compute device."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])


def compute_device(model) -> torch.device:
    return torch.device(model.load_device)


def diffusion_model(model) -> torch.nn.Module:
    return model.model.diffusion_model


def conditioning_tensor(conditioning: list) -> Tensor:
    """The cross-attention tensor of the first CONDITIONING entry (``[[tensor, {...}], …]``)."""
    try:
        return conditioning[0][0]
    except (IndexError, TypeError) as exc:
        raise LVOError("empty or malformed CONDITIONING; connect a CLIP Text Encode node (empty text for LVO)") \
            from exc


def context_for(model, conditioning: list, latent_shape) -> Tensor | Conditioning:
    """The empty-prompt conditioning the model's forward takes: the token tensor, plus — for SDXL-family models
    (``adm_channels``) — the ``y`` vector ComfyUI builds from the pooled text embedding and the image size."""
    tokens = conditioning_tensor(conditioning)
    base = model.model
    if not getattr(base, "adm_channels", 0):
        return tokens
    pooled = (conditioning[0][1] or {}).get("pooled_output")
    if pooled is None:
        raise LVOError("this SDXL-family model needs the pooled text embedding: connect a CLIP Text Encode of the "
                       "model's own CLIP (its CONDITIONING carries pooled_output)")
    height, width = int(latent_shape[-2]) * 8, int(latent_shape[-1]) * 8
    y = base.encode_adm(pooled_output=pooled, width=width, height=height, target_width=width, target_height=height,
                        crop_w=0, crop_h=0, device=tokens.device, prompt_type="positive")
    return Conditioning(tokens, {"y": y.to(tokens.device)})


def ldm_call(unet: torch.nn.Module, x: Tensor, t: Tensor, context: Tensor | Conditioning) -> Tensor:
    return unet(x, timesteps=t.float(), context=tokens_of(context), y=extras_of(context).get("y"),
                transformer_options={})


def flux_schedule(model_sampling) -> FlowMatchSchedule:
    """The flow schedule of a ComfyUI flow model: ModelSamplingFlux's ``shift`` is μ (shift e^μ), SD3-style
    ModelSamplingDiscreteFlow's is the multiplicative shift itself; which one is checked on σ(½)."""
    import math

    shift = float(getattr(model_sampling, "shift", 1.0))
    half = float(model_sampling.sigma(torch.tensor(0.5, dtype=torch.float64)))
    for s in (math.exp(shift), shift):
        if abs(half - s / (1 + s)) < 1e-4:  # σ(½) = s·½ / (1 + (s − 1)·½)
            return FlowMatchSchedule(1000, s)
    raise LVOError(f"{type(model_sampling).__name__} is not a shifted flow-matching schedule LVO knows (σ(0.5) = "
                   f"{half:.4f}); FLUX models need ComfyUI's ModelSamplingFlux")


def flux_conditioning(conditioning: list) -> Conditioning:
    """A FLUX CONDITIONING (T5 tokens, ``pooled_output`` from CLIP-L, optional ``guidance`` from FluxGuidance) as
    LVO's :class:`Conditioning`; guidance defaults to ComfyUI's own 3.5."""
    tokens = conditioning_tensor(conditioning)
    extra = conditioning[0][1] if len(conditioning[0]) > 1 and isinstance(conditioning[0][1], dict) else {}
    pooled = extra.get("pooled_output")
    if pooled is None:
        raise LVOError("this FLUX conditioning has no pooled CLIP output; encode the empty prompt with CLIP Text "
                       "Encode from a DualCLIPLoader of type 'flux' (clip_l + t5xxl)")
    g = torch.full((tokens.shape[0],), float(extra.get("guidance", DEFAULT_GUIDANCE)))
    return Conditioning(tokens, {"pooled_projections": pooled.to(tokens).expand(tokens.shape[0], -1),
                                 "guidance": g.to(tokens)})


def comfy_flux_call(flux: torch.nn.Module, x: Tensor, sigma: Tensor, context) -> Tensor:
    """ComfyUI's Flux forward: σ is its timestep, ``y`` the pooled CLIP embedding, ``guidance`` a tensor."""
    tokens, pooled, g = split_conditioning(flux, context, x.shape[0], x)
    return flux(x, sigma.to(x.dtype).expand(x.shape[0]), tokens, y=pooled, guidance=g, transformer_options={})


def timestep_of(model, sigma: Tensor) -> int:
    """LVO's integer timestep for a ComfyUI σ (ε models: ``model_sampling.timestep``; FLUX: its flow schedule)."""
    sampling = model.get_model_object("model_sampling")
    if is_flux(diffusion_model(model)):
        return int(flux_schedule(sampling).timestep_of(sigma.double().cpu()))
    return int(round(float(sampling.timestep(sigma))))


def backend(model, spec: UnitSpec, vae, empty_conditioning: list, latent_shape, trainable: bool = True) \
        -> ModuleBackend:
    """An lvo_core backend over a ComfyUI MODEL: LDM forward, ᾱ from its sigmas, VAE decode of process_out; SDXL's
    ``y`` from the pooled output; FLUX: its own forward, flow schedule and conditioning.

    The UNet runs on a trainable copy of the blocks up to the hook (the shared weights are inference tensors and
    stay untouched); its size is in ``backend.copy_bytes`` after the first step.
    """
    load(model)
    base = model.model
    fmt = base.latent_format

    def decode(latents: Tensor) -> Tensor:
        images = vae.decode(fmt.process_out(latents.to(torch.float32)))
        return images.reshape(-1, *images.shape[-3:]).movedim(-1, 1)

    if is_flux(diffusion_model(model)):
        return FluxBackend(diffusion_model(model), spec.hookpoint, schedule=flux_schedule(base.model_sampling),
                           decoder=None if vae is None else decode,
                           empty_context=flux_conditioning(empty_conditioning), latent_shape=latent_shape,
                           copy_weights="auto" if trainable else False, call=comfy_flux_call)
    return ModuleBackend(diffusion_model(model), spec.hookpoint, ldm_call,
                         alphas_from_sigmas(base.model_sampling.sigmas), decoder=None if vae is None else decode,
                         empty_context=context_for(model, empty_conditioning, latent_shape), latent_shape=latent_shape,
                         copy_weights="auto" if trainable else False, reads=spec.reads)


def latent_in(model, samples: Tensor) -> Tensor:
    return model.model.latent_format.process_in(samples)


def latent_out(model, samples: Tensor) -> Tensor:
    return model.model.latent_format.process_out(samples)


# ------------------------------------------------------------------------------------------- block wrapper
def _transformer_options(args: tuple, kwargs: dict) -> dict:
    opts = kwargs.get("transformer_options")
    if isinstance(opts, dict):
        return opts
    for value in reversed(args):
        if isinstance(value, dict):
            return value
    return {}


def add_block_edit(model, point: Hookpoint, edit: Callable[[Tensor, int, float], Tensor],
                   apply_to: str = "both") -> Any:
    """A clone of ``model`` whose block ``point`` (its output or update, as ``point.reads`` says) is passed through
    ``edit(tokens, t, progress)``.

    The hook exists only while this clone's diffusion model runs (a DIFFUSION_MODEL wrapper), so the shared
    model and other clones never see it. ``apply_to``: ``both`` halves of a CFG batch, or only ``cond`` rows.
    """
    import comfy.patcher_extension

    def wrapper(executor, *args, **kwargs):
        opts = _transformer_options(args, kwargs)
        unet = executor.class_obj
        module = unet.get_submodule(point.module_path)
        grid = grid_from_call(args, kwargs) if point.stream is not None else None
        sigmas = opts.get("sigmas")
        sigma = sigmas.flatten()[0] if isinstance(sigmas, Tensor) else torch.tensor(1.0)
        t = timestep_of(model, sigma)
        schedule = opts.get("sample_sigmas")
        if isinstance(schedule, Tensor) and len(schedule) > 1:
            index = int(torch.argmin((schedule.to(sigma.device) - sigma).abs()))
            progress = index / max(1, len(schedule) - 2)
        else:
            progress = 0.0
        chunks = list(opts.get("cond_or_uncond") or [0])

        def hook(_m, inputs, output):
            tokens, _, rewrap_tokens = block_view(point, output, grid, inputs)
            per = tokens.shape[0] // max(1, len(chunks))
            parts = []
            for i, flag in enumerate(chunks):
                part = tokens[i * per:(i + 1) * per]
                parts.append(edit(part, t, progress) if (apply_to == "both" or flag == 0) else part)
            return rewrap_tokens(torch.cat(parts))

        with forward_hook(module, hook):
            return executor(*args, **kwargs)

    patched = model.clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, wrapper)
    return patched


def ldm_hookpoint(model, units: UnitSpec) -> Hookpoint:
    """The units' block on the model's own (LDM-layout) module, read as the units read it: the output or
    update of a UNet block, the hooked stream of a FLUX block."""
    from ..lvo_core.hookpoints import resolve_hookpoint

    return resolve_hookpoint(diffusion_model(model), units.hookpoint).reading(units.reads)


# ------------------------------------------------------------------------------------------- sampling, progress
def sample(model, noise: Tensor, positive: list, negative: list, latent: Tensor, steps: int, cfg: float,
           sampler: str, scheduler: str, seed: int, on_step: Callable[[int, int], None] | None = None) -> Tensor:
    """ComfyUI's own sampling (``comfy.sample.sample``), with a per-step callback."""
    import comfy.sample

    def callback(step, x0, x, total):
        if on_step is not None:
            on_step(step + 1, total)

    return comfy.sample.sample(model, noise, steps, cfg, sampler, scheduler, positive, negative, latent,
                               callback=callback, disable_pbar=True, seed=seed)


def sampling_timesteps(model, scheduler: str, steps: int) -> list[int]:
    """The integer training timesteps a ComfyUI schedule visits (one per step)."""
    import comfy.samplers

    sampling = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(sampling, scheduler, steps)
    return [timestep_of(model, s) for s in sigmas[:-1]]


def sampler_names() -> tuple[list[str], list[str]]:
    """ComfyUI's sampler and scheduler names (for the combos of the sampling nodes)."""
    import comfy.samplers

    return list(comfy.samplers.KSampler.SAMPLERS), list(comfy.samplers.KSampler.SCHEDULERS)


def encode_text(clip, text: str) -> list:
    """CONDITIONING for a prompt, as CLIP Text Encode makes it."""
    tokens = clip.tokenize(text)
    return clip.encode_from_tokens_scheduled(tokens)


def encode_images(vae, images: Tensor) -> Tensor:
    """IMAGE ``[B, H, W, C]`` → VAE latents (VAE space, as a LATENT holds them)."""
    return vae.encode(images[..., :3])


def seeded_noise_like(latent: Tensor, seeds: list[int]) -> Tensor:
    """One noise row per seed, the way ComfyUI draws noise for a seed (so rows match a KSampler run per seed)."""
    import comfy.sample

    return torch.cat([comfy.sample.prepare_noise(latent[:1], int(seed)) for seed in seeds])


class Progress:
    """ComfyUI's progress bar (websocket ``progress`` events, with an optional preview image).

    ComfyUI raises its interrupt from inside the progress hook (and clears the flag while raising). With
    ``keep_partial`` the exception is caught and remembered in ``interrupt_seen`` instead, so the node's own stop
    check can end the run between steps and keep what is finished; the node then calls :func:`end_interrupted`.
    """

    def __init__(self, total: int, keep_partial: bool = False):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(total)
        self.keep_partial = keep_partial
        self.interrupt_seen = False

    def __call__(self, done: int, total: int, preview: Tensor | None = None) -> None:
        import comfy.model_management

        image = None
        if preview is not None and len(preview):
            from PIL import Image

            arr = (preview[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            image = ("JPEG", Image.fromarray(arr), 512)
        try:
            self.bar.update_absolute(done, total, image)
        except comfy.model_management.InterruptProcessingException:
            if not self.keep_partial:
                raise
            self.interrupt_seen = True

    def should_stop(self) -> bool:
        return self.interrupt_seen or interrupted()

    def report(self, label: str, done: int, total: int) -> None:
        """The library's ``progress(label, done, total)`` (:mod:`lvo_core.progress`) on this node's bar: one bar
        per node, so each phase (scoring, then polishing, …) runs it from 0 to its own total."""
        self(done, total)


def output_directory() -> Path:
    """ComfyUI's output folder (where named sample banks are kept)."""
    import folder_paths

    return Path(folder_paths.get_output_directory())


def temp_directory() -> Path:
    """ComfyUI's temp folder (previews the frontend shows; emptied at every start)."""
    import folder_paths

    return Path(folder_paths.get_temp_directory())


def save_thumbnails(images: Tensor, prefix: str, size: int = 192) -> list[dict]:
    """Write IMAGE rows ``[B, H, W, C]`` as PNGs of at most ``size`` px into ComfyUI's temp folder; returns the
    entries the frontend shows through ``/view`` (``filename``, ``subfolder``, ``type``)."""
    import uuid

    import numpy as np
    from PIL import Image

    folder = ensure_folder(temp_directory() / "lvo")
    stem = f"{prefix}_{uuid.uuid4().hex[:10]}"
    entries = []
    for i, image in enumerate(images):
        arr = (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        picture = Image.fromarray(np.ascontiguousarray(arr))
        picture.thumbnail((size, size))
        name = f"{stem}_{i:03d}.png"
        atomic_write(folder / name, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
        entries.append({"filename": name, "subfolder": "lvo", "type": "temp"})
    return entries


def save_partial(images: Tensor, report: str, prefix: str = "lvo_interrupted") -> list[dict]:
    """Write an interrupted run's images (PNG) and metrics (JSON) to ComfyUI's output folder; returns the image
    entries the frontend shows (``filename``, ``subfolder``, ``type``)."""
    import time

    import folder_paths
    import numpy as np
    from PIL import Image

    out = ensure_folder(Path(folder_paths.get_output_directory()) / prefix)
    stem = time.strftime("%Y%m%d-%H%M%S")
    n = 1
    while (out / f"{stem}_metrics.json").exists():  # two interrupts in one second keep both
        n += 1
        stem = time.strftime("%Y%m%d-%H%M%S") + f"-{n}"
    write_text(out / f"{stem}_metrics.json", report)
    entries = []
    for i, image in enumerate(images):
        name = f"{stem}_{i:03d}.png"
        arr = (image[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        picture = Image.fromarray(np.ascontiguousarray(arr))
        atomic_write(out / name, lambda tmp, picture=picture: picture.save(tmp, format="PNG"))
        entries.append({"filename": name, "subfolder": prefix, "type": "output"})
    return entries


def end_interrupted(ui: dict) -> None:
    """Show ``ui`` on the running node (the ``executed`` message ComfyUI itself would send), then end the prompt as
    interrupted, as the user asked: ComfyUI drops a node's return value once it has been interrupted."""
    import comfy.model_management
    from server import PromptServer

    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:  # ComfyUI before the execution context (2025): the UI learns it from the images saved
        context = None
    else:
        context = get_executing_context()
    server = PromptServer.instance
    if context is not None and server.client_id is not None:
        server.send_sync("executed", {"node": context.node_id, "display_node": context.node_id, "output": ui,
                                      "prompt_id": context.prompt_id}, server.client_id)
    raise comfy.model_management.InterruptProcessingException()


def interrupted() -> bool:
    import comfy.model_management

    return bool(comfy.model_management.processing_interrupted())
