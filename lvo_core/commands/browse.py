"""Finding and reading features: ``search`` (which features an image, a prompt's generation or a word drives) and
``page`` (one feature's page: activity, sample bank, labels and the runs that pictured it)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis.bank import SampleBank
from ..analysis.metrics import display_images
from ..analysis.selection import scored_bank
from ..errors import LVOError
from ..fileio import ensure_folder
from .boundary import BANK_SCORING, Progress, recorded_args
from .setup import backend_for, check_units, load_analysis, setup


def cmd_search(s: Any) -> int:
    """Which SAE features an image (or a prompt's generation) drives, and where."""
    from PIL import Image  # PIL and the rendering stay out of --help and the early checks

    from ..analysis.feature_search import ranking_for, search_features, unit_list
    from ..runs.plots import search_sheet
    from ..runs.report import save_json, save_png, versions

    if s.text:
        return search_text(s)
    if not s.image and not s.prompt:
        raise LVOError("give --image FILE, --prompt TEXT (either may be repeated) or --text WORD with --labels")
    model, sae, hookpoint = setup(s)
    if sae is None:
        raise LVOError("feature search ranks SAE features: give --sae (raw channels have no dictionary to search)")
    backend = backend_for(model, hookpoint, sae)
    latents, names = [], []
    encoded = Progress("search: encoding images")
    for path in s.image or []:
        if not Path(path).is_file():
            raise LVOError(f"image {path} does not exist")
        encoder = model.encoder
        if encoder is None:
            raise LVOError(f"model '{model.source}' has no image encoder (VAE); search a --prompt instead")
        c, h, w = backend.latent_shape
        with torch.no_grad():  # the decoder's output size says how many pixels a latent cell covers
            size = model.decoder(torch.zeros(1, c, h, w, device=backend.device)).shape[-2:]
        picture = read_image(path).resize((int(size[1]), int(size[0])), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(picture, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            latents.append(encoder(pixels.to(backend.device)).float().cpu())
        names.append(Path(path).name)
        encoded(len(names), len(s.image))
    if s.prompt:
        encode = model.require_prompts()
        generated = Progress("search: generating the prompts (steps)")
        with torch.no_grad():
            latents.append(backend.sample(encode(list(s.prompt)), uncond=encode([""]), guidance=s.guidance,
                                          steps=s.steps, seeds=range(s.seed, s.seed + len(s.prompt)),
                                          on_step=lambda i, _t, _x: generated(i + 1, s.steps)).float().cpu())
        names += list(s.prompt)
    z = torch.cat(latents)
    bank = SampleBank.load(s.bank) if s.bank else None
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    found = search_features(backend, sae, z, timestep=s.timestep, top=s.top, by=s.by, analysis=analysis, bank=bank,
                            on_progress=Progress("search: scoring (images × noise draws)"))
    with torch.no_grad():
        images = display_images(model.decoder(z.to(backend.device)).float().cpu()).numpy() if model.decoder else None
    for name, hits in zip(names, found):
        print(f"{name}: " + ", ".join(f"{h.unit} ({h.score:.2f})" for h in hits))
    out = ensure_folder(s.out)
    if images is not None:
        by = ranking_for(s.by, analysis, bank)
        save_png(search_sheet(list(images), names, found, hookpoint=hookpoint, timestep=s.timestep, by=by, top=s.top,
                              source=f"model {model.source}"), out / "search.png")
    save_json({"command": "search", "args": recorded_args(s), "timestep": s.timestep, "versions": versions(),
               "images": [{"name": n, "units": unit_list(h), "hits": [x.to_dict() for x in h]}
                          for n, h in zip(names, found)]}, out / "search.json")
    print(f"wrote {out}/search.json" + (", search.png (each hit's heatmap over the image)" if images is not None
                                        else "")
          + f"; feed the units to LVO: --units {unit_list(found[0]).replace(' ', '')}")
    return 0


def search_text(s: Any) -> int:
    """``search --text``: the features whose labels (or lift) match a word, with their detection scores."""
    from ..analysis.labels import LabelTable
    from ..runs.report import save_json, versions

    if not s.labels:
        raise LVOError("search by text reads a label table: give --labels FOLDER (made by `python -m lvo_core label`)")
    table = LabelTable.load(s.labels)
    hits = table.search(s.text, top=s.top)
    print(f"{'unit':>6}  {'score':>6}  {'norm.lift':>9}  label")
    for h in hits:
        score = "-" if h["score"] is None else f"{h['score']:.2f}"
        print(f"{h['unit']:>6}  {score:>6}  {h['normalised']:>9.2f}  {h['phrase']}"
              + ("" if h["label_rank"] else "  (by lift; not among its labels)"))
    out = ensure_folder(s.out)
    units = ",".join(str(h["unit"]) for h in hits)
    save_json({"command": "search", "args": recorded_args(s), "text": s.text, "hits": hits, "versions": versions()},
              out / "search.json")
    print(f"wrote {out}/search.json; feed the units to LVO: --units {units}")
    return 0


def cmd_page(s: Any) -> int:
    """One feature's page: activity, sample-bank histogram and top images, and each given run's pictures with
    their metrics."""
    from ..runs.feature_page import feature_card, feature_sheet
    from ..runs.pictures import run_pictures
    from ..runs.record import load_result
    from ..runs.report import save_json, save_png

    results = [load_result(Path(folder) / "result.json") for folder in s.run or []]  # cheap checks first
    model, sae, hookpoint = setup(s)
    check_units(model, hookpoint, [s.unit], sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    backend = backend_for(model, hookpoint, sae)
    bank = None
    if s.bank:
        bank = scored_bank(SampleBank.load(s.bank), backend, sae, [s.bank_t], Progress(BANK_SCORING))
    labels = None
    if s.labels:
        from ..analysis.labels import LabelTable

        labels = LabelTable.load(s.labels)
    card = feature_card(s.unit, hookpoint=hookpoint, sae=sae, analysis=analysis, bank=bank, bank_t=s.bank_t,
                        results=results, top=s.top, bins=s.bins, labels=labels)
    pictures: dict[str, list] = {}
    if card["bank"] is not None and model.decoder is not None:
        order = [e["index"] for e in card["bank"]["top"]]
        with torch.no_grad():
            pictures["bank"] = list(display_images(model.decoder(bank.latents[order].to(backend.device)))
                                    .float().cpu().numpy())
    pictures.update(run_pictures(card, results, s.run or []))
    out = ensure_folder(s.out)
    save_json(card, out / f"feature_{s.unit}.json")
    save_png(feature_sheet(card, analysis, pictures), out / f"feature_{s.unit}.png")
    for note in card["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({k: card[k] for k in ("unit", "kind", "hookpoint")}) +
          f"; wrote {out}/feature_{s.unit}.png and feature_{s.unit}.json")
    return 0


def read_image(path: str):
    """An RGB picture from ``path``; a file that is no image, or one so large that decoding it would exhaust memory
    (PIL's decompression-bomb guard), is one clear error."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                return picture.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LVOError(f"image {path} is too large to decode safely (over {Image.MAX_IMAGE_PIXELS} pixels); give a "
                       f"smaller image") from None
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise LVOError(f"{path} is not an image PIL can read ({exc}); give a PNG or JPEG") from None
