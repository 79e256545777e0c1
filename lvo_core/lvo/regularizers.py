"""Regularizers of the LVO loop as small named terms, one class each, composed from one list.

Two kinds, as in lucent's objectives and transforms:

* a :class:`Penalty` maps the un-augmented latent ``[B, C, H, W]`` to one value per row ``[B]``; the loop adds
  ``weight × value`` to each row's loss and records the value under the term's ``name`` in the history;
* a :class:`GradientTransform` maps the latent's gradient (after backward, before the optimizer step) to a new one.

A term is a frozen dataclass whose fields are its settings, declared with :func:`setting`. Decorating it with
:func:`register` is all it takes to add one: the config's JSON keys (``<name>_<field>`` unless ``key`` says
otherwise), the per-unit-kind reference values (``sae`` is the default, ``raw=`` where the raw-channel baseline
differs), the history keys, the CLI flags (a setting with ``help``), the ablation components and the resume
fingerprint (which hashes the config's JSON) all come from this registry. A term's first setting is its switch:
0 or False turns it off, which is what ablations and ``--no-…`` flags do.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, ClassVar, Mapping

from torch import Tensor

from ..errors import LVOError
from .transforms import (
    blur_sigma,
    gaussian_blur,
    moment_penalty,
    range_penalty,
    spectral_precondition,
    total_variation,
)


class ConfigError(LVOError):
    """An LVO setting is out of range or unknown."""


def setting(default: Any, help: str | None = None, *, key: str | None = None,  # noqa: A002 - argparse's word
            raw: Any = None) -> Any:
    """A term's setting: its default (the reference's SAE value), the CLI help (no help, no flag), its config key
    when ``<name>_<field>`` does not fit, and the raw-channel reference value where it differs."""
    return field(default=default, metadata={"help": help, "key": key, "raw": raw})


@dataclass(frozen=True)
class Setting:
    """One setting of a registered term, as the config, the CLI and the presets see it."""

    term: str
    field: str
    key: str
    default: Any
    help: str | None
    raw: Any


@dataclass(frozen=True)
class Term:
    """Base of every regularizer: a ``name``, a ``label`` for notes and help texts, the ablation ``component`` it
    belongs to (default: its own name), and its settings as dataclass fields (the first one switches it)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    component: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for s in self.settings_of():
            value = getattr(self, s.field)
            if isinstance(s.default, float) and (not isinstance(value, (int, float)) or not math.isfinite(value)
                                                 or value < 0):
                raise ConfigError(f"{s.key} must be a finite number ≥ 0, got {value}")

    @classmethod
    def settings_of(cls) -> list[Setting]:
        return [Setting(cls.name, f.name, f.metadata.get("key") or f"{cls.name}_{f.name}", f.default,
                        f.metadata.get("help"), f.metadata.get("raw")) for f in fields(cls)]

    @property
    def active(self) -> bool:
        """Whether the switch (the first setting) is on."""
        return bool(getattr(self, fields(self)[0].name))

    def off(self) -> "Term":
        """This term switched off (weight 0, σ 0, False)."""
        first = fields(self)[0].name
        return replace(self, **{first: type(getattr(self, first))()})

    def settings(self) -> dict[str, Any]:
        """``{config key: value}``, as the config's JSON carries them."""
        return {s.key: getattr(self, s.field) for s in self.settings_of()}


