"""The feature page: everything the pack knows about one unit, as one JSON-able card — what Neuronpedia shows for a
language-model feature, for a diffusion feature.

A card gathers, for one SAE feature or raw channel of one block, whichever of these the caller has:

- ``activity`` (from an :class:`~lvo_core.analysis.activity.ActivityAnalysis`): the activity profile and the
  dataset maximum over the timesteps on a 0…1000 grid (step 10), the peaks, the active range, and the top
  dataset examples (generation, prompt, seed, the timestep it fired hardest at, the value), best first;
- ``bank`` (from a :class:`~lvo_core.analysis.bank.SampleBank` scored at ``bank_t``): the activation histogram
  over the model's own samples (counts sum to the bank's size), its density (share of samples the unit is active
  on, score > 0), mean, median and maximum, and the top pool images with their scores and lift over the mean;
- ``visualizations`` (from run results: a ``result.json`` of a run, or the metrics JSON of LVO Optimize / LVO
  Faithful): per run its name (recipe or prior) and the unit's rows — timestep, seed, activation, ratio to the
  dataset max, selectivity, rank — each with its row index in that run, so a caller can attach the image.

Images are not in the card: each example names what picks its image (a generation, a pool index, a run row), and
the caller (the node, the CLI) attaches references or draws :func:`feature_sheet`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..analysis.activity import ActivityAnalysis
from ..analysis.bank import BankError, SampleBank, unit_kind
from ..errors import LVOError, UnitError
from ..hookpoints import equivalent_names
from ..sae.model import SparseAutoencoder
from .plots import PALETTE, WORDS, _font, activity_chart, framed, image_grid, ratio_or_activation

CARD_VERSION = 1
GRID_STEP = 10
METRIC_KEYS = ("timestep", "seed", "activation", "prior_activation", "dataset_max", "ratio", "selectivity", "rank",
               "num_units", "pool_index", "note")


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def activity_section(analysis: ActivityAnalysis, unit: int, top: int = 8) -> dict[str, Any]:
    """Profile and dataset max of ``unit`` over timesteps, its peaks and active range, its top dataset examples."""
    profile = analysis.profile(unit)
    col = analysis.column(unit)
    grid = list(range(0, 1001, GRID_STEP))
    maxima = analysis._interp(analysis.max[:, col])
    active = np.flatnonzero(profile > 0)
    best_row = int(np.argmax(analysis.max[:, col]))
    examples = []
    for rank, (gen, t, value) in enumerate(analysis.examples(unit, k=top), start=1):
        examples.append({"rank": rank, "generation": gen, "timestep": t, "value": _r(value, 6),
                         "prompt": analysis.prompts[gen] if gen < len(analysis.prompts) else None,
                         "seed": analysis.seeds[gen] if gen < len(analysis.seeds) else None})
    return {"top_n": analysis.top_n, "generations": analysis.num_generations, "grid_step": GRID_STEP,
            "profile": [_r(profile[t]) for t in grid], "max": [_r(maxima[t]) for t in grid],
            "peaks": analysis.peaks(unit),
            "active_range": [int(active.min()), int(active.max())] if len(active) else None,
            "active_share": _r(len(active) / len(profile)),
            "dataset_max": _r(analysis.max[best_row, col], 6), "dataset_max_t": int(analysis.timesteps[best_row]),
            "examples": examples}


def bank_section(bank: SampleBank, unit: int, t: int, sae: SparseAutoencoder | None, top: int = 8,
                 bins: int = 20) -> dict[str, Any]:
    """The unit's scores over the bank's samples at ``t``: histogram, density, statistics, top pool images."""
    if bins <= 0:
        raise LVOError(f"the histogram needs at least one bin, got {bins}")
    scores = bank.score(unit, t, sae).double().numpy()
    lo, hi = min(0.0, float(scores.min())), float(scores.max())
    counts, edges = np.histogram(scores, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
    mean = float(scores.mean())
    order = bank.top(unit, t, min(top, bank.size), sae)
    return {"timestep": int(t), "size": bank.size, "density": _r((scores > 0).mean()),
            "mean": _r(mean, 6), "median": _r(np.median(scores), 6), "max": _r(hi, 6),
            "histogram": {"edges": [_r(e, 6) for e in edges], "counts": [int(c) for c in counts]},
            "top": [{"rank": r, "index": int(i), "seed": bank.settings.seed + int(i), "score": _r(scores[i], 6),
                     "lift": _r(scores[i] / mean) if mean > 0 else None} for r, i in enumerate(order, start=1)]}


def run_name(result: Mapping[str, Any], default: str) -> str:
    """What a run is called on the page: its recipe, else its prior, else ``default``."""
    recipe = result.get("recipe")
    if isinstance(recipe, Mapping) and recipe.get("name"):
        return str(recipe["name"])
    if isinstance(recipe, str) and recipe:
        return recipe
    return str(result.get("name") or result.get("prior") or default)


def visualization_section(results: Sequence[Mapping[str, Any]], unit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Per run: its name and the unit's metric rows (with their row index in the run); and notes for runs that
    have no row of the unit."""
    runs, notes = [], []
    for k, result in enumerate(results):
        metrics = result.get("metrics")
        if not isinstance(metrics, list):
            raise LVOError(f"run {k + 1} has no 'metrics' list: give a result.json or the metrics output of LVO "
                           f"Optimize / LVO Faithful")
        name = run_name(result, f"run {k + 1}")
        taken = {r["name"] for r in runs} | {n.split(" has no ")[0] for n in notes}
        name = next(f"{name} {j}" for j in range(2, len(results) + 2) if f"{name} {j}" not in taken) \
            if name in taken else name  # two faithful runs: "faithful", "faithful 2" (images are keyed by name)
        rows = [{"row": i, **{key: m.get(key) for key in METRIC_KEYS if key in m}}
                for i, m in enumerate(metrics) if int(m.get("unit", -1)) == int(unit)]
        if not rows:
            notes.append(f"{name} has no visualization of unit {unit} (it shows "
                         f"{sorted({int(m['unit']) for m in metrics if 'unit' in m})})")
            continue
        ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
        runs.append({"name": name, "rows": rows,
                     "median_activation": _r(np.median([r["activation"] for r in rows]), 6),
                     "median_ratio": _r(np.median(ratios)) if ratios else None})
    return runs, notes


