"""Reading the model on data: ``analyze`` (activity over timesteps), ``bank`` (the model's own samples, scored),
``examples`` (top generations of a unit, with heatmaps) and ``label`` (phrases that raise each unit)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..analysis.activity import analyze_activity
from ..analysis.bank import BankSettings, build_bank
from ..analysis.metrics import display_images
from ..analysis.selection import first_peak
from ..errors import LVOError
from ..fileio import ensure_folder
from .boundary import BANK_SAMPLING, BANK_SCORING, Progress, recorded_args
from .setup import backend_for, check_units, load_analysis, read_prompts, setup


def cmd_analyze(s: Any) -> int:
    """Time-step activity analysis over a prompt set."""
    model, sae, hookpoint = setup(s)
    prompts = read_prompts(s.prompts, model.source)
    analysis = analyze_activity(backend_for(model, hookpoint, sae), prompts, sae=sae,
                                seeds=list(range(s.seed, s.seed + len(prompts))), steps=s.steps,
                                guidance=s.guidance, top_n=s.top_n, batch_size=s.batch_size,
                                on_progress=Progress("analyze (images × steps)"))
    analysis.meta.update({"model": model.source, "sae": s.sae})
    analysis.save(s.out)
    active = analysis.frequency.max(0) > 0
    print(f"{int(active.sum())} of {len(analysis.units)} units were among the top-{analysis.top_n} at some timestep; "
          f"wrote {s.out}")
    return 0


def cmd_bank(s: Any) -> int:
    """The sample bank: the model's own samples, scored for every unit (faithful's starts)."""
    from ..runs.pictures import bank_sheet  # rendering (PIL, fonts) stays out of --help and the early checks
    from ..runs.report import save_png

    model, sae, hookpoint = setup(s)
    backend = backend_for(model, hookpoint, sae)
    if s.units:
        check_units(model, hookpoint, s.units, sae)
        if model.decoder is None:
            raise LVOError("drawing examples (--units) needs a decoder (VAE); this model has none")
    start = time.perf_counter()
    bank = build_bank(backend, BankSettings(size=s.size, steps=s.steps), sae=sae, out=s.out,
                      on_progress=Progress(BANK_SAMPLING))
    bank.ensure_scores(backend, sae, s.timesteps, on_progress=Progress(BANK_SCORING))
    kind = "feature" if sae is not None else "channel"
    print(f"sample bank of {bank.size} samples at {hookpoint}, scored at t = {', '.join(map(str, s.timesteps))} "
          f"({time.perf_counter() - start:.1f}s); wrote {s.out}/bank.json")
    if s.units:
        tiles, labels = [], []
        for unit in s.units:
            for t in s.timesteps:
                order = bank.top(unit, t, s.k, sae)
                scores = bank.score(unit, t, sae)
                with torch.no_grad():
                    images = display_images(model.decoder(bank.latents[order].to(backend.device)).float().cpu())
                tiles += list(images.numpy())
                labels += [f"pool {i}: activation {float(scores[i]):.3g}" for i in order]
        save_png(bank_sheet(tiles, labels, s.units, s.timesteps, k=s.k, kind=kind, hookpoint=hookpoint,
                            source=model.source, size=bank.size), Path(s.out) / "examples.png")
        print(f"wrote {s.out}/examples.png: each unit's top {s.k} pool images (model-generated dataset examples)")
    return 0


def cmd_examples(s: Any) -> int:
    """Top-activating generations of a unit, ranked, with heatmaps."""
    from ..analysis.examples import generate_with_maps, rank_examples
    from ..runs.pictures import heatmap_grid
    from ..runs.report import save_json, save_png, versions

    model, sae, hookpoint = setup(s)
    check_units(model, hookpoint, [s.unit], sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    prompts = read_prompts(s.prompts, model.source)
    t = s.timestep
    train_steps = int(model.scheduler.config.num_train_timesteps)
    if t is not None and not 0 <= t < train_steps:
        raise LVOError(f"--timestep {t} is outside this model's schedule 0..{train_steps - 1}")
    if t is None:
        t, _ = first_peak(s.unit, analysis)
    latents, maps, used = generate_with_maps(backend_for(model, hookpoint, sae), prompts, None, s.unit, t, sae=sae,
                                             seeds=range(s.seed, s.seed + len(prompts)), steps=s.steps,
                                             guidance=s.guidance, batch_size=s.batch_size,
                                             on_progress=Progress("examples (images × steps)"))
    ranked = rank_examples(maps, k=s.k, by=s.by, prompts=prompts, timestep=used)
    out = ensure_folder(s.out)
    if model.decoder is not None:
        with torch.no_grad():
            images = display_images(model.decoder(latents[[e.index for e in ranked]]))
        kind = "feature" if sae is not None else "channel"
        save_png(heatmap_grid(list(images.numpy()), [e.heatmap for e in ranked],
                              [f"#{i + 1} {e.prompt}: activation {e.score:.3g}" for i, e in enumerate(ranked)],
                              cell=160, title=f"Dataset examples of {kind} {s.unit} at {hookpoint}, t = {used}",
                              subtitle=f"model {model.source}; the {len(ranked)} of {len(prompts)} prompts' "
                                       f"generations it fires on most, best first",
                              legend=[f"activation: the unit's spatial {s.by} over the image's positions at t = "
                                      f"{used} while the prompt's image was generated"]), out / f"examples_{s.unit}.png")
    save_json({"command": "examples", "args": recorded_args(s), "timestep": used, "versions": versions(),
               "examples": [{"rank": i + 1, "prompt": e.prompt, "index": e.index, "score": e.score}
                            for i, e in enumerate(ranked)]}, out / f"examples_{s.unit}.json")
    for i, e in enumerate(ranked):
        print(f"{i + 1:>3}. {e.score:9.4f}  {e.prompt}")
    return 0


def cmd_label(s: Any) -> int:
    """Labels the model gives each feature (lift of vocabulary phrases), scored on held-out generations."""
    from ..analysis.labels import LabelSettings, label_units, vocabulary

    model, sae, hookpoint = setup(s)
    backend = backend_for(model, hookpoint, sae)
    phrases = vocabulary(s.vocabulary or ("toy" if model.source == "toy" else "common"))
    settings = LabelSettings(timestep=s.timestep, label_images=s.label_images, score_images=s.score_images,
                             steps=s.steps, guidance=s.guidance, top=s.top, batch_size=s.batch_size)
    start = time.perf_counter()
    table = label_units(backend, sae, phrases, settings=settings, units=s.units, score=not s.no_score,
                        on_progress=Progress("label"), on_phase=lambda name: print(f"[label] {name}", file=sys.stderr))
    seconds = time.perf_counter() - start
    table.info.update(model=model.source, seconds=round(seconds, 1))
    path = table.save(s.out)
    kind = "feature" if sae is not None else "channel"
    trusted = sum(table.trusted(u) for u in table.labels)
    for unit in list(table.labels)[:s.show]:
        labs = ", ".join(f"{lab['phrase']} ({lab['score']:.2f})" if lab.get("score") is not None
                         else f"{lab['phrase']} (lift {lab['normalised']:.2f})" for lab in table.labels[unit][:3])
        print(f"{kind} {unit:>5}: {labs or 'no phrase raises it'}")
    print(f"{len(table.labels)} {kind}s labelled with {len(phrases)} phrases in {seconds:.1f}s "
          f"({seconds / max(len(table.labels), 1):.3f} s per {kind}); {trusted} have a label with detection score "
          f"≥ {settings.trusted}; wrote {path}")
    return 0
