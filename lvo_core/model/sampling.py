"""A plain diffusers sampling loop with classifier-free guidance and a per-step callback.

Activity analysis and steering both need to run a whole generation while something watches or edits the hooked
block at each timestep; this loop is that one place. Each batch row gets its own seeded generator, so a row's
result does not depend on which other rows share its batch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import LVOError
from .conditioning import cat

StepCallback = Callable[[int, int, Tensor], None]


def seeded_noise(seeds: Sequence[int], shape: Sequence[int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """One ``N(0, I)`` tensor of ``shape`` per seed, drawn on the CPU so every device gets the same numbers."""
    rows = [torch.randn(tuple(shape), generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)


@torch.no_grad()
def sample_with(eps_fn: Callable[[Tensor, Tensor, Tensor], Tensor], scheduler, cond: Tensor, *,
                uncond: Tensor | None = None, guidance: float = 1.0, steps: int = 50, seeds: Sequence[int],
                latent_shape: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                on_step: StepCallback | None = None, before_step: Callable[[int, int], None] | None = None,
                init_latents: Tensor | None = None) -> Tensor:
    """Generate ``len(seeds)`` latents with ``scheduler`` (its own ``set_timesteps``/``step``) over any model
    ``eps_fn(x, t, context)`` (``t`` one timestep per row) whose output is what ``scheduler`` steps with — a
    :class:`~lvo_core.model.backend.Backend`'s ``predict`` with its ``sampler()`` — so every backend samples the
    same way (:meth:`~lvo_core.model.backend.Backend.sample` is this loop).

    ``cond`` is ``[B, L, D]`` (or ``[1, L, D]``, broadcast), a tensor or a :class:`Conditioning`; with
    ``guidance != 1`` and ``uncond`` given, each model call sees the batch ``[uncond; cond]`` (diffusers' layout).
    ``on_step(i, t, latents)`` runs after each model call, before the scheduler step, so a hook's records for step
    ``i`` are complete when it is called; ``before_step(i, t)`` runs before it (to switch or scale an edit per
    timestep)."""
    if steps <= 0:
        raise LVOError(f"steps must be positive, got {steps}")
    batch = len(seeds)
    cond = cond.to(device=device, dtype=dtype).expand(batch, -1, -1)
    use_cfg = uncond is not None and guidance != 1.0
    context = cat([uncond.to(device=device, dtype=dtype).expand(batch, -1, -1), cond]) if use_cfg else cond
    scheduler.set_timesteps(steps, device=device)
    latents = (seeded_noise(seeds, latent_shape, device, dtype) * scheduler.init_noise_sigma
               if init_latents is None else init_latents.to(device=device, dtype=dtype))
    for i, t in enumerate(scheduler.timesteps):
        if before_step is not None:
            before_step(i, int(t))
        x = torch.cat([latents, latents]) if use_cfg else latents
        x = scheduler.scale_model_input(x, t)
        eps = eps_fn(x, t.reshape(1).expand(x.shape[0]), context)
        if use_cfg:
            eps_u, eps_c = eps.chunk(2)
            eps = eps_u + guidance * (eps_c - eps_u)
        if on_step is not None:
            on_step(i, int(t), latents)
        latents = scheduler.step(eps, t, latents, return_dict=False)[0]
    return latents


def ddim_from_alphas(alphas: Tensor, timestep_spacing: str = "leading"):
    """diffusers' DDIM scheduler (SD's inference settings) over a model's own training ᾱ table, so a backend that
    only knows ᾱ (ComfyUI's model_sampling, the toy world) samples with the schedule it was trained on."""
    from diffusers import DDIMScheduler

    a = alphas.double().cpu()
    betas = 1 - a / torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]])
    return DDIMScheduler(num_train_timesteps=len(a), trained_betas=betas.float().numpy(), clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1 if timestep_spacing == "leading" else 0,
                         timestep_spacing=timestep_spacing)
