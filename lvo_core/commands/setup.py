"""Model setup of the commands: which model, SAE and hookpoint the flags name, and the inputs every command reads
(prompts, an activity analysis, unit indices checked against the model before any sampling).

The model-family functions here (``load_named_model``, ``tiny_sae``, ``setup``, ``default_hookpoint``, ``backend_for``
``tiny_models``, ``DEFAULT_HOOKPOINT``) are the commands' one seam to the model stage.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..analysis.activity import ActivityAnalysis
from ..errors import ActivityError, LVOError
from ..model.units import make_unit_spec
from ..toy import ANALYSIS, RAW_ANALYSIS
from ..toy.world import COLORS, SHAPES

DEFAULT_HOOKPOINT = "up_blocks.1.attentions.1"
TINY_PROMPTS = ["red circle", "blue square", "green triangle", "yellow ring", "red stripes", "blue circle",
                "green square", "white ring"]


def load_named_model(spec: str, **kwargs: Any):
    """``toy`` (the shipped toy world) or anything :func:`~lvo_core.model.loading.load_model` takes."""
    if spec == "toy":
        from ..toy import load_toy_model

        return load_toy_model(device=kwargs.get("device", "cpu"))
    from ..model.loading import load_model

    return load_model(spec, **kwargs)


def tiny_models() -> tuple[str, ...]:
    """The tiny random models of the registered model families (built in code; each with its own random SAE)."""
    from ..model.families import tiny_names

    return tiny_names()


def tiny_sae(model_source: str):
    """The random SAE that goes with a tiny model (its family's: each says where it reads)."""
    from ..model.families import tiny_family

    return tiny_family(model_source).tiny_sae()


def setup(s: Any):
    """Model, SAE (None for raw units) and hookpoint name from the common settings, the SAE's width checked
    against the block (naming the blocks that would fit)."""
    from ..hookpoints import check_sae_fits, resolve_hookpoint
    from ..sae import load_sae

    if s.raw and s.sae:
        raise LVOError("give either --sae (SAE features) or --raw (raw channels), not both")
    sae = None
    tiny = tiny_models()
    spec = None if s.raw else s.sae or (s.model if s.model in (*tiny, "toy") else None)
    if spec is not None:  # the SAE first: a feature index out of range is refused before the model (and diffusers)
        sae = tiny_sae(spec) if spec in tiny else load_sae(sae_path(spec), hookpoint=s.hookpoint)
        sae = sae.to(device=s.device, dtype=torch.float32)
        named = [s.unit] if getattr(s, "unit", None) is not None else getattr(s, "units", None)
        if isinstance(named, list) and named:
            sae.check_features(named)
    model = load_named_model(s.model, config=s.config, device=s.device)
    if not s.raw and sae is None:
        raise LVOError("give --sae PATH for SAE features, or --raw for raw channels")
    hookpoint = s.hookpoint or (sae.hookpoint if sae is not None and sae.hookpoint
                                else default_hookpoint(model.denoiser))
    if sae is not None:
        check_sae_fits(sae.d_in, resolve_hookpoint(model.denoiser, hookpoint), model.denoiser)
    return model, sae, hookpoint


def sae_path(spec: str) -> str:
    """``--sae toy`` is the toy world's shipped SAE; anything else is a path."""
    if spec == "toy":
        from ..toy import SAE_PATH

        return str(SAE_PATH)
    return spec


def default_hookpoint(denoiser) -> str:
    """The block its family hooks by default (SD's ``up_blocks.1.attentions.1``, FLUX's ``transformer_blocks.18``)."""
    from ..model.families import family_of

    return family_of(denoiser).default_hookpoint(denoiser)


def backend_for(model, hookpoint: str, sae=None):
    """A backend on the model's hooked block (its family's), reading there what ``sae`` was trained on."""
    from ..model.families import family_of

    return family_of(model.denoiser).backend(model, hookpoint, reads=sae.input_kind if sae is not None else "output")


def check_units(model, hookpoint: str, units: Sequence[int], sae) -> None:
    """Unit indices, the SAE's width and the hookpoint checked against the model before any sampling (a bad
    index must not cost a bank build first)."""
    make_unit_spec(model.denoiser, hookpoint, units, sae)


def read_prompts(path: str | None, model_source: str) -> list[str]:
    if path is None:
        if model_source in tiny_models():
            return list(TINY_PROMPTS)
        if model_source == "toy":
            return [f"{c} {s}" for c in COLORS for s in SHAPES]
        raise LVOError("give --prompts FILE (one prompt per line)")
    p = Path(path)
    if not p.is_file():
        raise LVOError(f"prompts file {p} does not exist")
    prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in prompts if line and not line.startswith("#")]
    if not prompts:
        raise LVOError(f"prompts file {p} has no prompts (one per line; '#' starts a comment)")
    return prompts


def load_analysis(path: str | None, model: Any = None, sae: Any = None, hookpoint: str | None = None):
    """The activity analysis in ``path``; without one, the toy world's shipped analysis when ``model`` is the toy
    world and it was made for this block and these units (so toy runs report ratios to the dataset max)."""
    if path is None:
        return toy_analysis(model, sae, hookpoint) if model is not None else None
    if not Path(path).is_file():
        raise LVOError(f"activity analysis {path} does not exist; create it with `python -m lvo_core analyze`")
    return ActivityAnalysis.load(path)


def toy_analysis(model: Any, sae: Any, hookpoint: str | None):
    """The toy world's shipped activity analysis of ``sae``'s features (or of the raw channels when ``sae`` is
    None) at ``hookpoint``; None for any other model, block or SAE."""
    path = ANALYSIS if sae is not None else RAW_ANALYSIS
    if getattr(model, "source", None) != "toy" or not path.is_file():
        return None
    analysis = ActivityAnalysis.load(path)
    try:
        analysis.check_matches(hookpoint or DEFAULT_HOOKPOINT, sae)
    except ActivityError:
        return None
    print(f"using the toy world's shipped activity analysis ({path.name}); give --analysis to use another",
          file=sys.stderr)
    return analysis
