"""Ablations: the same units visualized under named recipes and with one component switched off at a time, scored
with the activation metrics and — in a world with known concepts — concept agreement and re-encode robustness.

A variant is a :class:`~lvo_core.recipes.Recipe`: the LVO settings, where the latent starts (steering prior or plain
noise), the SAE value maximized, the timesteps and the unit kind. Every variant sees the same units and seeds, so a
table row differs from another only by what its name says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .activity import ActivityAnalysis
from .backend import Backend
from .errors import LVOError
from .faithfulness import ConceptPurity, concept_agreement, reencode_robustness
from .pipeline import PriorFn, Visualization, visualize
from .recipes import Recipe, recipe
from .sae.model import SparseAutoencoder
from .transforms import ROBUSTNESS_LEVELS


def switched_off(base: Recipe, component: str) -> Recipe:
    """``base`` with one component off: ``noise``, ``steer`` (plain-noise start), ``penalties``, ``precondition``,
    ``augment``, ``diffusion_prior``, ``pre`` (the paper's dense ReLU value instead of pre-ReLU) or ``fixed_t``
    (the paper's activity-peak timesteps instead of the recipe's fixed ones)."""
    c = base.config
    changes: dict[str, tuple[dict[str, Any], str]] = {
        "noise": (dict(config=replace(c, noise=False)), "no schedule-matched noise injection"),
        "steer": (dict(prior="random"), "plain N(0, I) start instead of the steering prior"),
        "penalties": (dict(config=replace(c, tv_weight=0.0, range_weight=0.0, moment_weight=0.0)),
                      "no TV, range or moment penalty"),
        "precondition": (dict(config=replace(c, precondition=False, blur_sigma=0.0)),
                         "no spectral preconditioning or gradient blur"),
        "augment": (dict(config=replace(c, augment=ROBUSTNESS_LEVELS["L0"])), "no jitter, rotation or zoom"),
        "diffusion_prior": (dict(config=replace(c, prior_weight=0.0)), "no diffusion-prior term"),
        "pre": (dict(value="dense"), "dense ReLU value (paper) instead of pre-ReLU"),
        "fixed_t": (dict(timesteps="peaks"), "rows at {0} ∪ activity peaks (paper) instead of the recipe's"),
    }
    if component not in changes:
        raise LVOError(f"unknown component '{component}'; choose one of {', '.join(changes)}")
    kwargs, note = changes[component]
    return replace(base, name=f"{base.name} − {component.replace('_', ' ')}", note=note, **kwargs)


@dataclass
class Judging:
    """What a world with known concepts adds: per-unit purity (SAE and raw), a reader of decoded images, and the
    image encoder for the re-encode trip."""

    purity: ConceptPurity
    raw_purity: ConceptPurity
    read: Callable[[torch.Tensor], list[dict[str, str]]]
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class AblationRow:
    variant: Recipe
    per_row: list[dict[str, Any]]
    seconds: float
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        """The table row: medians and shares over this variant's rows (see :data:`COLUMNS`)."""
        rows = self.per_row
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        best_per_unit: dict[int, float] = {}
        for r in rows:
            if r["ratio"] is not None:
                best_per_unit[r["unit"]] = max(best_per_unit.get(r["unit"], -np.inf), r["ratio"])
        out: dict[str, Any] = {
            "variant": self.variant.name, "units": len({r["unit"] for r in rows}), "rows": len(rows),
            "ratio_median": _round(np.median(ratios) if ratios else None, 3),
            "units_at_dataset_max": _round(np.mean([v >= 1.0 for v in best_per_unit.values()])
                                           if best_per_unit else None, 3),
            "selectivity": _round(np.mean([r["selectivity"] for r in rows]), 4),
            "top_rank": _round(np.mean([r["rank"] == 1 for r in rows]), 3)}
        if rows and "agrees" in rows[0]:
            out["agreement"] = _round(np.mean([r["agrees"] for r in rows]), 3)
            for axis in ("shape", "color"):
                sel = [r["agrees"] for r in rows if r["concept"].startswith(axis + "=")]
                out[f"agreement_{axis}"] = _round(np.mean(sel) if sel else None, 3)
            out["agreement_shuffled"] = _round(shuffled_agreement(rows), 3)
            out["prior_agreement"] = _round(np.mean([r["prior_agrees"] for r in rows]), 3)
            out["judged_none"] = _round(np.mean([r["judged"] == "none" for r in rows]), 3)
        if rows and "reencode" in rows[0]:
            out["reencode"] = _round(np.mean([r["reencode"] for r in rows]), 3)
        out["seconds"] = round(self.seconds, 1)
        return out


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def shuffled_agreement(rows: Sequence[dict[str, Any]]) -> float:
    """The agreement a visualization gets with the *other* tested units' concepts: the base rate that says how
    much of the agreement is the concept and how much is the judge's (or the prior's) habits."""
    concepts = {r["unit"]: r["concept"] for r in rows}
    hits = []
    for r in rows:
        for unit, concept in concepts.items():
            if unit != r["unit"]:
                axis, value = concept.split("=", 1)
                hits.append(r["read"].get(axis) == value)
    return float(np.mean(hits)) if hits else 0.0


SteerFactory = Callable[[SparseAutoencoder | None, ActivityAnalysis | None, float | None], PriorFn]


def steer_factory(unet: torch.nn.Module, scheduler, hookpoint: str, empty_context: torch.Tensor,
                  steps: int = 50) -> SteerFactory:
    """Steering priors for :func:`run_variant`: the reference protocol (dataset max × scale at active timesteps)
    when the strength is None, else that fixed strength over the whole sampling."""
    from .steering import steer

    def factory(sae: SparseAutoencoder | None, analysis: ActivityAnalysis | None, strength: float | None) -> PriorFn:
        def prior(units: list[int], seeds: list[int]) -> torch.Tensor:
            return steer(unet, scheduler, hookpoint, units, seeds, empty_context, sae=sae,
                         analysis=analysis if strength is None else None, strength=strength, steps=steps)
        prior.label = "steer" if strength is None else f"steer {strength:g}"
        return prior
    return factory


def run_variant(backend: Backend, variant: Recipe, units: Sequence[int], *, sae: SparseAutoencoder | None,
                analysis: ActivityAnalysis | None, seeds: Sequence[int], steer_prior: SteerFactory | None,
                judging: Judging | None = None, batch_size: int = 64, reencode_draws: int = 8,
                should_stop: Callable[[], bool] | None = None
                ) -> tuple[AblationRow, Visualization, torch.Tensor]:
    """Visualize ``units`` with one variant and score every row; also returns the decoded images ``[B, 3, H, W]``
    (decoded once, for the judge and for display). ``steer_prior(sae, analysis, strength)`` makes the steering prior
    (``strength`` None: the reference's dataset-max × scale protocol)."""
    start = time.perf_counter()
    unit_sae = None if variant.raw else sae
    if variant.prior == "steer":
        if steer_prior is None:
            raise LVOError(f"variant '{variant.name}' starts from a steering prior; give steer_prior")
        prior: str | PriorFn = steer_prior(unit_sae, analysis, variant.steer_strength)
    else:
        prior = "random"
    timesteps = variant.timesteps if isinstance(variant.timesteps, str) else list(variant.timesteps)
    vis = visualize(backend, list(units), sae=unit_sae, analysis=analysis, timesteps=timesteps, seeds=seeds,
                    prior=prior, config=variant.config, value=variant.value, batch_size=batch_size, decode=False,
                    should_stop=should_stop)
    per_row = [dict(m) for m in vis.metrics]
    row_units = [r.unit for r in vis.rows]
    with torch.no_grad():
        images = backend.decode(vis.latents.to(backend.device)).float().cpu()
    if judging is not None:
        purity = judging.raw_purity if variant.raw else judging.purity
        with torch.no_grad():
            starts = backend.decode(vis.init_latents.to(backend.device)).float().cpu()
        for m, a, p in zip(per_row, concept_agreement(purity, row_units, judging.read(images)),
                           concept_agreement(purity, row_units, judging.read(starts))):
            m.update({k: a[k] for k in ("concept", "purity", "judged", "agrees", "read")})
            m["prior_agrees"] = p["agrees"]
        robust = reencode_robustness(backend, vis.latents, row_units, [r.timestep for r in vis.rows], unit_sae,
                                     judging.encode, draws=reencode_draws)
        for m, value in zip(per_row, robust):
            m["reencode"] = value
    return AblationRow(variant, per_row, time.perf_counter() - start, vis.interrupted), vis, images


COLUMNS = {
    "variant": "recipe, or what was switched off",
    "rows": "visualizations (unit × timestep × seed)",
    "ratio_median": "median over rows of activation reached ÷ dataset max at that timestep",
    "units_at_dataset_max": "share of units whose best visualization (over timesteps and seeds) reaches ≥ 1.0× the "
                            "dataset max",
    "selectivity": "target minus the mean of all other units (mean over rows)",
    "top_rank": "share of rows where the target is the layer's most active unit",
    "agreement": "share of images the judge reads as the unit's dominant concept",
    "agreement_shape": "the same, over units whose dominant concept is a shape",
    "agreement_color": "the same, over units whose dominant concept is a colour",
    "agreement_shuffled": "agreement with the other tested units' concepts (base rate)",
    "prior_agreement": "agreement of the starting latents (the steering prior or noise) before LVO",
    "judged_none": "share of images in which the judge sees no concept on the unit's axis",
    "reencode": "re-encode robustness: share of fresh noise draws after decode → encode with the target on top",
    "seconds": "wall time of the variant (prior, LVO, metrics)",
}
PERCENT = {"units_at_dataset_max", "top_rank", "agreement", "agreement_shape", "agreement_color",
           "agreement_shuffled", "prior_agreement", "judged_none", "reencode"}


def markdown_table(summaries: Sequence[dict[str, Any]]) -> str:
    """One markdown table with a column per metric present in any summary."""
    cols = [c for c in COLUMNS if any(c in s for s in summaries)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for s in summaries:
        cells = []
        for c in cols:
            v = s.get(c)
            cells.append("—" if v is None else f"{v:.0%}" if c in PERCENT else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


BEST_COMPONENTS = ("steer", "noise", "penalties", "precondition", "augment", "diffusion_prior", "pre", "fixed_t")
PAPER_COMPONENTS = ("steer", "noise", "penalties", "precondition")


def standard_variants() -> list[Recipe]:
    """``paper`` and ``best``, each component of ``best`` (and the paper's main ones) switched off, and both recipes
    on raw channels."""
    paper, best = recipe("paper"), recipe("best")
    return ([paper, best] + [switched_off(best, c) for c in BEST_COMPONENTS]
            + [switched_off(paper, c) for c in PAPER_COMPONENTS] + [paper.for_raw(), best.for_raw()])


def run_ablation(backend: Backend, variants: Sequence[Recipe], units: Sequence[int], raw_units: Sequence[int], *,
                 sae: SparseAutoencoder | None, analysis: ActivityAnalysis | None,
                 raw_analysis: ActivityAnalysis | None, seeds: Sequence[int], steer_prior: SteerFactory | None,
                 judging: Judging | None = None, out: str | Path | None = None, batch_size: int = 64,
                 on_variant: Callable[[int, int, dict[str, Any]], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every variant on the same units (raw variants on ``raw_units``) and seeds; with ``out``, write
    ``ablation.json`` (every row, plus ``extra``), ``ablation.md`` (the table) and a contact sheet per variant."""
    from .metrics import display_images
    from .report import contact_sheet, save_json, save_png

    out = Path(out) if out is not None else None
    if out is not None:
        (out / "sheets").mkdir(parents=True, exist_ok=True)
    results = []
    for i, variant in enumerate(variants):
        raw = variant.raw
        row, vis, images = run_variant(backend, variant, raw_units if raw else units, sae=sae,
                                       analysis=raw_analysis if raw else analysis, seeds=seeds,
                                       steer_prior=steer_prior, judging=judging, batch_size=batch_size,
                                       should_stop=should_stop)
        summary = row.summary()
        results.append({"recipe": variant.describe(), "summary": summary, "rows": row.per_row})
        if out is not None:
            labels = [f"{m['unit']} t{m['timestep']} x{m['ratio']:.2f}" if m["ratio"] is not None else
                      f"{m['unit']} t{m['timestep']}" for m in row.per_row]
            if judging is not None:
                labels = [f"{label} {m['judged']}" for label, m in zip(labels, row.per_row)]
            save_png(contact_sheet(list(display_images(images).numpy()), [r.unit for r in vis.rows], labels),
                     out / "sheets" / f"{i:02d}_{slug(variant.name)}.png")
        if on_variant is not None:
            on_variant(i, len(variants), summary)
        if row.interrupted:
            break
    report = {"units": list(units), "raw_units": list(raw_units), "seeds": list(seeds), "columns": COLUMNS,
              "table": [r["summary"] for r in results], **(extra or {}), "variants": results}
    if out is not None:
        save_json(report, out / "ablation.json")
        legend = "\n".join(f"- `{k}`: {v}" for k, v in COLUMNS.items())
        (out / "ablation.md").write_text(markdown_table(report["table"]) + "\n\n" + legend + "\n", encoding="utf-8")
    return report


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
