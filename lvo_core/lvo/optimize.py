"""The LVO loop: optimize clean latents so that each batch row's unit fires maximally.

Each of ``steps`` steps: augment the latent (one seeded draw for the batch), noise it to the row's timestep with
fresh seeded ε (schedule-matched), run the UNet up to the hooked block on the empty prompt, compute the objective
per row, add the per-row penalties of the un-augmented latent, backpropagate to the latent only, transform the
gradient (spectral preconditioning, blur, the diffusion prior), step AdamW. Penalties and gradient transforms are
the registered terms of :mod:`~lvo_core.lvo.regularizers`. Every piece is switchable from :class:`LVOConfig`, which
is how ablations run.

Rows are independent: their losses are summed, never averaged with one another, so a row's latent follows the same
trajectory whatever else shares its batch (up to floating-point batching effects).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..analysis.metrics import display_images
from ..errors import LVOError
from ..model.backend import Backend
from ..model.noise import step_noise
from . import regularizers
from .objectives import Objective
from .regularizers import ConfigError, StepContext
from .transforms import ROBUSTNESS_LEVELS, Augment, augment


def history_keys() -> tuple[str, ...]:
    """What a run's history records per step and row: the activation, each registered penalty, the loss."""
    return ("activation", *regularizers.penalty_names(), "loss")


@dataclass(frozen=True, init=False)
class LVOConfig:
    """Every knob of the LVO loop, defaulting to the reference's SAE settings (see :data:`PRESETS`).

    The regularizers are ``terms``, one instance per registered term (:mod:`~lvo_core.lvo.regularizers`); their
    settings also read and write as flat keys (``tv_weight``, ``blur_sigma``, …), which is how the config's JSON,
    ``LVOConfig(tv_weight=0.5)`` and ``dataclasses.replace(config, tv_weight=0.5)`` spell them.
    """

    steps: int = 100
    lr: float = 0.05
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    noise: bool = True
    augment: Augment = field(default_factory=Augment)
    maximize: bool = True
    seed: int = 0
    preview_every: int = 0
    precision: str = "fp32"
    check_every: int = 1
    terms: tuple[regularizers.Term, ...] = ()

    def __init__(self, *, terms: Sequence[regularizers.Term] = (), **settings: Any) -> None:
        for f in fields(self):
            if f.name != "terms":
                default = f.default_factory() if f.default is MISSING else f.default
                object.__setattr__(self, f.name, settings.pop(f.name, default))
        self._check()
        given = {t.name: t for t in terms}
        for name in given:
            if regularizers.REGISTRY.get(name) is not type(given[name]):
                regularizers.lookup(name)  # names the known ones when unknown
                raise ConfigError(f"term {given[name]!r} is not the registered '{name}' regularizer")
        known = regularizers.all_settings()
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ConfigError(f"unknown LVO setting(s): {', '.join(unknown)}; the regularizers' settings are "
                              f"{', '.join(known)}")
        built = []
        for name, cls in regularizers.REGISTRY.items():
            changes = {s.field: settings[s.key] for s in cls.settings_of() if s.key in settings}
            base = given.get(name)
            built.append(replace(base, **changes) if base is not None else cls(**changes))
        object.__setattr__(self, "terms", tuple(built))

    def _check(self) -> None:
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ConfigError(f"steps must be a positive integer, got {self.steps}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number ≥ 0, got {value}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be 'adam' or 'adamw', got '{self.optimizer}'")
        if self.preview_every < 0:
            raise ConfigError(f"preview_every must be ≥ 0, got {self.preview_every}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision must be 'fp32', 'bf16' or 'fp16', got '{self.precision}'")
        if not isinstance(self.check_every, int) or self.check_every <= 0:
            raise ConfigError(f"check_every must be a positive integer, got {self.check_every}")

    def term(self, name: str) -> regularizers.Term:
        """The ``name`` regularizer with this config's settings (its defaults if registered after the config)."""
        for t in self.terms:
            if t.name == name:
                return t
        return regularizers.lookup(name)()

    def __getattr__(self, name: str) -> Any:
        """A regularizer's setting by its flat key (``config.tv_weight``)."""
        spec = regularizers.all_settings().get(name) if not name.startswith("_") and name != "terms" else None
        if spec is None:
            raise AttributeError(f"'LVOConfig' has no setting '{name}'")
        return getattr(self.term(spec.term), spec.field)

    @property
    def penalties(self) -> list[regularizers.Penalty]:
        return [t for t in map(self.term, regularizers.REGISTRY) if isinstance(t, regularizers.Penalty)]

    @property
    def gradient_transforms(self) -> list[regularizers.GradientTransform]:
        return [t for t in map(self.term, regularizers.REGISTRY) if isinstance(t, regularizers.GradientTransform)]

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON every result carries: the loop's fields, then every registered term's settings."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "terms"}
        data["augment"] = asdict(self.augment)
        for name in regularizers.REGISTRY:
            data.update(self.term(name).settings())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LVOConfig":
        data = dict(data)
        if isinstance(data.get("augment"), dict):
            data["augment"] = Augment(**data["augment"])
        return cls(**data)


