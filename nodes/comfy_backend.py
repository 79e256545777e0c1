"""The ComfyUI call adapter: how each model family's denoiser is called inside ComfyUI (its forward signature, its
conditioning, its ``model_sampling``), and the lvo_core backend built over a ComfyUI MODEL.

ComfyUI facts used here: ``model.diffusion_model`` is an LDM-layout UNet or ``comfy.ldm.flux.model.Flux``
(``double_blocks`` returning ``(img, txt)``, ``single_blocks`` over ``[txt; img]``,
``forward(x, timestep=σ, context, y=pooled, guidance)``); SDXL-family models have ``adm_channels`` and take a ``y``
vector; ``model_sampling.sigmas`` is the training schedule (ᾱ = 1/(1+σ²) for ε models; for FLUX,
ModelSamplingFlux's σ(t) = e^shift / (e^shift + 1/t − 1), i.e. a flow schedule with multiplicative shift e^shift).
This is the one module of the node pack that names model families; lvo_core keeps its own knowledge of them in
``lvo_core/model/families``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..lvo_core.errors import LVOError
from ..lvo_core.model.backend import ModuleBackend
from ..lvo_core.model.conditioning import Conditioning, extras_of, tokens_of
from ..lvo_core.hookpoints.flux import is_flux
from ..lvo_core.model.families.flux import DEFAULT_GUIDANCE, FluxBackend, split_conditioning
from ..lvo_core.model.flow import FlowMatchSchedule
from ..lvo_core.model.noise import alphas_from_sigmas
from ..lvo_core.model.units import UnitSpec


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
