"""Labels measured where the truth is known: do the toy world's concept-pure features get their concept as top label,
do the detection scores tell right labels from wrong ones, and what do raw channels and impure features get?

    python -m lvo_core.toy.label_study --out lvo_runs/labels_toy
"""

from __future__ import annotations

from ..progress import announce_program

announce_program(__name__, __spec__)  # run as a program: say so before torch loads

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis.labels import LabelSettings, auroc, label_units, monosemanticity, vocabulary
from .concepts import ToyWorld, measure_purity, purity_data
from .world import COLORS, SHAPES

TUNING = (319, 10, 81, 14, 125, 19, 148, 33, 341, 98)  # the ablation's features that chose the defaults
HELD_OUT = (38, 21, 41, 22, 79, 63, 90, 107, 120, 39)  # the ablation's held-out features (README, Ablation)


def names_concept(label: dict[str, Any] | None, concept: str) -> bool:
    return label is not None and concept in label["phrase"].split()


def study(settings: LabelSettings = LabelSettings(), pure_at: float = 0.8, impure_below: float = 0.5,
          on_phase=None) -> dict[str, Any]:
    """Label every SAE feature and raw channel of the toy block and measure the labels against concept purity."""
    world = ToyWorld.load()
    data = purity_data()
    purity, raw_purity = measure_purity(world, data), measure_purity(world, data, raw=True)
    phrases = vocabulary("toy")
    report: dict[str, Any] = {"phrases": len(phrases), "settings": settings.__dict__}
    tables = {}
    for kind, sae, pur in (("sae", world.sae, purity), ("raw", None, raw_purity)):
        start = time.perf_counter()
        table = label_units(world.backend, sae, phrases, settings=settings, on_phase=on_phase)
        seconds = time.perf_counter() - start
        tables[kind] = table
        units = range(table.num_units)
        pure = [u for u in units if pur.active[u] and pur.concept(u)[2] >= pure_at]
        impure = [u for u in units if pur.active[u] and pur.concept(u)[2] < impure_below]
        right, wrong = [], []
        for u in pure:
            for lab in table.labels[u]:
                (right if names_concept(lab, pur.concept(u)[1]) else wrong).append(lab["score"])

        def share(us):
            return round(float(np.mean([names_concept(table.best(u), pur.concept(u)[1]) for u in us])), 4) \
                if us else None

        def best_scores(us):
            return [table.best(u)["score"] if table.best(u) else 0.5 for u in us]
        report[kind] = {
            "units": table.num_units, "seconds": round(seconds, 1),
            "seconds_per_unit": round(seconds / table.num_units, 3),
            "pure_units": len(pure), "top_label_names_concept": share(pure),
            "by_axis": {a: share([u for u in pure if pur.concept(u)[0] == a]) for a in ("shape", "color")},
            "right_vs_wrong_auroc": round(auroc(np.array(right), np.array(wrong)), 4) if right and wrong else None,
            "right_score_median": float(np.median(right)) if right else None,
            "wrong_score_median": float(np.median(wrong)) if wrong else None,
            "pure_best_score_median": float(np.median(best_scores(pure))) if pure else None,
            "pure_trusted": round(float(np.mean([table.trusted(u) for u in pure])), 4) if pure else None,
            "impure_units": len(impure),
            "impure_best_score_median": float(np.median(best_scores(impure))) if impure else None,
            "impure_trusted": round(float(np.mean([table.trusted(u) for u in impure])), 4) if impure else None,
            "info": table.info}
        if kind == "sae":
            report[kind]["ablation_features"] = {
                name: {str(u): {"concept": pur.concept(u)[1], "label": (table.best(u) or {}).get("phrase"),
                                "score": (table.best(u) or {}).get("score")} for u in group}
                for name, group in (("tuning", TUNING), ("held_out", HELD_OUT))}
            group = [*TUNING, *HELD_OUT]
            report[kind]["ablation_top_label_names_concept"] = share(group)
            report[kind]["held_out_top_label_names_concept"] = share(list(HELD_OUT))
            report[kind]["monosemanticity"] = monosemanticity_report(world, data, pur, pure, impure)
            report[kind]["search"] = search_report(table, pur, pure_at)
            report[kind]["two_afc"] = two_afc_report(world, data, pur, pure)
    return report, tables


