"""Every picture the commands and nodes write explains itself: a title bar that is not blank, headers, a legend that
names each number in words — and every call that draws a grid for a user passes a title (checked in the source, so
a new picture without one fails here)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lvo_core.analysis.activity import analyze_captured
from lvo_core.analysis.examples import overlay
from lvo_core.commands.setup import load_analysis
from lvo_core.errors import LVOError
from lvo_core.model.tiny import random_sae
from lvo_core.runs.feature_page import feature_card, feature_sheet
from lvo_core.runs.plots import (
    WORDS,
    activity_chart,
    framed,
    heat_tile,
    image_grid,
    ratio_or_activation,
    search_sheet,
    table_sheet,
)
from lvo_core.runs.record import sheet_frame
from lvo_core.runs.report import contact_sheet

ROOT = Path(__file__).resolve().parents[1]
HP = "up_blocks.1.attentions.1"
SAE = random_sae(d_in=32, d_sae=6)
TILES = [np.full((16, 16, 3), v, np.float32) for v in (0.2, 0.5, 0.8, 0.4)]


def analysis():
    acts = np.full((4, 3, 6), 0.1, np.float32)
    acts[1, 1, 2] = 3.0
    return analyze_captured(acts, [900, 500, 100], hookpoint=HP, sae=SAE, top_n=1, keep_examples=4,
                            prompts=["a", "b", "c", "d"], seeds=[0, 1, 2, 3])


def hit(unit, lift=None, ratio=None):
    return SimpleNamespace(unit=unit, activation=0.5, lift=lift, ratio=ratio, heatmap=np.eye(4, dtype=np.float32))


PICTURES = {
    "grid": lambda: image_grid(TILES, ["a", "b", "c", "d"], columns=2, title="a grid", legend=["what a is"],
                               column_titles=["one", "two"], row_titles=["first", "second"]),
    "contact sheet (lines)": lambda: contact_sheet(TILES, [3, 3, 7, 7], ["a", "b", "c", "d"], cell=32,
                                                   **sheet_frame({"recipe": {"name": "faithful"}, "hookpoint": HP},
                                                                 "feature", [{"ratio": 1.0}])),
    "contact sheet (atlas)": lambda: contact_sheet(TILES, [1, 2, 3, 4], ["a", "b", "c", "d"], cell=32,
                                                   title="atlas", legend=[WORDS["ratio"]]),
    "activity chart": lambda: activity_chart(analysis(), [2, 3]),
    "feature page": lambda: feature_sheet(feature_card(2, hookpoint=HP, sae=SAE, analysis=analysis()), analysis()),
    "concept table": lambda: table_sheet([[(TILES[0], "x")]], ["feature 1"], [("examples", 1)], cell=32,
                                         title="concepts", footer="what x is"),
    "search sheet": lambda: search_sheet(TILES[:2], ["red", "blue"], [[hit(1, lift=2.0)], [hit(4, lift=1.5)]],
                                         hookpoint=HP, timestep=200, by="lift", top=1, cell=32),
}


@pytest.mark.parametrize("name", PICTURES)
def test_every_picture_has_a_title_band_and_a_legend(name):
    picture = PICTURES[name]()
    assert picture.info.get("title") and picture.info.get("legend"), name
    band = np.asarray(picture.convert("L"))[2:22]
    assert (band < 100).sum() > 40, f"{name}: the title band is blank"  # dark text pixels, not an empty strip


def test_a_picture_without_a_title_is_refused():
    with pytest.raises(LVOError, match="title"):
        framed(image_grid(TILES), " ")


def test_search_legend_names_only_the_numbers_it_shows():
    legend = search_sheet(TILES[:1], ["red"], [[hit(1, lift=2.0)]], hookpoint=HP, timestep=200, by="lift",
                          top=1).info["legend"]
    assert WORDS["lift"] in legend and WORDS["ratio"] not in legend and "ranked by x bank mean" in legend


def test_one_number_one_name():
    assert ratio_or_activation({"ratio": 0.842, "activation": 3.1}) == "0.84x dataset max"
    assert ratio_or_activation({"ratio": None, "activation": 3.1}) == "activation 3.1"
    frame = sheet_frame({"recipe": "paper", "hookpoint": HP, "model": "toy"}, "channel", [{"ratio": None}])
    assert frame["title"] == f"LVO visualizations (recipe: paper): channels at {HP}"
    assert WORDS["ratio"] not in frame["legend"] and "give --analysis" in frame["legend"][-1]


def test_heat_tile_shows_on_a_flat_bright_image():
    """On a toy-like flat yellow image the plain overlay barely separates hot from cold; the heat tile does, and
    draws a contour."""
    image = np.zeros((16, 16, 3), np.float32) + [1.0, 0.9, 0.2]
    heat = np.zeros((4, 4), np.float32)
    heat[1:3, 1:3] = 1.0
    tile = heat_tile(image, heat, size=64)
    plain = overlay(image, heat)
    assert tile.shape == (64, 64, 3)
    contrast = lambda t: float(np.abs(t[len(t) // 2, len(t) // 2] - t[2, 2]).sum())  # noqa: E731
    assert contrast(tile) > 1.2 and contrast(tile) > 2 * contrast(plain)
    assert (tile == 1.0).all(axis=2).sum() > 40  # the white contour at half the maximum


def _calls_without_title(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "image_grid", "contact_sheet"):
            if not any(k.arg in ("title", None) for k in node.keywords):  # None: a **frame that carries it
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_grid_a_user_sees_passes_a_title():
    panels = {"lvo_core/runs/feature_page.py"}  # rows of the feature page, framed as a whole
    files = [p for p in [*(ROOT / "lvo_core").rglob("*.py"), *(ROOT / "nodes").glob("*.py")]
             if str(p.relative_to(ROOT)) not in panels]
    assert [c for p in files for c in _calls_without_title(p)] == []


def test_toy_model_uses_its_shipped_analysis():
    from lvo_core.sae import load_sae
    from lvo_core.toy import ANALYSIS, SAE_PATH

    if not ANALYSIS.is_file():
        pytest.skip("toy weights not trained")
    toy = SimpleNamespace(source="toy")
    sae = load_sae(str(SAE_PATH)).to(dtype=torch.float32)
    assert load_analysis(None, toy, sae, HP).num_generations > 0
    assert load_analysis(None, toy, None, HP).unit_kind == "raw"
    assert load_analysis(None, SimpleNamespace(source="tiny"), sae, HP) is None
    assert load_analysis(None, toy, sae, "down_blocks.1.attentions.0") is None  # made for another block