@dataclass(frozen=True)
class Penalty(Term):
    """``penalty(z) -> [B]``, one value per row: rows optimizing different units never pull on each other."""

    component: ClassVar[str] = "penalties"

    def __call__(self, z: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class StepContext:
    """What a gradient transform may need besides the gradient: the step, the run length, and the model's own
    denoising direction at the current latent (computed only when a transform asks: it costs a forward pass)."""

    step: int
    steps: int
    model_direction: Callable[[], Tensor]


@dataclass(frozen=True)
class GradientTransform(Term):
    """``transform(grad, ctx) -> grad``, applied in registry order when ``active``."""

    def __call__(self, grad: Tensor, ctx: StepContext) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


REGISTRY: dict[str, type[Term]] = {}


def register(cls: type[Term]) -> type[Term]:
    """Class decorator: add a term to the list everything else is derived from (names and keys must be new)."""
    if not cls.name or not issubclass(cls, (Penalty, GradientTransform)):
        raise LVOError(f"{cls.__name__}: a regularizer is a Penalty or GradientTransform with a name")
    if not fields(cls) or any(f.default is MISSING for f in fields(cls)):
        raise LVOError(f"regularizer '{cls.name}' needs settings with defaults (declared with setting()); the "
                       f"first one switches it on and off")
    taken = {s.key for t in REGISTRY.values() if t.name != cls.name for s in t.settings_of()}
    clash = [s.key for s in cls.settings_of() if s.key in taken]
    if (cls.name in REGISTRY and REGISTRY[cls.name] is not cls) or clash:
        raise LVOError(f"regularizer '{cls.name}' clashes with a registered one (name or settings {clash})")
    cls.component = cls.component or cls.name
    REGISTRY[cls.name] = cls
    return cls


def lookup(name: str) -> type[Term]:
    """The registered term called ``name``, or an error listing the known ones."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown regularizer '{name}'; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def all_settings() -> dict[str, Setting]:
    """Every registered term's settings by config key, in registry order."""
    return {s.key: s for cls in REGISTRY.values() for s in cls.settings_of()}


def penalty_names() -> list[str]:
    """The penalties' names: their history keys, in the order the loss adds them."""
    return [name for name, cls in REGISTRY.items() if issubclass(cls, Penalty)]


def reference_settings(kind: str) -> dict[str, Any]:
    """The settings where the reference's ``kind`` (``sae`` or ``raw``) differs from the defaults (the SAE's)."""
    if kind not in ("sae", "raw"):
        raise ConfigError(f"unit kind must be 'sae' or 'raw', got '{kind}'")
    return {} if kind == "sae" else {s.key: s.raw for s in all_settings().values() if s.raw is not None}


def components() -> dict[str, list[type[Term]]]:
    """Ablation components (what one switch turns off together), in registry order."""
    found: dict[str, list[type[Term]]] = {}
    for cls in REGISTRY.values():
        found.setdefault(cls.component, []).append(cls)
    return found


def component_note(component: str) -> str:
    """What switching ``component`` off means, in words: ``no TV, range or moment penalty``."""
    members = components().get(component)
    if not members:
        raise ConfigError(f"unknown regularizer component '{component}'; known: {', '.join(components())}")
    labels = [m.label or m.name for m in members]
    words = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"
    return f"no {words}" + (" penalty" if all(issubclass(m, Penalty) for m in members) else "")


def off_settings(component: str) -> dict[str, Any]:
    """The settings that switch every term of ``component`` off."""
    component_note(component)  # names the known components when this one is not
    switches = {cls.settings_of()[0].key: cls for cls in components()[component]}
    return {key: cls().off().settings()[key] for key, cls in switches.items()}


@dataclass(frozen=True)
class Flag:
    """A CLI flag derived from the registry: ``--<key>`` sets a setting, ``--no-<key>`` turns a switch that is on
    by default off, ``--no-<component>`` a whole component (declared by ``component_flag`` on its terms)."""

    option: str
    dest: str
    help: str
    type: type | None = None
    settings: Mapping[str, Any] | None = None

    @property
    def is_switch(self) -> bool:
        return self.type is None

    @property
    def argparse_options(self) -> dict[str, Any]:
        """``add_argument`` keywords: a switch stores True, a value flag parses its type (default None: unset)."""
        return {"help": self.help, **({"action": "store_true"} if self.is_switch else {"type": self.type})}


# Components with a --no-<component> flag of their own. A single-term component already has its term's flags; a
# new entry here adds an argument to every recorded CLI run, and so to every run's fingerprint.
COMPONENT_FLAGS = ("penalties",)


def flags() -> list[Flag]:
    """The CLI flags of every registered term (settings with help) and of :data:`COMPONENT_FLAGS`."""
    out = []
    for s in all_settings().values():
        if s.help is None:
            continue
        if isinstance(s.default, bool):
            word = "no-" * s.default + s.key.replace("_", "-")
            out.append(Flag(f"--{word}", word.replace("-", "_"), s.help, settings={s.key: not s.default}))
        else:
            out.append(Flag(f"--{s.key.replace('_', '-')}", s.key, s.help, type=type(s.default)))
    for component in COMPONENT_FLAGS:
        out.append(Flag(f"--no-{component}", f"no_{component}", f"ablation: {component_note(component)}",
                        settings=off_settings(component)))
    return out


def settings_from_flags(values: Mapping[str, Any]) -> dict[str, Any]:
    """Config overrides from parsed flags (missing ones count as unset): values first, then switches, so
    ``--no-penalties`` wins over ``--tv-weight``."""
    overrides = {f.dest: values[f.dest] for f in flags() if not f.is_switch and values.get(f.dest) is not None}
    for f in flags():
        if f.is_switch and values.get(f.dest):
            overrides.update(f.settings or {})
    return overrides


# ------------------------------------------------------------------------------------------------ the terms
@register
@dataclass(frozen=True)
class TotalVariation(Penalty):
    """Mean |Δh z| + mean |Δw z| per row: smooth latents (the reference's raw-channel penalty)."""

    name: ClassVar[str] = "tv"
    label: ClassVar[str] = "TV"
    weight: float = setting(0.0, "total-variation weight", raw=0.5)

    def __call__(self, z: Tensor) -> Tensor:
        return total_variation(z)


@register
@dataclass(frozen=True)
class Range(Penalty):
    """Mean ReLU(|z| − τ)² per row: keeps values within ±τ, where the VAE has seen latents."""

    name: ClassVar[str] = "range"
    label: ClassVar[str] = "range"
    weight: float = setting(0.5, "range-penalty weight")
    tau: float = setting(3.0)

    def __call__(self, z: Tensor) -> Tensor:
        return range_penalty(z, self.tau)


@register
@dataclass(frozen=True)
class Moment(Penalty):
    """|mean z| + |std z − 1| per row: keeps the latent's statistics near the N(0, I) prior (the reference's SAE
    penalty)."""

    name: ClassVar[str] = "moment"
    label: ClassVar[str] = "moment"
    weight: float = setting(0.5, "moment-penalty weight", raw=0.0)

    def __call__(self, z: Tensor) -> Tensor:
        return moment_penalty(z)


@register
@dataclass(frozen=True)
class Precondition(GradientTransform):
    """Spectral preconditioning: each frequency of the gradient scaled by 1/(r+1), rescaled to its own std, so low
    frequencies lead without changing the step size."""

    name: ClassVar[str] = "precondition"
    label: ClassVar[str] = "spectral preconditioning"
    on: bool = setting(True, "ablation: no spectral preconditioning", key="precondition")

    def __call__(self, grad: Tensor, ctx: StepContext) -> Tensor:
        return spectral_precondition(grad)


@register
@dataclass(frozen=True)
class Blur(GradientTransform):
    """Gaussian blur of the gradient, σ linear from ``sigma`` to 0 over the run (the reference's raw baseline)."""

    name: ClassVar[str] = "blur"
    label: ClassVar[str] = "gradient blur"
    component: ClassVar[str] = "precondition"
    sigma: float = setting(0.0, "starting σ of the gradient blur", raw=0.5)

    def __call__(self, grad: Tensor, ctx: StepContext) -> Tensor:
        return gaussian_blur(grad, blur_sigma(ctx.step, ctx.steps, self.sigma))


def row_rms(x: Tensor) -> Tensor:
    """Root-mean-square of each batch row, shaped to broadcast against ``x``."""
    return x.pow(2).mean(dim=tuple(range(1, x.ndim)), keepdim=True).sqrt()


@register
@dataclass(frozen=True)
class DiffusionPrior(GradientTransform):
    """Adds ``weight ×`` the score-distillation gradient ``ε̂(z_t', t') − ε`` at a random t' in
    ``[t_min, t_max]`` per row, which pulls the latent towards what the model itself generates; ``relative``
    scales it to each row's objective-gradient RMS first, so the weight is a ratio."""

    name: ClassVar[str] = "diffusion_prior"
    label: ClassVar[str] = "diffusion-prior term"
    weight: float = setting(0.0, "weight of the diffusion-prior (score-distillation) term; 0 = off (the paper's "
                                 "recipe)", key="prior_weight")
    t_min: int = setting(20, key="prior_t_min")
    t_max: int = setting(980, key="prior_t_max")
    relative: bool = setting(False, key="prior_relative")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.t_min <= self.t_max <= 999:
            raise ConfigError(f"diffusion-prior timesteps need 0 ≤ prior_t_min ≤ prior_t_max ≤ 999, got "
                              f"{self.t_min}..{self.t_max}")

    def __call__(self, grad: Tensor, ctx: StepContext) -> Tensor:
        prior = ctx.model_direction()
        if self.relative:
            prior = prior * (row_rms(grad) / row_rms(prior).clamp_min(1e-12))
        return grad + self.weight * prior
