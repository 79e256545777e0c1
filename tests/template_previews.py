"""What each template makes, shown on the toy world: ``python tests/template_previews.py`` runs the CLI on the shipped
toy world (a few minutes on 2 CPU cores) and writes ``docs/templates/<template>.png``, the result picture that
:func:`workflow_tools.thumbnail` puts under the template's title in Browse Templates. The SDXL and FLUX templates
make the same kind of picture as the SD1.5 faithful one, so they show it too, captioned as the toy world's."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREVIEWS = ROOT / "docs" / "templates"
TOY = ["--model", "toy"]

# template stem → (commands to run in a scratch folder, the picture they write there)
RUNS: dict[str, tuple[list[list[str]], str]] = {
    "lvo_faithful_feature": ([["visualize", *TOY, "--units", "319,14,10,33", "--seeds", "1,2", "--bank", "bank",
                               "--out", "faithful"]], "faithful/contact_sheet.png"),
    "lvo_feature_search": ([["search", *TOY, "--prompt", "green ring", "--top", "4", "--bank", "bank", "--out",
                             "search"]], "search/search.png"),
    "lvo_feature_page": ([["page", *TOY, "--unit", "319", "--bank", "bank", "--run", "faithful", "--out", "page"]],
                         "page/feature_319.png"),
    "lvo_activity_examples": ([["examples", *TOY, "--unit", "14", "--k", "4", "--steps", "20", "--out", "examples"]],
                              "examples/examples_14.png"),
    "lvo_sae_feature": ([["visualize", *TOY, "--recipe", "paper", "--units", "319", "--seeds", "1,2", "--analysis",
                          str(ROOT / "lvo_core/toy/weights/activity.safetensors"), "--out", "paper"]],
                        "paper/contact_sheet.png"),
    "lvo_raw_vs_sae": ([["visualize", *TOY, "--raw", "--recipe", "paper", "--units", "5", "--seeds", "1,2",
                         "--analysis", str(ROOT / "lvo_core/toy/weights/activity_raw.safetensors"), "--out", "raw"]],
                       "raw/contact_sheet.png"),
    "lvo_feature_atlas": ([["atlas", *TOY, "--units", "0-15", "--seeds", "1", "--bank", "bank", "--out", "atlas"]],
                          "atlas/atlas.png"),
}
# Templates whose result is the same kind of picture as another's: the word search ends in faithful pictures of
# the features it found, the app in the feature search's sheet.
SAME_AS = {"lvo_sdxl_turbo_faithful": "lvo_faithful_feature", "lvo_flux_faithful": "lvo_faithful_feature",
           "lvo_feature_for_a_word": "lvo_faithful_feature", "lvo_app_find_features": "lvo_feature_search"}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import os

    from lvo_core.cli import main as cli

    PREVIEWS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        assert cli(["bank", *TOY, "--out", "bank", "--size", "160"]) == 0
        for stem, (commands, picture) in RUNS.items():
            for argv in commands:
                if cli(argv) != 0:
                    raise SystemExit(f"{stem}: {' '.join(argv)} failed")
            shutil.copyfile(picture, PREVIEWS / f"{stem}.png")
            print("wrote", PREVIEWS / f"{stem}.png")
    for stem, source in SAME_AS.items():
        shutil.copyfile(PREVIEWS / f"{source}.png", PREVIEWS / f"{stem}.png")


if __name__ == "__main__":
    main()
