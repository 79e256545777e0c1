"""The README's first command: the whole LVO pipeline on the trained toy world that ships with the pack, on any CPU
in about a minute — and, because the world's concepts are known, numbers that say whether the pictures are right.

For a handful of concept-pure SAE features (and two raw channels): their activity over the timesteps (the shipped
analysis), their top-activating held-out dataset images, LVO with the ``paper`` recipe and with the ``best``
recipe, and per image the activation reached ÷ dataset max and what the judge (a classifier that can say "no
concept") reads in it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .ablate import run_variant
from .plots import activity_chart, image_grid
from .recipes import recipe
from .report import save_json, save_png
from .toy.concepts import HOOKPOINT, describe, prepare_study

EXAMPLES = 3  # dataset examples per unit on the sheet


def to_display(images: torch.Tensor) -> np.ndarray:
    """Codec images ``[B, 3, H, W]`` in [-1, 1] → ``[B, H, W, 3]`` in [0, 1] (fixed scaling: colours stay true)."""
    return ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


def run_demo(out: str | Path = "lvo_runs/demo", num_units: int = 6, raw_units: int = 2,
             seeds: tuple[int, ...] = (1, 2), lvo_steps: int = 100, prior_steps: int = 50,
             images: int = 1000) -> dict[str, Any]:
    """Write ``concepts.png`` (per unit: dataset examples | paper | best), ``activity.png``, and ``summary.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    start = time.perf_counter()
    study = prepare_study(num_units, raw_units, images, prior_steps)
    units, channels, purity, raw_purity = study.units, study.raw_units, study.purity, study.raw_purity
    activity_chart(study.analysis, units).save(out / "activity.png")
    runs: dict[str, Any] = {}
    for name in ("paper", "best"):
        for raw, chosen in ((False, units), (True, channels)):
            chosen_recipe = recipe(name, raw=raw)
            chosen_recipe = replace(chosen_recipe, config=replace(chosen_recipe.config, steps=lvo_steps))
            row, _, decoded = run_variant(study.world.backend, chosen_recipe, chosen, sae=study.world.sae,
                                          analysis=study.raw_analysis if raw else study.analysis, seeds=seeds,
                                          steer_prior=study.steer_prior, judging=study.judging)
            runs[f"{name}/{'raw' if raw else 'sae'}"] = (row, decoded)
    tiles, labels = [], []
    sheet_rows = [(u, False) for u in units] + [(c, True) for c in channels]
    for unit, raw in sheet_rows:
        top = np.argsort(-(raw_purity if raw else purity).acts[:, unit], kind="stable")[:EXAMPLES]
        concept = describe(raw_purity if raw else purity, [unit])[0]
        for j, i in enumerate(top.tolist()):
            tiles.append(to_display(study.data.images[i:i + 1])[0])
            labels.append(f"{'ch' if raw else 'f'}{unit} {concept}" if j == 0 else "dataset example")
        for name in ("paper", "best"):
            row, decoded = runs[f"{name}/{'raw' if raw else 'sae'}"]
            picks = [k for k, m in enumerate(row.per_row) if m["unit"] == unit and m["timestep"] == 0]
            for k in picks:
                m = row.per_row[k]
                tiles.append(to_display(decoded[k:k + 1])[0])
                labels.append(f"{name} x{m['ratio']:.2f} {m['judged']}")
    save_png(image_grid(tiles, labels, columns=EXAMPLES + 2 * len(seeds), cell=128), out / "concepts.png")
    concepts = study.concepts()
    summary = {"hookpoint": HOOKPOINT, "units": units, "channels": channels, "seeds": list(seeds),
               "lvo_steps": lvo_steps, "concepts": concepts["sae"], "channel_concepts": concepts["raw"],
               "recipes": {name: recipe(name).describe() for name in ("paper", "best")},
               "table": [row.summary() for row, _ in runs.values()],
               "rows": {key: row.per_row for key, (row, _) in runs.items()},
               "purity": {"sae": purity.summary(), "raw": raw_purity.summary()}}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    save_json(summary, out / "summary.json")
    return summary
