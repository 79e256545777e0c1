"""The one seam between LVO and a model: run the UNet up to the hooked block, give ᾱ, decode latents.

Everything else in ``lvo_core`` talks to a model only through :class:`Backend`. :class:`DiffusersBackend` serves
the CLI, the tests and research code; the ComfyUI adapter implements the same interface over a ModelPatcher.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Protocol, Sequence

import torch
from torch import Tensor, nn

from .hookpoints import Hookpoint, resolve_hookpoint
from .hooks import run_to_block, to_tokens
from .noise import alphas_from_scheduler
from .sampling import default_latent_shape

Decoder = Callable[[Tensor], Tensor]


class Backend(Protocol):
    """What the optimizer, metrics and steering need from a model."""

    hookpoint: Hookpoint
    alphas: Tensor

    @property
    def device(self) -> torch.device: ...

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    def block_tokens(self, x_t: Tensor, t: Tensor, context: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Block output as tokens ``[B, H·W, C]`` for noisy latents ``x_t`` at integer timesteps ``t`` ``[B]``,
        with gradients flowing back to ``x_t``; nothing after the block is computed."""

    def empty_context(self, batch: int) -> Tensor:
        """Conditioning of the empty prompt, ``[batch, L, D]``."""

    def decode(self, latents: Tensor) -> Tensor:
        """Latents → images ``[B, 3, H, W]`` (any range; callers scale for display)."""

    def frozen(self) -> "contextmanager":
        """Context in which no model weight requires grad (flags restored on exit)."""


@contextmanager
def frozen_weights(module: nn.Module) -> Iterator[None]:
    """Turn off ``requires_grad`` on every parameter for the duration, restoring each flag afterwards (also on
    errors): gradients then flow only to the latent, and a shared model keeps its flags."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def vae_decoder(vae: nn.Module) -> Decoder:
    """A diffusers AutoencoderKL as a decoder: undo the latent scaling factor, decode."""
    factor = float(getattr(vae.config, "scaling_factor", 0.18215))

    def decode(latents: Tensor) -> Tensor:
        param = next(vae.parameters())
        return vae.decode(latents.to(param) / factor).sample
    return decode


class DiffusersBackend:
    """A diffusers ``UNet2DConditionModel`` with a hooked block, its training ᾱ schedule, a decoder and the
    empty-prompt conditioning."""

    def __init__(self, unet: nn.Module, hookpoint: str | Hookpoint, *, scheduler=None, alphas: Tensor | None = None,
                 decoder: Decoder | nn.Module | None = None, empty_context: Tensor | None = None,
                 encode_prompt: Callable[[list[str]], Tensor] | None = None,
                 latent_shape: Sequence[int] | None = None):
        self.unet = unet
        self.hookpoint = hookpoint if isinstance(hookpoint, Hookpoint) else resolve_hookpoint(unet, hookpoint)
        if alphas is None:
            if scheduler is None:
                raise ValueError("give the scheduler (or an alphas_cumprod table) the model was trained with")
            alphas = alphas_from_scheduler(scheduler)
        self.alphas = alphas.double().cpu()
        self.scheduler = scheduler
        self._decoder = vae_decoder(decoder) if isinstance(decoder, nn.Module) else decoder
        if empty_context is None:
            if encode_prompt is None:
                raise ValueError("give the empty-prompt conditioning or a prompt encoder to compute it")
            empty_context = encode_prompt([""])
        self._empty = empty_context
        self.encode_prompt = encode_prompt
        self._latent_shape = tuple(latent_shape) if latent_shape else default_latent_shape(unet)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self._latent_shape

    def block_tokens(self, x_t: Tensor, t: Tensor, context: Tensor) -> tuple[Tensor, tuple[int, int]]:
        out = run_to_block(self.unet, self.hookpoint, x_t.to(self.dtype), t.to(self.device),
                           encoder_hidden_states=context.to(device=self.device, dtype=self.dtype))
        return to_tokens(out)

    def empty_context(self, batch: int) -> Tensor:
        return self._empty.to(device=self.device, dtype=self.dtype).expand(batch, -1, -1)

    def decode(self, latents: Tensor) -> Tensor:
        if self._decoder is None:
            raise ValueError("this backend has no decoder (VAE); latents cannot be turned into images")
        return self._decoder(latents)

    def frozen(self):
        return frozen_weights(self.unet)
