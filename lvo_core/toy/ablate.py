"""Ablations: the same units visualized under named recipes and with one component switched off at a time, scored
with the activation metrics and — in a world with known concepts — concept agreement and re-encode robustness.

A variant is a :class:`~lvo_core.lvo.recipes.Recipe`: the LVO settings, where the latent starts (steering prior or plain
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

from ..analysis.activity import ActivityAnalysis
from ..analysis.bank import SampleBank
from ..analysis.faithfulness import ConceptPurity, concept_agreement, reencode_report
from ..errors import LVOError
from ..fileio import ensure_folder, write_text
from ..lvo import regularizers
from ..lvo.pipeline import PriorFn, Visualization
from ..lvo.recipes import Recipe, RunSpec, SteerFactory, build_run, recipe, score_bank
from ..lvo.transforms import ROBUSTNESS_LEVELS
from ..model.backend import Backend
from ..progress import ProgressFn, stage
from ..sae.model import SparseAutoencoder


def switched_off(base: Recipe, component: str) -> Recipe:
    """``base`` with one component off: ``noise``, ``steer`` (plain-noise start), ``augment``, ``pre`` (the paper's
    dense ReLU value instead of pre-ReLU), ``fixed_t`` (the paper's activity-peak timesteps instead of the recipe's
    fixed ones), or a regularizer component (:func:`~lvo_core.lvo.regularizers.components`: ``penalties``,
    ``precondition`` — preconditioning and gradient blur —, ``diffusion_prior``, and any registered later)."""
    c = base.config
    changes: dict[str, tuple[dict[str, Any], str]] = {
        "noise": (dict(config=replace(c, noise=False)), "no schedule-matched noise injection"),
        "steer": (dict(prior="random"), "plain N(0, I) start instead of the steering prior"),
        "augment": (dict(config=replace(c, augment=ROBUSTNESS_LEVELS["L0"])), "no jitter, rotation or zoom"),
        **{name: (dict(config=replace(c, **regularizers.off_settings(name))), regularizers.component_note(name))
           for name in regularizers.components()},
        "pre": (dict(value="dense"), "dense ReLU value (paper) instead of pre-ReLU"),
        "fixed_t": (dict(timesteps="peaks"), "rows at {0} ∪ activity peaks (paper) instead of the recipe's"),
    }
    if component not in changes:
        raise LVOError(f"unknown component '{component}'; choose one of {', '.join(changes)}")
    kwargs, note = changes[component]
    return replace(base, name=f"{base.name} − {component.replace('_', ' ')}", note=note, **kwargs)


def components_of(base: Recipe) -> list[str]:
    """The components ``base`` has on, each of which :func:`switched_off` can take away: its start, noise,
    augmentation, every regularizer component with an active term, its value and its fixed timesteps."""
    c = base.config
    on = {"steer": base.prior == "steer", "noise": c.noise, "augment": not c.augment.is_identity,
          **{name: any(c.term(t.name).active for t in terms) for name, terms in regularizers.components().items()},
          "pre": base.value == "pre", "fixed_t": not isinstance(base.timesteps, str)}
    return [name for name, used in on.items() if used]


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
    unit_set: str = ""

    def summary(self) -> dict[str, Any]:
        """The table row: medians and shares over this variant's rows (see :data:`COLUMNS`)."""
        rows = self.per_row
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        best_per_unit: dict[int, float] = {}
        for r in rows:
            if r["ratio"] is not None:
                best_per_unit[r["unit"]] = max(best_per_unit.get(r["unit"], -np.inf), r["ratio"])
        out: dict[str, Any] = {
            "variant": self.variant.name + (f" [{self.unit_set}]" if self.unit_set else ""),
            "units": len({r["unit"] for r in rows}), "rows": len(rows),
            "ratio_median": _round(np.median(ratios) if ratios else None, 3),
            "units_at_dataset_max": _round(np.mean([v >= 1.0 for v in best_per_unit.values()])
                                           if best_per_unit else None, 3),
            "selectivity": _round(np.mean([r["selectivity"] for r in rows]), 4),
            "top_rank": _round(np.mean([r["rank"] == 1 for r in rows]), 3)}
        if rows and "agrees" in rows[0]:
            out["agreement"] = _round(np.mean([r["agrees"] for r in rows]), 3)
            low, high = wilson(sum(r["agrees"] for r in rows), len(rows))
            out["agreement_ci"] = f"{low:.0%}–{high:.0%}"
            for axis in ("shape", "color"):
                sel = [r["agrees"] for r in rows if r["concept"].startswith(axis + "=")]
                out[f"agreement_{axis}"] = _round(np.mean(sel) if sel else None, 3)
            out["agreement_shuffled"] = _round(shuffled_agreement(rows), 3)
            out["prior_agreement"] = _round(np.mean([r["prior_agrees"] for r in rows]), 3)
            out["judged_none"] = _round(np.mean([r["judged"] == "none" for r in rows]), 3)
        if rows and "reencode" in rows[0]:
            out["reencode"] = _round(np.mean([r["reencode"] for r in rows]), 3)
            kept = [r["reencode_retained"] for r in rows if r.get("reencode_retained") is not None]
            out["reencode_retained"] = _round(np.median(kept) if kept else None, 3)
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


