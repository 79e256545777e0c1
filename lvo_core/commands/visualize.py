"""``visualize`` (LVO on some units, resumable), ``atlas`` (on many units, on one or N processes) and ``steer``
(the steered generations LVO can start from)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..analysis.bank import SampleBank
from ..analysis.metrics import display_images
from ..fileio import ensure_folder
from ..lvo.pipeline import plan_rows
from ..lvo.priors import PriorTable
from .boundary import VISUALIZE, Progress, recorded_args
from .lvo_run import lvo_setup, steer_prior
from .setup import check_units, load_analysis, setup


def cmd_visualize(s: Any) -> int:
    """LVO: optimize latents so that units fire, decode, measure."""
    from ..runs.record import results_table, run_visualize  # the runs stage loads PIL: not for --help

    start = time.perf_counter()
    backend, kwargs, info, settings, units = lvo_setup(s)
    vis, result = run_visualize(s.out, backend, units, resume=s.resume, settings=settings, info=info,
                                on_progress=Progress(VISUALIZE), **kwargs)
    if vis is None:
        print(f"all {len(result['rows'])} visualizations in {s.out} were already finished with these settings")
        return 0
    print(results_table(result, "feature" if kwargs["sae"] is not None else "channel"))
    state = "complete" if vis.complete else ("interrupted" if vis.interrupted else "stopped: " + "; ".join(vis.stopped))
    print(f"{len(vis.rows)} visualizations ({state}, {result['resumed_rows']} resumed from an earlier run) in "
          f"{time.perf_counter() - start:.1f}s; wrote {s.out}/result.json")
    if vis.interrupted:
        print(f"interrupted: finished batches are saved in {s.out}; rerun the same command with --resume to finish",
              file=sys.stderr)
    return 130 if vis.interrupted else 0


def cmd_atlas(s: Any) -> int:
    """LVO for many units (all of an SAE), resumable, on 1 or N processes (torchrun)."""
    from ..runs.atlas import build_atlas, join_cluster  # with the site: ~40 ms that --help need not pay
    from ..analysis.labels import LabelTable
    from ..runs.site import write_atlas_site

    cluster = join_cluster()
    try:
        if cluster.world > 1 and torch.cuda.is_available():
            s.device = f"cuda:{cluster.local_rank}"
        start = time.perf_counter()
        backend, kwargs, info, settings, units = lvo_setup(s, cluster)
        kind = "feature" if kwargs["sae"] is not None else "channel"

        def report_chunk(index: int, total: int) -> None:
            print(f"[rank {cluster.rank}/{cluster.world}] chunk {index + 1}/{total} done", file=sys.stderr)

        index, ran = build_atlas(s.out, backend, units, cluster=cluster, settings=settings,
                                 info={**info, "world_size": cluster.world}, chunk_size=s.chunk_size,
                                 on_chunk=report_chunk,
                                 on_progress=Progress(f"[rank {cluster.rank}] chunk: {VISUALIZE}"), **kwargs)
        if index is not None:
            seconds = time.perf_counter() - start
            todo = len(units) - index["resumed_units"]
            per_1000 = f", {seconds / todo * 1000:.0f} s per 1000 units" if todo else ""
            print(f"atlas: {index['finished_units']}/{index['total_units']} {kind}s finished "
                  f"({index['resumed_units']} from an earlier run) on {cluster.world} process(es) in {seconds:.1f}s"
                  f"{per_1000}; wrote {s.out}/index.json, atlas.html, atlas.png")
            folder = Path(s.bank) if s.bank else Path(s.out) / "bank"
            site = write_atlas_site(s.out, index, backend, sae=kwargs["sae"], analysis=kwargs["analysis"],
                                    bank=SampleBank.load(folder) if (folder / "bank.json").is_file() else None,
                                    labels=LabelTable.load(s.labels) if getattr(s, "labels", None) else None,
                                    top=getattr(s, "site_examples", 4), kind=kind,
                                    on_progress=Progress("atlas site"))
            print(f"atlas site: open {site} (static; copy the folder to share it)")
        elif ran == 0:
            print(f"[rank {cluster.rank}] no work left", file=sys.stderr)
        return 0
    finally:
        cluster.close()


def cmd_steer(s: Any) -> int:
    """Steered generations: the LVO priors of some units."""
    from ..runs.pictures import steer_sheet
    from ..runs.report import save_json, save_png, versions

    model, sae, hookpoint = setup(s)
    check_units(model, hookpoint, s.units, sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    rows = plan_rows(s.units, s.seeds, [0], None)
    latents = steer_prior(model, sae, hookpoint, analysis, s)([r.unit for r in rows], [r.seed for r in rows])
    out = ensure_folder(s.out)
    meta_rows = [{"unit": r.unit, "seed": r.seed} for r in rows]
    PriorTable([(r.unit, r.seed) for r in rows], latents).save(out / "priors.safetensors")
    if model.decoder is not None:
        with torch.no_grad():
            images = display_images(model.decoder(latents))
        kind = "feature" if sae is not None else "channel"
        how = (f"strength {s.strength}" if s.strength is not None else
               f"strength = dataset max at t x {s.scale or ('500' if sae is not None else '50')}")
        save_png(steer_sheet(list(images.numpy()), [r.unit for r in rows], s.seeds, kind=kind, hookpoint=hookpoint,
                             subtitle=f"model {model.source}; {s.prior_steps} sampling steps, mode {s.mode}, {how}"),
                 out / "priors.png")
    save_json({"command": "steer", "args": recorded_args(s), "rows": meta_rows, "versions": versions()},
              out / "steer.json")
    print(f"wrote {len(rows)} steered priors to {out}/priors.safetensors")
    return 0