PRESETS: dict[str, LVOConfig] = {
    # the reference's SAE-feature settings: moment penalty, no TV, no gradient blur (the terms' defaults)
    "sae": LVOConfig(**regularizers.reference_settings("sae")),
    # the reference's raw-channel baseline: TV penalty and a decaying gradient blur instead of the moment penalty
    "raw": LVOConfig(**regularizers.reference_settings("raw")),
}


def auto_precision(device: torch.device | str) -> str:
    """bf16 on CUDA devices that support it (fp16 on older ones), fp32 elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """A precision setting as run: ``auto`` becomes :func:`auto_precision` of ``device``; the others stay."""
    return auto_precision(device) if precision == "auto" else precision


def preset(name: str, robustness: str | None = None, **overrides: Any) -> LVOConfig:
    """A named preset, optionally with a robustness level (``L0``…``L3``) and any field overridden."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    config = PRESETS[name]
    if robustness is not None:
        if robustness not in ROBUSTNESS_LEVELS:
            raise ConfigError(f"unknown robustness level '{robustness}'; choose one of {', '.join(ROBUSTNESS_LEVELS)}")
        overrides.setdefault("augment", ROBUSTNESS_LEVELS[robustness])
    return replace(config, **overrides)


@dataclass
class StepInfo:
    """What a progress callback sees after each step (tensors on the device; no host sync is forced)."""

    step: int
    total: int
    activation: Tensor
    loss: Tensor
    latents: Tensor


@dataclass
class LVOResult:
    """Final clean latents, the per-step history ``[steps_done, B]`` per key, and how the run ended."""

    latents: Tensor
    init_latents: Tensor
    timesteps: list[int]
    seeds: list[int]
    history: dict[str, np.ndarray]
    steps_done: int
    config: LVOConfig
    objective: str
    interrupted: bool = False
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.stopped is None and self.steps_done == self.config.steps


PRIOR_NOISE_OFFSET = 1 << 20  # the prior's noise draws never coincide with the objective's


def diffusion_prior_grad(backend: Backend, z: Tensor, seeds: Sequence[int], step: int, context: Tensor,
                         gen: torch.Generator, config: "LVOConfig") -> Tensor:
    """Score-distillation gradient ``ε̂(z_t', t') − ε`` at a random timestep t' per row: descending it moves the
    latent towards what the model itself would generate (the model's own denoising direction). The full UNet runs
    without gradients, so this costs one forward pass and no backward."""
    t = torch.randint(config.prior_t_min, config.prior_t_max + 1, (z.shape[0],), generator=gen).to(z.device)
    eps = step_noise(seeds, PRIOR_NOISE_OFFSET + step, z.shape[1:], z.device, torch.float32)
    with torch.no_grad():
        eps_hat = backend.predict_eps(backend.schedule.add_noise(z, t, eps), t, context)
    return (eps_hat.float() - eps).to(z.dtype)


class Interrupted(Exception):
    """Raise from a callback to end the run; the partial result is returned, not lost."""