def feature_card(unit: int, *, hookpoint: str, sae: SparseAutoencoder | None = None,
                 analysis: ActivityAnalysis | None = None, bank: SampleBank | None = None, bank_t: int = 200,
                 results: Sequence[Mapping[str, Any]] = (), top: int = 8, bins: int = 20,
                 labels: Any = None) -> dict[str, Any]:
    """The feature page of ``unit`` (a feature of ``sae``, or a raw channel with ``sae=None``) at ``hookpoint``.

    Every source is optional; one made for another block or SAE is refused. The bank must already be scored at
    ``bank_t`` (:meth:`~lvo_core.analysis.bank.SampleBank.ensure_scores`). ``labels`` (a
    :class:`~lvo_core.analysis.labels.LabelTable`) adds the unit's labels with lift and detection score.
    """
    unit = int(unit)
    if unit < 0:
        raise UnitError(f"unit must be a feature or channel index ≥ 0, got {unit}")
    if top <= 0:
        raise LVOError(f"top must be a positive number of examples, got {top}")
    kind = "feature" if sae is not None else "channel"
    if sae is not None and unit >= sae.d_sae:
        raise UnitError(f"feature {unit} is out of range: this SAE has {sae.d_sae} features (0..{sae.d_sae - 1})")
    card: dict[str, Any] = {"version": CARD_VERSION, "unit": unit, "kind": kind, "label": f"{kind} {unit}",
                            "hookpoint": hookpoint, "activity": None, "bank": None, "visualizations": [],
                            "labels": None, "notes": []}
    if analysis is not None:
        analysis.check_matches(hookpoint, sae)
        card["activity"] = activity_section(analysis, unit, top)
    if bank is not None:
        names = set(equivalent_names(hookpoint))
        block = next((h for h in [bank.hookpoint, *bank.hookpoints] if h and set(equivalent_names(h)) & names),
                     hookpoint)
        if bank.key(bank_t, sae, block) not in bank.scores:
            raise BankError(f"this bank has no {unit_kind(sae)} scores of {hookpoint} with this "
                            f"{'SAE' if sae is not None else 'block'} at t = {bank_t}; score it there first "
                            f"(ensure_scores)")
        bank.hookpoint = block
        card["bank"] = bank_section(bank, unit, bank_t, sae, top, bins)
    if labels is not None:
        labels.check_matches(sae)
        items = labels.labels.get(unit, [])
        card["labels"] = {"items": items, "trusted": labels.trusted(unit), "threshold": labels.settings.trusted}
        if items and labels.trusted(unit):
            card["label"] = f"{kind} {unit}: {items[0]['phrase']}"
    card["visualizations"], card["notes"] = visualization_section(results, unit)
    if card["activity"] is None and card["bank"] is None and not card["visualizations"]:
        card["notes"].append("nothing to show yet: connect an activity analysis, a sample bank or a run's metrics")
    return card


