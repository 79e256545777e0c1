"""The README's first command: the whole LVO pipeline on the trained toy world that ships with the pack, on any CPU
in well under a minute — and, because the world's concepts are known, numbers that say whether the pictures are
right.

For a handful of concept-pure SAE features (and two raw channels): their activity over the timesteps (the shipped
analysis), their top-activating held-out dataset images, LVO with the ``paper`` recipe (the reference) and with
the ``faithful`` recipe (the default: the model's own best-scoring sample from a sample bank, briefly polished),
and per image the activation reached ÷ dataset max and what the judge (a classifier that can say "no concept")
reads in it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..fileio import ensure_folder
from ..lvo.recipes import DEFAULT_RECIPE, recipe
from ..progress import ProgressFn, stage
from ..runs.plots import activity_chart, table_sheet
from ..runs.report import save_json, save_png
from .ablate import run_variant
from .concepts import HOOKPOINT, describe, prepare_study

EXAMPLES = 3  # dataset examples per unit on the sheet
RECIPES = ("paper", DEFAULT_RECIPE)


def to_display(images: torch.Tensor) -> np.ndarray:
    """Codec images ``[B, 3, H, W]`` in [-1, 1] → ``[B, H, W, 3]`` in [0, 1] (fixed scaling: colours stay true)."""
    return ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


def stderr_phase(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def run_demo(out: str | Path = "lvo_runs/demo", num_units: int = 6, raw_units: int = 2,
             seeds: tuple[int, ...] = (1, 2), lvo_steps: int | None = None, prior_steps: int = 50,
             images: int = 1000, say: Callable[[str], None] = stderr_phase,
             progress: ProgressFn | None = None) -> dict[str, Any]:
    """Write ``concepts.png`` (per unit: dataset examples | paper | faithful), ``activity.png``, ``summary.json``.
    ``lvo_steps`` overrides every recipe's optimization steps (None: each recipe's own, 100 and 30); ``say``
    announces each phase, ``progress(label, done, total)`` sees every loop inside them (quiet when None)."""
    out = ensure_folder(out)
    torch.manual_seed(0)
    start = time.perf_counter()
    say("concept purity of every SAE feature and raw channel on 1000 held-out labelled images …")
    study = prepare_study(num_units, raw_units, images, prior_steps, progress=progress)
    units, channels, purity, raw_purity = study.units, study.raw_units, study.purity, study.raw_purity
    labels = dict(zip(units, describe(purity, units)))
    save_png(activity_chart(study.analysis, units, labels=labels), out / "activity.png")
    say(f"sample bank: 160 unconditional samples of the model ({time.perf_counter() - start:.0f} s so far) …")
    bank = study.ensure_bank(on_progress=stage(progress, "sample bank (images × steps)"))
    runs: dict[str, Any] = {}
    for name in RECIPES:
        for raw, chosen in ((False, units), (True, channels)):
            chosen_recipe = recipe(name, raw=raw)
            if lvo_steps is not None:
                chosen_recipe = replace(chosen_recipe, config=replace(chosen_recipe.config, steps=lvo_steps))
            say(f"{name} recipe on {len(chosen)} {'raw channels' if raw else 'SAE features'} × {len(seeds)} seeds, "
                f"{chosen_recipe.config.steps} steps ({time.perf_counter() - start:.0f} s so far) …")
            row, _, decoded = run_variant(study.world.backend, chosen_recipe, chosen, sae=study.world.sae,
                                          analysis=study.raw_analysis if raw else study.analysis, seeds=seeds,
                                          steer_prior=study.steer_prior, judging=study.judging, bank=bank,
                                          progress=progress)
            runs[f"{name}/{'raw' if raw else 'sae'}"] = (row, decoded)
    say("drawing concepts.png …")
    cells, titles = [], []
    for unit, raw in [(u, False) for u in units] + [(c, True) for c in channels]:
        unit_purity = raw_purity if raw else purity
        titles.append(f"{'channel' if raw else 'feature'} {unit}\n{describe(unit_purity, [unit])[0]} of its "
                      f"top-20 images")
        top = np.argsort(-unit_purity.acts[:, unit], kind="stable")[:EXAMPLES]
        line = [(to_display(study.data.images[i:i + 1])[0], f"#{j + 1}, activation "
                 f"{unit_purity.acts[i, unit]:.2f}") for j, i in enumerate(top.tolist())]
        for name in RECIPES:
            row, decoded = runs[f"{name}/{'raw' if raw else 'sae'}"]
            picks = [k for k, m in enumerate(row.per_row) if m["unit"] == unit]
            picks = [k for k in picks if row.per_row[k]["timestep"] == min(row.per_row[j]["timestep"] for j in picks)]
            for k in picks:
                m = row.per_row[k]
                line.append((to_display(decoded[k:k + 1])[0], f"seed {m['seed']}, t {m['timestep']}: "
                             f"{m['ratio']:.2f}x dataset max; judge: {m['judged']}"))
        cells.append(line)
    groups = [("dataset examples (held-out)", EXAMPLES)] + [(name, len(seeds)) for name in RECIPES]
    footer = ("x dataset max: the unit's activation on the image (noised to t, mean of 4 fixed draws) divided by its "
              "maximum over the activity analysis at t. judge: what a classifier trained on the world reads on the "
              "unit's concept axis ('none': no concept). Dataset examples: activation at t = 200.")
    save_png(table_sheet(cells, titles, groups, title=f"toy world, {HOOKPOINT}: what each unit shows",
                         footer=footer), out / "concepts.png")
    concepts = study.concepts()
    summary = {"hookpoint": HOOKPOINT, "units": units, "channels": channels, "seeds": list(seeds),
               "lvo_steps": {name: recipe(name).config.steps if lvo_steps is None else lvo_steps
                             for name in RECIPES},
               "concepts": concepts["sae"], "channel_concepts": concepts["raw"],
               "recipes": {name: recipe(name).describe() for name in RECIPES}, "bank": bank.describe(),
               "table": [row.summary() for row, _ in runs.values()],
               "rows": {key: row.per_row for key, (row, _) in runs.items()},
               "purity": {"sae": purity.summary(), "raw": raw_purity.summary()}}
    summary["seconds"] = round(time.perf_counter() - start, 1)
    save_json(summary, out / "summary.json")
    return summary
