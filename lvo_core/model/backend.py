"""The one seam between LVO and a model: run the denoiser up to the hooked block, noise as it was trained, decode.

Everything else in ``lvo_core`` talks to a model only through :class:`Backend`. :class:`DiffusersBackend` serves
the CLI, the tests and research code; the ComfyUI adapter implements the same interface over a ModelPatcher.
"""

from __future__ import annotations

from contextlib import contextmanager
from copy import deepcopy
from dataclasses import replace
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch
from torch import Tensor, nn

from ..errors import LVOError
from ..hookpoints import Hookpoint, layout_for, list_hookpoints, resolve_hookpoint, unwrap_unet
from .conditioning import Conditioning
from .hooks import TokenGrid, run_to_block_tokens
from .noise import alphas_from_scheduler
from .sampling import StepCallback, sample_with
from .schedule import DDPMSchedule, NoiseSchedule, as_schedule

Decoder = Callable[[Tensor], Tensor]


class Backend(Protocol):
    """What the optimizer, metrics and steering need from a model."""

    hookpoint: Hookpoint
    schedule: NoiseSchedule
    denoiser: nn.Module  # the module whose weights identify the model (a UNet, a DiT)
    encode_prompt: Callable[[list[str]], Tensor | Conditioning] | None  # None where prompts come from elsewhere

    @property
    def device(self) -> torch.device: ...

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    def block_tokens(self, x_t: Tensor, t: Tensor, context: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Block output as tokens ``[B, H·W, C]`` for noisy latents ``x_t`` at integer timesteps ``t`` ``[B]``,
        with gradients flowing back to ``x_t``; nothing after the block is computed."""

    def predict(self, x_t: Tensor, t: Tensor, context: Tensor) -> Tensor:
        """The full model's output at ``x_t`` (what ``schedule.sampler()`` steps with), without gradients."""

    def predict_eps(self, x_t: Tensor, t: Tensor, context: Tensor) -> Tensor:
        """The full model's prediction as ε, without gradients (for the diffusion-prior regularizer)."""

    def sampler(self, steps: int) -> Any:
        """The diffusers scheduler :meth:`sample` steps with (``set_timesteps`` tells the timesteps it visits)."""

    def sample(self, cond: Tensor, *, uncond: Tensor | None = None, guidance: float = 1.0, steps: int = 50,
               seeds: Sequence[int], latent_shape: Sequence[int] | None = None,
               on_step: StepCallback | None = None, before_step: Callable[[int, int], None] | None = None,
               init_latents: Tensor | None = None, scheduler: Any = None) -> Tensor:
        """Generated latents, one row per seed, with CFG and per-step callbacks (see
        :func:`~lvo_core.model.sampling.sample_with`); ``scheduler`` replaces :meth:`sampler`'s."""

    def empty_context(self, batch: int) -> Tensor:
        """Conditioning of the empty prompt, ``[batch, L, D]``."""

    @property
    def can_decode(self) -> bool:
        """Whether :meth:`decode` has a VAE to call (a headless analysis may load none)."""

    def decode(self, latents: Tensor) -> Tensor:
        """Latents → images ``[B, 3, H, W]`` (any range; callers scale for display)."""

    def frozen(self) -> "contextmanager":
        """Context in which no model weight requires grad (flags restored on exit)."""


@contextmanager
def frozen_weights(module: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` on every parameter for the duration, restoring each flag afterwards (also on
    errors): gradients then flow only to the latent, and a shared model keeps its flags."""
    # only parameters that require grad are switched (inference tensors cannot have their flag set at all)
    params = [p for p in module.parameters() if p.requires_grad and not p.is_inference()]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def vae_decoder(vae: nn.Module) -> Decoder:
    """A diffusers AutoencoderKL as a decoder: undo the latent scaling (and FLUX's shift) factor, decode."""
    factor = float(getattr(vae.config, "scaling_factor", 0.18215))
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)

    def decode(latents: Tensor) -> Tensor:
        param = next(vae.parameters())
        return vae.decode(latents.to(param) / factor + shift).sample
    return decode


def trainable_copy(model: nn.Module, hookpoint: Hookpoint) -> tuple[nn.Module, int]:
    """A copy of ``model`` with ordinary (non-inference) weights for everything up to and including the hooked
    block; blocks that run after it (in its layout's forward order) and the layout's output tail are replaced by
    empty placeholders and never copied, since the forward stops at the hook. Returns the copy and the bytes its
    weights occupy.

    Why: ComfyUI creates model weights under ``torch.inference_mode()``, and autograd cannot save inference tensors
    for backward — not even for a gradient with respect to the input only. The shared model is never touched.
    """
    root = unwrap_unet(model)
    layout = layout_for(root)
    order = layout.forward_order(hookpoint.diffusers_name)
    later = [p.module for p in list_hookpoints(root) if layout.forward_order(p.diffusers_name) > order]
    return copy_without(root, later + [getattr(root, name, None) for name in layout.tail])


def copy_without(model: nn.Module, skipped: Sequence[nn.Module | None]) -> tuple[nn.Module, int]:
    """A copy of ``model`` with ordinary frozen weights in which every ``skipped`` module is an empty placeholder
    (never copied), and the bytes of the copy's weights: the one way every backend builds its trainable copy."""
    memo: dict[int, nn.Module] = {id(m): nn.Identity() for m in skipped if isinstance(m, nn.Module)}
    with torch.inference_mode(False):
        copy = deepcopy(model, memo)
        for p in copy.parameters():
            p.requires_grad_(False)
    return copy, sum(p.numel() * p.element_size() for p in copy.parameters())


UNetCall = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


def call_unet(unet: nn.Module, x: Tensor, t: Tensor, context: Tensor | Conditioning) -> Tensor:
    """A diffusers UNet2DConditionModel's output; a :class:`Conditioning` also passes its extras (e.g. SD-XL's
    ``text_embeds`` and ``time_ids``) as ``added_cond_kwargs``."""
    if isinstance(context, Conditioning):
        return unet(x, t, encoder_hidden_states=context.tokens, added_cond_kwargs=dict(context.extras),
                    return_dict=False)[0]
    return unet(x, t, encoder_hidden_states=context, return_dict=False)[0]


class ModuleBackend:
    """A denoiser module with a hooked block: the shared logic of every backend.

    ``call(denoiser, x, t, context)`` runs the model's own forward. ``copy_weights``: ``"auto"`` (copy when the weights
    are inference tensors, as in ComfyUI), ``True`` or ``False``; the copy holds only the blocks up to the hook and
    its size is in :attr:`copy_bytes`.
    """

    def __init__(self, unet: nn.Module, hookpoint: str | Hookpoint, call: UNetCall,
                 schedule: NoiseSchedule | Tensor, *,
                 decoder: Decoder | None = None, empty_context: Tensor | None = None,
                 latent_shape: Sequence[int] | None = None, copy_weights: bool | str = "auto", reads: str = "output"):
        self.denoiser = unet
        self.scheduler = None  # the model's own diffusers scheduler, where it has one (else one over ``schedule``)
        self.encode_prompt = None
        point = hookpoint if isinstance(hookpoint, Hookpoint) else resolve_hookpoint(unet, hookpoint)
        self.hookpoint = point.reading(reads)
        self._call = call
        self.schedule = as_schedule(schedule)
        self._decoder = decoder
        self._empty = empty_context
        self._latent_shape = tuple(latent_shape) if latent_shape else None
        if copy_weights == "auto":
            copy_weights = any(p.is_inference() for p in unet.parameters())
        self.copy_weights = bool(copy_weights)
        self._copy: tuple[nn.Module, Hookpoint] | None = None
        self.copy_bytes = 0

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoiser.parameters()).dtype

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        if self._latent_shape is None:
            raise LVOError("this backend does not know its latent shape; pass latent_shape")
        return self._latent_shape

    def _trainable_copy(self) -> tuple[nn.Module, int]:
        """The copy of the model up to the hook, and its bytes (its layout knows what comes after)."""
        return trainable_copy(self.denoiser, self.hookpoint)

    def _token_grid(self, x_t: Tensor, context: Tensor) -> TokenGrid | None:
        """The image-token grid of one call, for DiT blocks; a UNet block's output carries its own (None)."""
        return None

    def _runner(self) -> tuple[nn.Module, Hookpoint]:
        if not self.copy_weights:
            return self.denoiser, self.hookpoint
        if self._copy is None:
            copy, self.copy_bytes = self._trainable_copy()
            self._copy = (copy, replace(self.hookpoint, module=copy.get_submodule(self.hookpoint.module_path)))
        return self._copy

    def release(self) -> None:
        """Drop the trainable copy (it is rebuilt on the next use)."""
        self._copy, self.copy_bytes = None, 0

    def block_tokens(self, x_t: Tensor, t: Tensor, context: Tensor) -> tuple[Tensor, tuple[int, int]]:
        grid = self._token_grid(x_t, context)
        module, point = self._runner()
        x_t = x_t.to(self.dtype)
        context = context.to(device=self.device, dtype=self.dtype)
        try:
            return run_to_block_tokens(module, point, x_t, t.to(self.device), context, call=self._call, grid=grid)
        except RuntimeError as exc:
            if "Inference tensors cannot be saved for backward" in str(exc):
                raise LVOError("the model's weights are inference tensors (created under torch.inference_mode); "
                               "use copy_weights='auto' so LVO runs on a trainable copy") from exc
            raise

    def predict(self, x_t: Tensor, t: Tensor, context: Tensor) -> Tensor:
        """The full model's output, without gradients (the shared weights serve; nothing is saved)."""
        with torch.no_grad():
            return self._call(self.denoiser, x_t.to(self.dtype), t.to(self.device),
                              context.to(device=self.device, dtype=self.dtype))

    def predict_eps(self, x_t: Tensor, t: Tensor, context: Tensor) -> Tensor:
        return self.schedule.to_eps(self.predict(x_t, t, context), x_t, t)

    def sampler(self, steps: int) -> Any:
        return self.scheduler if self.scheduler is not None else self.schedule.sampler(steps)

    @torch.no_grad()
    def sample(self, cond: Tensor, *, uncond: Tensor | None = None, guidance: float = 1.0, steps: int = 50,
               seeds: Sequence[int], latent_shape: Sequence[int] | None = None,
               on_step: StepCallback | None = None, before_step: Callable[[int, int], None] | None = None,
               init_latents: Tensor | None = None, scheduler: Any = None) -> Tensor:
        return sample_with(self.predict, scheduler if scheduler is not None else self.sampler(steps), cond,
                           uncond=uncond, guidance=guidance, steps=steps, seeds=seeds,
                           latent_shape=latent_shape or self.latent_shape, device=self.device, dtype=self.dtype,
                           on_step=on_step, before_step=before_step, init_latents=init_latents)

    def empty_context(self, batch: int) -> Tensor:
        if self._empty is None:
            raise LVOError("this backend has no empty-prompt conditioning")
        return self._empty.to(device=self.device, dtype=self.dtype).expand(batch, -1, -1)

    @property
    def can_decode(self) -> bool:
        return self._decoder is not None

    def decode(self, latents: Tensor) -> Tensor:
        if self._decoder is None:
            raise LVOError("this backend has no decoder (VAE); latents cannot be turned into images")
        return self._decoder(latents)

    def frozen(self):
        return frozen_weights(self._runner()[0])


class DiffusersBackend(ModuleBackend):
    """A diffusers ``UNet2DConditionModel`` (SD1.x/2.x, or SD-XL with its added conditioning carried by a
    :class:`~lvo_core.model.conditioning.Conditioning`) with a hooked block, its training ᾱ schedule, a decoder and
    the empty-prompt conditioning."""

    def __init__(self, unet: nn.Module, hookpoint: str | Hookpoint, *, scheduler=None, alphas: Tensor | None = None,
                 decoder: Decoder | nn.Module | None = None, empty_context: Tensor | Conditioning | None = None,
                 encode_prompt: Callable[[list[str]], Tensor | Conditioning] | None = None,
                 latent_shape: Sequence[int] | None = None, copy_weights: bool | str = "auto", reads: str = "output"):
        if alphas is None:
            if scheduler is None:
                raise LVOError("give the scheduler (or an alphas_cumprod table) the model was trained with")
            alphas = alphas_from_scheduler(scheduler)
        if empty_context is None:
            if encode_prompt is None:
                raise LVOError("give the empty-prompt conditioning or a prompt encoder to compute it")
            empty_context = encode_prompt([""])
        spacing = getattr(getattr(scheduler, "config", None), "timestep_spacing", "leading")
        super().__init__(unet, hookpoint, call_unet, DDPMSchedule(alphas, spacing),
                         decoder=vae_decoder(decoder) if isinstance(decoder, nn.Module) else decoder,
                         empty_context=empty_context,
                         latent_shape=latent_shape or (unet.config.in_channels, *(unet.config.sample_size,) * 2),
                         copy_weights=copy_weights, reads=reads)
        self.scheduler = scheduler
        self.encode_prompt = encode_prompt