# ---------------------------------------------------------------------- a picture of the card (CLI, reports)
def histogram_chart(section: Mapping[str, Any], label: str, width: int = 360, height: int = 200,
                    color: tuple[int, int, int] = PALETTE[0]) -> Image.Image:
    """The bank section's histogram as bars, both axes labelled (activation on a bank image; how many images)."""
    font, small = _font(13), _font(11)
    counts, edges = section["histogram"]["counts"], section["histogram"]["edges"]
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 52, width - 10, 26, height - 34
    draw.text((left, 6), f"{label}: activation on {section['size']} bank images, t {section['timestep']}",
              fill=(0, 0, 0), font=font)
    axis = Image.new("RGB", (bottom - top, 14), "white")
    ImageDraw.Draw(axis).text((4, 1), "bank images", fill=(40, 40, 40), font=small)
    img.paste(axis.rotate(90, expand=True), (2, top))
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    peak = max(max(counts), 1)
    bar = (right - left) / len(counts)
    for i, c in enumerate(counts):
        y = bottom - c / peak * (bottom - top)
        draw.rectangle([left + i * bar + 1, y, left + (i + 1) * bar - 1, bottom], fill=color)
    draw.text((left - 6 - draw.textlength(str(peak), font=small), top - 2), str(peak), fill=(60, 60, 60), font=small)
    draw.text((left - 12, bottom - 10), "0", fill=(60, 60, 60), font=small)
    draw.text((left, bottom + 4), f"{edges[0]:.3g}", fill=(60, 60, 60), font=small)
    draw.text((right - 40, bottom + 4), f"{edges[-1]:.3g}", fill=(60, 60, 60), font=small)
    draw.text((left + 40, bottom + 18), f"activation (active on {section['density']:.0%}, mean {section['mean']:.3g})",
              fill=(40, 40, 40), font=small)
    return img


def feature_sheet(card: Mapping[str, Any], analysis: ActivityAnalysis | None = None,
                  images: Mapping[str, Sequence[np.ndarray]] | None = None, cell: int = 96) -> Image.Image:
    """One labelled picture of a card: the activity chart and the histogram on top, then a captioned image row per
    section whose images are given (``images["examples"]``, ``images["bank"]``, ``images[<run name>]``, each
    ``[H, W, 3]`` floats in [0, 1], in the card's order)."""
    images = images or {}
    panels = []
    if analysis is not None and card.get("activity") is not None:
        panels.append(activity_chart(analysis, [card["unit"]], width=480, height=200,
                                     title=f"{card['label']} at {card['hookpoint']}: activity over timesteps"))
    if card.get("bank") is not None:
        panels.append(histogram_chart(card["bank"], card["label"], height=panels[0].height if panels else 200))
    rows: list[tuple[str, Image.Image]] = []
    act, bank = card.get("activity"), card.get("bank")
    if act and images.get("examples"):
        labels = [f"#{e['rank']} {e['prompt'] or 'generation ' + str(e['generation'])}: activation {e['value']:.3g}"
                  f" at t {e['timestep']}" for e in act["examples"]]
        rows.append(("dataset examples", image_grid(list(images["examples"]), labels[:len(images["examples"])],
                                                    cell=cell)))
    if bank and images.get("bank"):
        labels = [f"#{e['rank']} pool {e['index']}: activation {e['score']:.3g}"
                  + (f", {e['lift']:.2f}x bank mean" if e["lift"] is not None else "") for e in bank["top"]]
        rows.append(("sample bank", image_grid(list(images["bank"]), labels[:len(images["bank"])], cell=cell)))
    for run in card.get("visualizations", []):
        if images.get(run["name"]):
            labels = [f"t {r['timestep']}, seed {r['seed']}: {ratio_or_activation(r)}" for r in run["rows"]]
            rows.append((run["name"], image_grid(list(images[run["name"]]), labels[:len(images[run["name"]])],
                                                 cell=cell)))
    font = _font(14)
    head = max((p.height for p in panels), default=0)
    width = max([sum(p.width for p in panels) + 8 * len(panels)] + [r.width + 8 for _, r in rows] + [320])
    height = 6 + head + sum(r.height + 22 for _, r in rows) + 8
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    x = 4
    for p in panels:
        sheet.paste(p, (x, 4))
        x += p.width + 8
    y = 6 + head
    for title, grid in rows:
        draw.text((6, y + 3), title, fill=(0, 0, 0), font=font)
        sheet.paste(grid, (0, y + 20))
        y += grid.height + 22
    legend = [WORDS["activation"]]
    if act:
        legend.append("dataset examples: the analysis's generations the unit fired on most (activation at the "
                      "timestep t where it peaked in that generation)")
    if bank:
        legend += [WORDS["bank"], WORDS["lift"]]
    if any(r.get("ratio") is not None for run in card.get("visualizations", []) for r in run["rows"]):
        legend.append(WORDS["ratio"])
    legend += list(card.get("notes", []))
    return framed(sheet, f"Feature page: {card['label']} at {card['hookpoint']}",
                  "what the pack knows about this unit: activity over timesteps, its histogram over the sample bank, "
                  "its top images and its visualizations", legend)
