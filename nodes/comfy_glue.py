"""Everything that touches ComfyUI itself, in two small modules; the node classes stay thin and testable with stubs.
How each model family's forward, conditioning and schedule are called is :mod:`.comfy_backend` (re-exported here).

ComfyUI facts used here: a MODEL is a ModelPatcher whose ``model.diffusion_model`` is the denoiser; its weights are
inference tensors; LATENT samples are in VAE space and enter the model through ``latent_format.process_in``;
non-destructive changes go on a ``clone()``, here as a DIFFUSION_MODEL wrapper that hooks one block only for the
duration of each call.
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
from ..lvo_core.model.hooks import block_view, forward_hook, grid_from_call
from ..lvo_core.model.units import UnitSpec
from . import comfy_backend, sae_folders
from .comfy_backend import compute_device, diffusion_model, timestep_of  # noqa: F401 - used by the node modules

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


def backend(model, spec: UnitSpec, vae, empty_conditioning: list, latent_shape, trainable: bool = True) \
        -> ModuleBackend:
    """An lvo_core backend over a ComfyUI MODEL, its weights loaded first (:func:`comfy_backend.backend`)."""
    load(model)
    return comfy_backend.backend(model, spec, vae, empty_conditioning, latent_shape, trainable)


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