def search_report(table, purity, pure_at: float = 0.8, top: int = 5) -> dict[str, Any]:
    """Search by text for each concept word that has pure features: the share of the first ``min(top, n)`` hits
    that are pure features of that concept (n: how many such features the SAE has)."""
    out = {}
    for word in (*COLORS, *SHAPES):
        pure = [u for u in range(table.num_units) if purity.active[u] and purity.concept(u)[1] == word
                and purity.concept(u)[2] >= pure_at]
        if not pure:
            continue
        hits = table.search(word, top=min(top, len(pure)))
        out[word] = {"pure_features": len(pure), "shown": len(hits),
                     "share": round(sum(h["unit"] in pure for h in hits) / len(hits), 2)}
    return {"top": top, "words": out, "mean": round(float(np.mean([v["share"] for v in out.values()])), 3)}


def two_afc_report(world: ToyWorld, data, purity, units, trials: int = 100, seed: int = 0) -> dict[str, Any]:
    """2AFC predictiveness with the judge as observer: per trial one query image from the unit's top 5 % of held-out
    images and one from its bottom half; the observer sees what the unit "shows" — the judge's reading of its best
    sample-bank image (faithful's start) or, as the natural-example baseline, the labels of its top dataset image —
    and picks the query sharing more of it (ties count half). Chance is 0.5."""
    from ..analysis.bank import BankSettings, build_bank

    bank = build_bank(world.backend, BankSettings(), sae=world.sae, timesteps=[200])
    acts = np.asarray(purity.acts)
    names = {"shape": list(SHAPES), "color": list(COLORS)}
    truth = [{"shape": names["shape"][s], "color": names["color"][c]}
             for s, c in zip(data.data.shapes, data.data.colors)]
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        tops = [bank.top(u, 200, 1, world.sae)[0] for u in units]
        shown = world.read(world.backend.decode(bank.latents[tops]).float().cpu())

    def agree(seen: dict, image: int) -> int:
        return sum(seen[a] == truth[image][a] for a in ("shape", "color"))

    correct = {"visualization": [], "natural": []}
    for u, seen in zip(units, shown):
        order = np.argsort(-acts[:, u], kind="stable")
        high, low = order[:max(1, len(order) // 20)], order[len(order) // 2:]
        natural = truth[int(order[0])]
        for _ in range(trials):
            a, b = int(rng.choice(high)), int(rng.choice(low))
            for name, view in (("visualization", seen), ("natural", natural)):
                sa, sb = agree(view, a), agree(view, b)
                correct[name].append(1.0 if sa > sb else 0.5 if sa == sb else 0.0)
    return {"units": len(units), "trials_per_unit": trials,
            **{name: round(float(np.mean(v)), 4) for name, v in correct.items()},
            "observer": "the toy judge", "shown": "the unit's best sample-bank image at t 200"}


def monosemanticity_report(world: ToyWorld, data, purity, pure, impure, top: int = 50) -> dict[str, Any]:
    """MonoSemanticity of each feature's top held-out images, embedded by the judge's penultimate layer."""
    with torch.no_grad():
        emb = world.judge.features(data.images.float())
    acts = torch.from_numpy(np.asarray(purity.acts)).float()

    def ms(u):
        order = torch.argsort(acts[:, u], descending=True)[:top]
        return monosemanticity(emb[order], acts[order, u])
    return {"pure_median": round(float(np.nanmedian([ms(u) for u in pure])), 4),
            "impure_median": round(float(np.nanmedian([ms(u) for u in impure])), 4) if impure else None,
            "top_images": top, "embedding": "the judge's penultimate layer"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="lvo_runs/labels_toy")
    args = parser.parse_args(argv)
    out = Path(args.out)
    report, tables = study(on_phase=lambda name: print(f"[labels] {name}", flush=True))
    for kind, table in tables.items():
        table.save(out / kind)
    (out / "study.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