def steer_factory(backend: Backend, scheduler, empty_context: torch.Tensor,
                  steps: int = 50, progress: ProgressFn | None = None) -> SteerFactory:
    """Steering priors for :func:`run_variant` at the backend's block, sampled with ``scheduler``: the reference
    protocol (dataset max × scale at active timesteps) when the strength is None, else that fixed strength over the
    whole sampling."""
    from ..analysis.steering import steer

    def factory(sae: SparseAutoencoder | None, analysis: ActivityAnalysis | None, strength: float | None) -> PriorFn:
        def prior(units: list[int], seeds: list[int]) -> torch.Tensor:
            step = stage(progress, f"steering prior, {len(units)} rows (steps)")
            return steer(backend, units, seeds, sae=sae, analysis=analysis if strength is None else None,
                         strength=strength, steps=steps, on_step=lambda i, n: step(i + 1, n), context=empty_context,
                         scheduler=scheduler)
        prior.label = "steer" if strength is None else f"steer {strength:g}"
        return prior
    return factory


def run_variant(backend: Backend, variant: Recipe, units: Sequence[int], *, sae: SparseAutoencoder | None,
                analysis: ActivityAnalysis | None, seeds: Sequence[int], steer_prior: SteerFactory | None,
                judging: Judging | None = None, batch_size: int = 64, reencode_draws: int = 8,
                should_stop: Callable[[], bool] | None = None, bank: SampleBank | None = None,
                progress: ProgressFn | None = None) -> tuple[AblationRow, Visualization, torch.Tensor]:
    """Visualize ``units`` with one variant and score every row; also returns the decoded images ``[B, 3, H, W]``
    (decoded once, for the judge and for display). ``steer_prior(sae, analysis, strength)`` makes the steering prior
    (``strength`` None: the reference's dataset-max × scale protocol); ``bank`` serves bank-prior recipes.
    ``progress(label, done, total)`` sees the optimization and the judging."""
    start = time.perf_counter()
    unit_sae = None if variant.raw else sae
    spec = RunSpec(variant, list(units), list(seeds), sae=unit_sae, analysis=analysis, bank=bank, steer=steer_prior)
    if bank is not None and variant.prior == "bank":  # score first, so that it shows as its own progress line
        score_bank(backend, spec, on_progress=stage(progress, f"{variant.name}: scoring the bank (images × noise "
                                                              f"draws)"))
    vis = build_run(backend, spec, batch_size=batch_size, decode=False, should_stop=should_stop,
                    on_progress=stage(progress, f"{variant.name}: LVO (rows × steps, then measure)"))
    judged = stage(progress, f"{variant.name}: decode, judge, re-encode")
    per_row = [dict(m) for m in vis.metrics]
    row_units = [r.unit for r in vis.rows]
    with torch.no_grad():
        images = backend.decode(vis.latents.to(backend.device)).float().cpu()
    judged(1, 3)
    if judging is not None:
        purity = judging.raw_purity if variant.raw else judging.purity
        with torch.no_grad():
            starts = backend.decode(vis.init_latents.to(backend.device)).float().cpu()
        for m, a, p in zip(per_row, concept_agreement(purity, row_units, judging.read(images)),
                           concept_agreement(purity, row_units, judging.read(starts))):
            m.update({k: a[k] for k in ("concept", "purity", "judged", "agrees", "read")})
            m["prior_agrees"] = p["agrees"]
        judged(2, 3)
        robust, retained = reencode_report(backend, vis.latents, row_units, [r.timestep for r in vis.rows],
                                           unit_sae, judging.encode, draws=reencode_draws)
        for m, value, kept in zip(per_row, robust, retained):
            m["reencode"], m["reencode_retained"] = value, kept
    judged(3, 3)
    return AblationRow(variant, per_row, time.perf_counter() - start, vis.interrupted), vis, images


