"""The static atlas site: every link and image resolves, the search index holds the labels, and (where Chromium is
installed: /usr/bin/chromium; CI may not have it, then the test skips) the page's own search finds a unit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lvo_core.runs.site import write_site

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]


def build(tmp_path: Path) -> Path:
    from lvo_core.runs.site import save_images

    out = tmp_path / "site"
    entries = []
    for unit, phrase, score in ((7, "red", 0.97), (3, "ring", 0.81), (12, "blue square", 0.55)):
        rng = np.random.default_rng(unit)
        pics = save_images(out, f"{unit}-bank", [rng.uniform(size=(8, 8, 3)) for _ in range(2)], ["a", "b"])
        card = {"bank": {"size": 4, "timestep": 200, "density": 0.5,
                         "histogram": {"counts": [2, 1, 1], "edges": [0.0, 0.1, 0.2, 0.3]}},
                "activity": {"top_n": 20, "grid_step": 10, "profile": [0.0] * 50 + [1.0] * 51,
                             "examples": [{"rank": 1, "prompt": f"{phrase}", "seed": 4, "timestep": 200,
                                           "value": 0.5}]}}
        entries.append({"unit": unit, "score": score / 2, "images": {"bank": pics}, "card": card,
                        "labels": [{"phrase": phrase, "lift": 0.3, "normalised": 2.0, "score": score},
                                   {"phrase": "white", "lift": 0.1, "normalised": 0.4, "score": 0.5}],
                        "metrics": [{"timestep": 200, "seed": 1, "activation": 0.4, "ratio": 1.1}]})
    write_site(out, entries, hookpoint="up_blocks.1.attentions.1")
    return out


def test_every_link_resolves_and_the_index_holds_the_labels(tmp_path):
    out = build(tmp_path)
    pages = sorted(out.rglob("*.html"))
    assert {p.relative_to(out).as_posix() for p in pages} == {"index.html", "f/3.html", "f/7.html", "f/12.html"}
    for page in pages:
        text = re.sub(r"<script>.*?</script>", "", page.read_text(encoding="utf-8"), flags=re.S)
        for ref in re.findall(r'(?:href|src)="([^"#?]+)', text):
            assert (page.parent / ref).resolve().is_file(), f"{page.name} links to missing {ref}"
    index = json.loads((out / "search.js").read_text(encoding="utf-8").removeprefix("const LVO=").rstrip(";\n"))
    assert [u["unit"] for u in index["units"]] == [7, 3, 12]
    assert index["units"][2]["labels"][0] == {"phrase": "blue square", "score": 0.55}
    assert all((out / "f" / f"{u['unit']}.html").is_file() for u in index["units"])  # the rows the script draws
    assert "f/'+e.unit+'.html" in (out / "index.html").read_text(encoding="utf-8")  # the index's row links
    seven = (out / "f" / "7.html").read_text(encoding="utf-8")
    assert "red" in seven and "0.97" in seven and "density 50%" in seven and "<polyline" in seven
    twelve = (out / "f" / "12.html").read_text(encoding="utf-8")
    assert "No label predicts this feature" in twelve  # 0.55 < 0.75: said plainly


@pytest.mark.skipif(not CHROMIUM.is_file() or shutil.which("chromium") is None,
                    reason="headless Chromium not installed (apt-get install chromium); CI may not have it")
def test_the_site_opens_in_chromium_and_its_search_finds_a_unit(tmp_path):
    out = build(tmp_path)
    # the search box reads ?q= on load, so the DOM after scripts ran shows what a typed search shows
    dom = subprocess.run([str(CHROMIUM), *FLAGS, "--dump-dom", f"file://{out}/index.html?q=ring"],
                         capture_output=True, text=True, timeout=120).stdout
    rows = re.findall(r'<a href="f/(\d+)\.html">', dom)
    assert rows == ["3"], dom[-2000:]
    dom = subprocess.run([str(CHROMIUM), *FLAGS, "--dump-dom", f"file://{out}/index.html"],
                         capture_output=True, text=True, timeout=120).stdout
    assert sorted(re.findall(r'<a href="f/(\d+)\.html">', dom)) == ["12", "3", "7"]
