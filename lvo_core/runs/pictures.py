"""The sheets the commands and nodes draw from what the core computed: steered priors, dataset examples with their
heatmaps, a bank's top images, a feature page's pictures. Each takes decoded images (``[H, W, 3]`` floats in 0…1)
and the numbers to caption them with; nothing here runs a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from .plots import WORDS, colour_bar, heat_tile, image_grid


def steer_sheet(images: Sequence[np.ndarray], units: Sequence[int], seeds: Sequence[int], *, kind: str, hookpoint: str,
                subtitle: str) -> np.ndarray:
    """``steer``'s ``priors.png``: one line per unit, one column per seed."""
    return image_grid(list(images), columns=len(seeds), cell=128, column_titles=[f"seed {seed}" for seed in seeds],
                      row_titles=list(dict.fromkeys(f"{kind} {u}" for u in units)),
                      title=f"Steered generations (LVO's steer prior): {kind}s at {hookpoint}", subtitle=subtitle,
                      legend=["Each image: the model's own generation from the empty prompt with the unit pushed up "
                              "while sampling, the start LVO polishes. Nothing is measured here; visualize reports "
                              "each image's activation."])


def heatmap_grid(images: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], labels: Sequence[str], *, cell: int,
                 title: str, subtitle: str, legend: Sequence[str]) -> np.ndarray:
    """Ranked examples with their heatmaps laid over them, four to a line, on one colour scale (the first, highest
    heatmap's maximum): the CLI's ``examples`` and the Dataset Examples node."""
    vmax = max(float(heatmaps[0].max()), 1e-8)
    tiles = [heat_tile(image, heatmap, vmax=vmax, size=cell) for image, heatmap in zip(images, heatmaps)]
    columns = min(4, len(tiles))
    return image_grid(tiles, list(labels), columns=columns, cell=cell, title=title, subtitle=subtitle,
                      legend=[*legend, WORDS["heatmap"]],
                      colour=colour_bar(columns * (cell + 4), vmax, "heatmap: the unit's activation at each position "
                                        "(one scale for every tile)"))


def bank_sheet(tiles: Sequence[np.ndarray], labels: Sequence[str], units: Sequence[int], timesteps: Sequence[int], *,
               k: int, kind: str, hookpoint: str, source: str, size: int) -> np.ndarray:
    """``bank --units``' ``examples.png``: each unit's top ``k`` pool images per scoring timestep, best first."""
    return image_grid(list(tiles), list(labels), columns=k, cell=128, column_titles=[f"#{j + 1}" for j in range(k)],
                      row_titles=[f"{kind} {unit}, t {t}" for unit in units for t in timesteps],
                      title=f"Sample bank's top images per {kind} at {hookpoint}",
                      subtitle=f"model {source}; {size} unconditional samples, best first",
                      legend=[WORDS["bank"], "pool N: the image's index in the bank (its seed is the bank's seed + N)."])


def run_pictures(card: Mapping[str, Any], results: Sequence[Mapping[str, Any]],
                 folders: Sequence[str | Path]) -> dict[str, list[np.ndarray]]:
    """A feature page's pictures of each given run (``card["visualizations"]``), read from the run folders."""
    pictures: dict[str, list[np.ndarray]] = {}
    for run, result, folder in zip(card["visualizations"], results, folders):
        files = result.get("images") or []
        pictures[run["name"]] = [np.asarray(Image.open(Path(folder) / files[r["row"]]).convert("RGB"), np.float32)
                                 / 255 for r in run["rows"] if r["row"] < len(files)]
    return pictures
