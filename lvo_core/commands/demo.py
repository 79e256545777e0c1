"""The toy world's commands: ``demo`` (the whole pipeline, with faithfulness numbers) and ``ablate`` (every recipe
and each of its parts switched off, one table)."""

from __future__ import annotations

import sys
import time
from typing import Any

from ..errors import LVOError
from .boundary import console, preload_diffusers


def cmd_ablate(s: Any) -> int:
    """Paper, best and faithful, each part of faithful changed, raw channels, held-out features: one
    table."""
    from ..toy.ablate import markdown_table, standard_variants
    from ..toy.concepts import toy_ablation

    preload_diffusers()
    variants = standard_variants()
    if s.variants:
        names = [n.strip() for n in s.variants.split("|")]
        known = {v.name: v for v in variants}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise LVOError(f"unknown variant '{unknown[0]}'; known: {', '.join(known)}")
        variants = [known[n] for n in names]
    start = time.perf_counter()

    def progress(i: int, total: int, summary: dict) -> None:
        print(f"[ablate {i + 1}/{total}] {summary['variant']}: agreement {summary.get('agreement')}, "
              f"{summary['seconds']} s ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr, flush=True)

    def phase(name: str) -> None:
        print(f"[ablate] {name} … ({time.perf_counter() - start:.0f} s so far)", file=sys.stderr, flush=True)

    report = toy_ablation(s.out, variants=variants, seeds=s.seeds, count=s.units, raw_count=s.raw_units,
                          prior_steps=s.prior_steps, device=s.device, on_variant=progress, held_out=s.held_out,
                          on_phase=phase, progress=console())
    print("units:", ", ".join(f"{u} {c}" for u, c in report["concepts"]["sae"].items()))
    print("raw channels:", ", ".join(f"{u} {c}" for u, c in report["concepts"]["raw"].items()))
    print("held-out features:", ", ".join(f"{u} {c}" for u, c in report["concepts"]["held_out"].items()))
    print(markdown_table(report["table"]))
    print(f"wrote {s.out}/ablation.md, ablation.json, sheets/ ({time.perf_counter() - start:.0f} s)")
    return 0


def cmd_demo(s: Any) -> int:
    """The whole pipeline on the shipped toy world, with faithfulness metrics."""
    from ..toy.ablate import markdown_table
    from ..toy.demo import run_demo

    preload_diffusers()
    summary = run_demo(s.out, num_units=s.units, lvo_steps=s.lvo_steps, progress=console())
    print(f"toy world, {summary['hookpoint']}: {len(summary['units'])} concept-pure SAE features and "
          f"{len(summary['channels'])} raw channels")
    for unit, concept in {**summary["concepts"], **summary["channel_concepts"]}.items():
        print(f"  unit {unit:>4}: {concept} of its top-20 held-out images")
    steps = ", ".join(f"{name} {n} steps" for name, n in summary["lvo_steps"].items())
    print(f"\nLVO ({steps}), seeds {summary['seeds']}; agreement = the judge reads the unit's concept in the image")
    print(markdown_table(summary["table"]))
    print(f"\nwrote {s.out}/: concepts.png (dataset examples | paper | faithful per unit), activity.png, "
          f"summary.json ({summary['seconds']} s)")
    return 0