COLUMNS = {
    "variant": "recipe, or what was changed; [held-out]: features never used to choose any default",
    "rows": "visualizations (unit × timestep × seed)",
    "ratio_median": "median over rows of activation reached ÷ dataset max at that timestep",
    "units_at_dataset_max": "share of units whose best visualization (over timesteps and seeds) reaches ≥ 1.0× the "
                            "dataset max",
    "selectivity": "target minus the mean of all other units (mean over rows)",
    "top_rank": "share of rows where the target is the layer's most active unit",
    "agreement": "share of images the judge reads as the unit's dominant concept",
    "agreement_ci": "95 % Wilson interval of the agreement",
    "agreement_shape": "the same, over units whose dominant concept is a shape",
    "agreement_color": "the same, over units whose dominant concept is a colour",
    "agreement_shuffled": "agreement with the other tested units' concepts (base rate)",
    "prior_agreement": "agreement of the starting latents (the steering prior or noise) before LVO",
    "judged_none": "share of images in which the judge sees no concept on the unit's axis",
    "reencode": "re-encode robustness: share of fresh noise draws after decode → encode with the target on top",
    "reencode_retained": "median share of the target's activation that survives decode → encode (same draws)",
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


POOL_SIZES = (10, 40)  # smaller pools than the default bank, as prefixes of it


def faithful_variants(base: Recipe | None = None) -> list[Recipe]:
    """``faithful`` with each of its parts changed: no selection (an arbitrary pool sample), no polish, selection
    at t = 0 and at the unit's activity peak instead of the default timestep, smaller pools, a 100-step polish."""
    base = base or recipe("faithful")
    steps = base.config.steps
    return [replace(base, name=f"{base.name} − selection", select=False,
                    note="pool image k for seed k, not chosen for the unit"),
            replace(base, name=f"{base.name} − polish", polish=False, note="the selected pool image as it is"),
            replace(base, name=f"{base.name}, selection at t = 0", select_t=0, note="scored and polished at t = 0"),
            replace(base, name=f"{base.name}, selection at activity peak", select_t="peak",
                    note="scored and polished at the unit's highest activity peak"),
            *[replace(base, name=f"{base.name}, pool {n}", pool=n, note=f"best of the first {n} pool images")
              for n in POOL_SIZES],
            replace(base, name=f"{base.name}, polish 100 steps", config=replace(base.config, steps=100),
                    note=f"100 polish steps instead of {steps}")]


def standard_variants() -> list[Recipe]:
    """``paper``, ``best`` and ``faithful``; each part of ``faithful`` changed; all three on raw channels."""
    paper, best, faithful = recipe("paper"), recipe("best"), recipe("faithful")
    return ([paper, best, faithful] + faithful_variants(faithful)
            + [paper.for_raw(), best.for_raw(), faithful.for_raw()])


def held_out_variants() -> list[Recipe]:
    """What runs on the held-out features (never used to choose any default)."""
    return [recipe("paper"), recipe("best"), recipe("faithful")]


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial share (95 % for z = 1.96): honest at shares near 0 or 1 and small n."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def run_ablation(backend: Backend, variants: Sequence[Recipe], units: Sequence[int], raw_units: Sequence[int], *,
                 sae: SparseAutoencoder | None, analysis: ActivityAnalysis | None,
                 raw_analysis: ActivityAnalysis | None, seeds: Sequence[int], steer_prior: SteerFactory | None,
                 judging: Judging | None = None, out: str | Path | None = None, batch_size: int = 64,
                 on_variant: Callable[[int, int, dict[str, Any]], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, bank: SampleBank | None = None,
                 held_out: Sequence[int] = (), held_out_variants: Sequence[Recipe] = (),
                 extra: dict[str, Any] | None = None, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run every variant on the same units (raw variants on ``raw_units``) and seeds, then ``held_out_variants`` on
    the ``held_out`` SAE features; with ``out``, write ``ablation.json`` (every row, plus ``extra``),
    ``ablation.md`` (the table) and a contact sheet per variant. ``bank`` serves the bank-prior recipes."""
    from ..analysis.metrics import display_images
    from ..runs.plots import WORDS, ratio_or_activation
    from ..runs.report import contact_sheet, save_json, save_png

    out = Path(out) if out is not None else None
    if out is not None:
        ensure_folder(out / "sheets")
    results = []
    plan = [(v, "", raw_units if v.raw else units) for v in variants]
    plan += [(v, "held-out", held_out) for v in held_out_variants if held_out and not v.raw]
    for i, (variant, unit_set, chosen) in enumerate(plan):
        raw = variant.raw
        row, vis, images = run_variant(backend, variant, chosen, sae=sae,
                                       analysis=raw_analysis if raw else analysis, seeds=seeds,
                                       steer_prior=steer_prior, judging=judging, batch_size=batch_size,
                                       should_stop=should_stop, bank=bank, progress=progress)
        row.unit_set = unit_set
        summary = row.summary()
        results.append({"recipe": variant.describe(), "summary": summary, "rows": row.per_row})
        if out is not None:
            labels = [f"t {m['timestep']}, seed {m['seed']}: {ratio_or_activation(m)}" for m in row.per_row]
            legend = [WORDS["activation"], WORDS["ratio"]]
            if judging is not None:
                labels = [f"{label}; judge: {m['judged']} ({m['concept'].split('=')[1]}?)"
                          for label, m in zip(labels, row.per_row)]
                legend.append("judge: what a classifier trained on the toy world reads on the unit's concept axis "
                              "('none': no concept); in brackets the unit's own concept")
            kind = "channel" if raw else "feature"
            save_png(contact_sheet(list(display_images(images).numpy()), [r.unit for r in vis.rows], labels,
                                   kind=kind, title=f"Ablation, variant {summary['variant']}: {kind}s of the toy world",
                                   subtitle=f"{unit_set or 'chosen'} units; one line per {kind}, one image per "
                                            f"timestep t and seed", legend=legend),
                     out / "sheets" / f"{i:02d}_{slug(summary['variant'])}.png")
        if on_variant is not None:
            on_variant(i, len(plan), summary)
        if row.interrupted:
            break
    report = {"units": list(units), "raw_units": list(raw_units), "held_out": list(held_out),
              "seeds": list(seeds), "columns": COLUMNS,
              "table": [r["summary"] for r in results], **(extra or {}), "variants": results}
    if out is not None:
        save_json(report, out / "ablation.json")
        legend = "\n".join(f"- `{k}`: {v}" for k, v in COLUMNS.items())
        write_text(out / "ablation.md", markdown_table(report["table"]) + "\n\n" + legend + "\n")
    return report


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