def optimize(backend: Backend, objective: Objective, init_latents: Tensor, timesteps: Sequence[int] | Tensor,
             seeds: Sequence[int], config: LVOConfig = PRESETS["sae"], *,
             on_step: Callable[[StepInfo], None] | None = None,
             on_preview: Callable[[int, Tensor], None] | None = None, preview_display: str = "per_image",
             should_stop: Callable[[], bool] | None = None) -> LVOResult:
    """Run LVO on ``init_latents`` ``[B, C, H, W]``, row b at timestep ``timesteps[b]`` with noise seed ``seeds[b]``.

    Works under ``torch.inference_mode()`` (as ComfyUI runs nodes): the loop leaves it explicitly and optimizes a
    fresh fp32 copy of the latents. Model weights are frozen for the duration and their flags restored. A callback
    that raises :class:`Interrupted` (or ``should_stop()`` returning True) ends the run with the partial result;
    a non-finite loss or latent ends it too, keeping the last finite latents and naming the step. Finiteness is
    checked on the device and read back only every ``config.check_every`` steps, so the loop never waits for the
    device in between; ``config.precision`` runs the UNet under autocast (bf16/fp16) while the latent, its
    optimizer state and the penalties stay fp32.
    Every ``config.preview_every`` steps ``on_preview(step, images)`` receives the current latents decoded for
    display (``[B, H, W, 3]`` in [0, 1]).
    """
    batch = init_latents.shape[0]
    seeds = [int(s) for s in seeds]
    if len(seeds) != batch:
        raise LVOError(f"got {len(seeds)} seeds for {batch} latent rows; give one seed per row")
    t = backend.schedule.check(timesteps)
    t = t.expand(batch).clone() if t.ndim == 0 or len(t) == 1 else t
    if len(t) != batch:
        raise LVOError(f"got {len(t)} timesteps for {batch} latent rows; give one per row or one for all")
    if not torch.isfinite(init_latents).all():
        raise LVOError("the initial latents contain NaN or inf; check the prior (steering strength too large?)")
    device = backend.device
    keys = history_keys()
    history: dict[str, list[Tensor]] = {k: [] for k in keys}
    penalties, transforms = config.penalties, [g for g in config.gradient_transforms if g.active]
    interrupted, stopped, done = False, None, 0
    gen = torch.Generator("cpu").manual_seed(int(config.seed))
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.precision]
    with torch.inference_mode(False), torch.enable_grad(), backend.frozen():
        z = init_latents.detach().clone().to(device=device, dtype=torch.float32).requires_grad_(True)
        t_dev = t.to(device)
        context = backend.empty_context(batch).detach().clone()
        opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls([z], lr=config.lr, weight_decay=config.weight_decay)
        good, good_steps = z.detach().clone(), 0
        bad = torch.zeros((), dtype=torch.bool, device=device)

        def rollback() -> None:
            """Back to the last checked, finite state: latents and history."""
            with torch.no_grad():
                z.copy_(good)
            for values in history.values():
                del values[good_steps:]
        try:
            for step in range(config.steps):
                if should_stop is not None and should_stop():
                    raise Interrupted
                draw = config.augment.draw(gen)
                x = augment(z, draw)
                if config.noise:
                    x = backend.schedule.add_noise(x, t_dev, step_noise(seeds, step, z.shape[1:], device, torch.float32))
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    tokens, hw = backend.block_tokens(x, t_dev, context)
                    act = objective(tokens, hw).float()
                values = [term(z) for term in penalties]
                loss = -act if config.maximize else act
                for term, value in zip(penalties, values):
                    loss = loss + term.weight * value
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                grad = z.grad
                ctx = StepContext(step, config.steps, lambda: diffusion_prior_grad(backend, z.detach(), seeds, step,
                                                                                   context, gen, config))
                for transform in transforms:
                    grad = transform(grad, ctx)
                z.grad = grad
                opt.step()
                # no host sync here: the flag stays on the device until the next check
                bad = bad | ~torch.isfinite(loss).all() | ~torch.isfinite(z).all()
                for key, value in zip(keys, (act, *values, loss)):
                    history[key].append(value.detach())
                done = step + 1
                if done % config.check_every == 0 or done == config.steps:
                    if bool(bad):
                        rollback()
                        stopped = (f"non-finite loss or latents at step {good_steps}"
                                   f"{'' if config.check_every == 1 else f'–{step}'}; kept the latents from "
                                   f"before it")
                        done = good_steps
                        break
                    good, good_steps = z.detach().clone(), done
                if on_step is not None:
                    on_step(StepInfo(done, config.steps, act.detach(), loss.detach(), z.detach()))
                if on_preview is not None and config.preview_every and done % config.preview_every == 0:
                    with torch.no_grad():
                        on_preview(done, display_images(backend.decode(z.detach()), preview_display))
        except (Interrupted, KeyboardInterrupt):
            interrupted = True
            if bool(bad):  # the unchecked steps since the last check went bad: fall back to the checked state
                rollback()
                done, stopped = good_steps, f"non-finite values after step {good_steps}; kept the latents from then"
        final = z.detach().clone()
    hist = {k: (torch.stack(v).cpu().numpy() if v else np.zeros((0, batch), np.float32)) for k, v in history.items()}
    return LVOResult(latents=final.cpu(), init_latents=init_latents.detach().cpu(), timesteps=t.tolist(), seeds=seeds,
                     history=hist, steps_done=done, config=config, objective=objective.name,
                     interrupted=interrupted, stopped=stopped)
