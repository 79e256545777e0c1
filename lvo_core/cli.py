"""Command line: ``python -m lvo_core {analyze,steer,visualize,atlas,examples,info,convert,demo,ablate} …``.

Models: ``--model tiny`` (the embedded tiny model, default), a local diffusers folder, or a single-file
``.safetensors`` checkpoint with ``--config`` (a local diffusers folder). Units are SAE features (``--sae``; ``tiny``
is the embedded random SAE) or raw channels (``--raw``). Errors from bad input print one line naming what to fix
and exit with status 2; an interrupted run writes what it finished and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import LVOError

DEFAULT_HOOKPOINT = "up_blocks.1.attentions.1"
TINY_PROMPTS = ["red circle", "blue square", "green triangle", "yellow ring", "red stripes", "blue circle",
                "green square", "white ring"]


# ---------------------------------------------------------------------------------------------- helpers
class Progress:
    """A one-line progress bar on stderr, redrawn at most every 0.2 s."""

    def __init__(self, label: str):
        self.label, self.last, self.start = label, 0.0, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        frac = done / max(total, 1)
        bar = "#" * int(frac * 30)
        print(f"\r{self.label} [{bar:<30}] {done}/{total} {now - self.start:6.1f}s", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)


def int_list(text: str) -> list[int]:
    """``12,305`` or ranges ``10-13``, as everywhere in the pack."""
    from .units import parse_units

    try:
        return parse_units(text)
    except LVOError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def batch_arg(text: str) -> int | str:
    return "auto" if text == "auto" else int(text)


def timesteps_arg(text: str) -> str | list[int]:
    return "peaks" if text == "peaks" else int_list(text)


def read_prompts(path: str | None, model_source: str) -> list[str]:
    if path is None:
        if model_source == "tiny":
            return list(TINY_PROMPTS)
        if model_source == "toy":
            from .toy.world import COLORS, SHAPES

            return [f"{c} {s}" for c in COLORS for s in SHAPES]
        raise LVOError("give --prompts FILE (one prompt per line)")
    p = Path(path)
    if not p.is_file():
        raise LVOError(f"prompts file {p} does not exist")
    prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in prompts if line and not line.startswith("#")]
    if not prompts:
        raise LVOError(f"prompts file {p} has no prompts (one per line; '#' starts a comment)")
    return prompts


def setup(args: argparse.Namespace):
    """Model, SAE (None for raw units) and hookpoint name from the common arguments."""
    from .models import load_model
    from .sae import load_sae
    from .tiny import random_sae

    model = load_model(args.model, config=args.config, device=args.device)
    if args.raw and args.sae:
        raise LVOError("give either --sae (SAE features) or --raw (raw channels), not both")
    sae = None
    if not args.raw:
        spec = args.sae or (model.source if model.source in ("tiny", "toy") else None)
        if spec is None:
            raise LVOError("give --sae PATH for SAE features, or --raw for raw channels")
        if spec == "toy":
            from .toy import SAE_PATH

            spec = str(SAE_PATH)
        sae = random_sae() if spec == "tiny" else load_sae(spec, hookpoint=args.hookpoint)
        sae = sae.to(device=args.device, dtype=torch.float32)
    hookpoint = args.hookpoint or (sae.hookpoint if sae is not None and sae.hookpoint else DEFAULT_HOOKPOINT)
    return model, sae, hookpoint


def load_analysis(path: str | None):
    from .activity import ActivityAnalysis

    if path is None:
        return None
    if not Path(path).is_file():
        raise LVOError(f"activity analysis {path} does not exist; create it with `python -m lvo_core analyze`")
    return ActivityAnalysis.load(path)


def backend_for(model, hookpoint: str):
    from .backend import DiffusersBackend

    return DiffusersBackend(model.unet, hookpoint, scheduler=model.scheduler, decoder=model.decoder,
                            encode_prompt=model.require_prompts())


# ---------------------------------------------------------------------------------------------- commands
def cmd_analyze(args: argparse.Namespace) -> int:
    from .activity import analyze_activity

    model, sae, hookpoint = setup(args)
    prompts = read_prompts(args.prompts, model.source)
    seeds = list(range(args.seed, args.seed + len(prompts)))
    progress = Progress("analyze")
    done = [0]

    def on_generation(first: int, count: int, _latents) -> None:
        done[0] += count
        progress(done[0], len(prompts))

    analysis = analyze_activity(model.unet, model.scheduler, hookpoint, prompts, model.require_prompts(), sae=sae,
                                seeds=seeds, steps=args.steps, guidance=args.guidance, top_n=args.top_n,
                                batch_size=args.batch_size, on_generation=on_generation)
    analysis.meta.update({"model": model.source, "sae": args.sae})
    analysis.save(args.out)
    active = analysis.frequency.max(0) > 0
    print(f"{int(active.sum())} of {len(analysis.units)} units were among the top-{analysis.top_n} at some timestep; "
          f"wrote {args.out}")
    return 0


def _priors_from_file(path: str):
    from .sae.formats import read_safetensors

    from safetensors import safe_open

    tensors = read_safetensors(path)
    with safe_open(path, framework="pt") as fh:
        rows = json.loads((fh.metadata() or {}).get("rows", "[]"))
    table = {(int(r["unit"]), int(r["seed"])): tensors["latents"][i] for i, r in enumerate(rows)}

    def prior(units: list[int], seeds: list[int]) -> torch.Tensor:
        missing = [(u, s) for u, s in zip(units, seeds) if (u, s) not in table]
        if missing:
            raise LVOError(f"priors file {path} has no latent for unit {missing[0][0]}, seed {missing[0][1]}; "
                           f"run `steer` with the same units and seeds")
        return torch.stack([table[(u, s)] for u, s in zip(units, seeds)])
    prior.label = f"file:{path}"
    return prior


def _steer_prior(model, sae, hookpoint: str, analysis, args: argparse.Namespace):
    from .steering import steer

    empty = model.require_prompts()([""])

    def prior(units: list[int], seeds: list[int]) -> torch.Tensor:
        return steer(model.unet, model.scheduler, hookpoint, units, seeds, empty, sae=sae, analysis=analysis,
                     mode=args.mode, scale=args.scale, strength=args.strength, window=tuple(args.window),
                     steps=args.prior_steps)
    prior.label = "steer"
    return prior


def cmd_steer(args: argparse.Namespace) -> int:
    from .metrics import display_images
    from .pipeline import plan_rows
    from .report import save_json, save_png, save_tensors, versions
    from .plots import image_grid

    model, sae, hookpoint = setup(args)
    analysis = load_analysis(args.analysis)
    rows = plan_rows(args.units, args.seeds, [0], None)
    prior = _steer_prior(model, sae, hookpoint, analysis, args)
    latents = prior([r.unit for r in rows], [r.seed for r in rows])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_rows = [{"unit": r.unit, "seed": r.seed} for r in rows]
    save_tensors({"latents": latents}, out / "priors.safetensors", {"rows": json.dumps(meta_rows)})
    if model.decoder is not None:
        with torch.no_grad():
            images = display_images(model.decoder(latents))
        save_png(image_grid(list(images.numpy()), [f"{r.unit} s{r.seed}" for r in rows], columns=len(args.seeds),
                            cell=128), out / "priors.png")
    save_json({"command": "steer", "args": _args_dict(args), "rows": meta_rows, "versions": versions()},
              out / "steer.json")
    print(f"wrote {len(rows)} steered priors to {out}/priors.safetensors")
    return 0


def _config_from_args(args: argparse.Namespace, kind: str):
    from dataclasses import replace

    from .optimize import auto_precision, preset
    from .transforms import ROBUSTNESS_LEVELS

    config = preset(args.preset or kind, robustness=args.robustness)
    overrides: dict[str, Any] = {}
    overrides["precision"] = auto_precision(args.device) if args.precision == "auto" else args.precision
    overrides["check_every"] = args.check_every
    for name in ("steps", "lr", "optimizer", "tv_weight", "range_weight", "moment_weight", "blur_sigma", "seed",
                 "prior_weight"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.no_noise:
        overrides["noise"] = False
    if args.no_precondition:
        overrides["precondition"] = False
    if args.no_augment:
        overrides["augment"] = ROBUSTNESS_LEVELS["L0"]
    if args.no_penalties:
        overrides.update(tv_weight=0.0, range_weight=0.0, moment_weight=0.0)
    if args.minimize:
        overrides["maximize"] = False
    return replace(config, **overrides)


def _args_dict(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("func", "from_json", "resume")}


RESULT_KEYS = ("model", "config", "sae", "hookpoint", "units", "seeds", "timesteps", "prior", "analysis", "preset",
               "prior_weight",
               "robustness", "steps", "lr", "optimizer", "tv_weight", "range_weight", "moment_weight", "blur_sigma",
               "seed", "value", "no_noise", "no_precondition", "no_augment", "no_penalties", "minimize", "raw",
               "mode", "scale", "strength", "window", "prior_steps", "precision", "display", "eval_samples")


def run_fingerprint(args: argparse.Namespace) -> str:
    """A hash of every argument that changes results, so ``--resume`` never mixes rows of different runs."""
    import hashlib

    data = json.dumps({k: getattr(args, k, None) for k in RESULT_KEYS}, sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _headline(metrics: dict) -> float:
    """The number shown under an image: ratio to the dataset max when known, else the activation."""
    return metrics["ratio"] if metrics["ratio"] is not None else metrics["activation"]


def cmd_visualize(args: argparse.Namespace) -> int:
    from .pipeline import visualize
    from .report import RowStore, contact_sheet, save_json, save_png, save_tensors, versions

    model, sae, hookpoint = setup(args)
    analysis = load_analysis(args.analysis)
    backend = backend_for(model, hookpoint)
    config = _config_from_args(args, "sae" if sae is not None else "raw")
    if args.prior == "steer":
        prior = _steer_prior(model, sae, hookpoint, analysis, args)
    elif args.prior == "random":
        prior = "random"
    else:
        prior = _priors_from_file(args.prior)
    out = Path(args.out)
    fingerprint = run_fingerprint(args)
    kind = "feature" if sae is not None else "channel"
    store = RowStore(out, kind, fingerprint)
    previous = store.finished() if args.resume else {}
    from .pipeline import plan_rows

    if previous and set(plan_rows(args.units, args.seeds, args.timesteps, analysis)) <= set(previous):
        print(f"all {len(previous)} visualizations in {out} were already finished with these settings")
        return 0

    progress = Progress("visualize")
    start = time.perf_counter()
    vis = visualize(backend, args.units, sae=sae, analysis=analysis, timesteps=args.timesteps, seeds=args.seeds,
                    prior=prior, config=config, value=args.value, batch_size=args.batch_size, display=args.display,
                    eval_samples=args.eval_samples, on_progress=progress, on_batch=store.save, skip=list(previous))
    all_rows = store.finished()
    ordered = sorted(all_rows.items(), key=lambda kv: (args.units.index(kv[0].unit), kv[0].timestep,
                                                       args.seeds.index(kv[0].seed)))
    images = [store.image(info) for _, info in ordered]
    tensors = [store.tensors(info) for _, info in ordered]
    labels = [f"{r.unit} t{r.timestep} x{_headline(i['metrics']):.2f}" for r, i in ordered]
    save_png(contact_sheet(images, [r.unit for r, _ in ordered], labels), out / "contact_sheet.png")
    save_tensors({"latents": torch.stack([t["latent"] for t in tensors]),
                  "init_latents": torch.stack([t["init_latent"] for t in tensors])}, out / "latents.safetensors",
                 {"rows": json.dumps([r.__dict__ for r, _ in ordered])})
    summary = vis.summary()
    summary.update({"rows": [r.__dict__ for r, _ in ordered], "metrics": [i["metrics"] for _, i in ordered],
                    "history": {k: [i["history"][k] for _, i in ordered] for k in summary["history"]},
                    "complete": vis.complete and all(i["complete"] for _, i in ordered),
                    "resumed_rows": len(previous)})
    result = {"command": "visualize", "args": _args_dict(args), "hookpoint": hookpoint, "model": model.source,
              "sae": None if sae is None else sae.summary(), "versions": versions(),
              "images": [f"{i['stem']}.png" for _, i in ordered], "contact_sheet": "contact_sheet.png",
              "latents": "latents.safetensors", "fingerprint": fingerprint,
              "wall_seconds": round(time.perf_counter() - start, 3), **summary}
    save_json(result, out / "result.json")
    print(f"{kind:>8}  {'t':>4}  {'seed':>5}  {'activation':>10}  {'prior':>8}  {'ratio':>6}  {'rank':>5}")
    for m in result["metrics"]:
        ratio = "—" if m["ratio"] is None else f"{m['ratio']:.2f}"
        print(f"{m['unit']:>8}  {m['timestep']:>4}  {m['seed']:>5}  {m['activation']:>10.4f}  "
              f"{m['prior_activation']:>8.4f}  {ratio:>6}  {m['rank']:>5}")
    state = "complete" if vis.complete else ("interrupted" if vis.interrupted else "stopped: " + "; ".join(vis.stopped))
    print(f"{len(vis.rows)} visualizations ({state}, {len(previous)} resumed from an earlier run) in "
          f"{vis.seconds:.1f}s; wrote {out}/result.json")
    return 130 if vis.interrupted else 0


def cmd_atlas(args: argparse.Namespace) -> int:
    from .atlas import join_cluster, merge, run_atlas
    from .pipeline import plan_rows, visualize
    from .report import RowStore, versions

    cluster = join_cluster()
    try:
        if cluster.world > 1 and torch.cuda.is_available():
            args.device = f"cuda:{cluster.local_rank}"
        start = time.perf_counter()
        model, sae, hookpoint = setup(args)
        analysis = load_analysis(args.analysis)
        backend = backend_for(model, hookpoint)
        count = sae.d_sae if sae is not None else backend.hookpoint.channels
        units = list(range(count)) if args.units == "all" else int_list(args.units)
        config = _config_from_args(args, "sae" if sae is not None else "raw")
        prior = ("random" if args.prior == "random" else _steer_prior(model, sae, hookpoint, analysis, args)
                 if args.prior == "steer" else _priors_from_file(args.prior))
        kind = "feature" if sae is not None else "channel"
        atlas_args = argparse.Namespace(**{**vars(args), "units": None})  # any unit range shares finished work
        store = RowStore(args.out, kind, run_fingerprint(atlas_args))
        finished = set(store.finished())
        done = {u for u in units if set(plan_rows([u], args.seeds, args.timesteps, analysis)) <= finished}
        cluster.barrier()  # every rank has read the finished units before anyone adds more: same chunk lists

        def run_chunk(chunk: list[int]) -> None:
            visualize(backend, chunk, sae=sae, analysis=analysis, timesteps=args.timesteps, seeds=args.seeds,
                      prior=prior, config=config, value=args.value, batch_size=args.batch_size,
                      display=args.display, eval_samples=args.eval_samples, on_batch=store.save)

        def report_chunk(index: int, total: int) -> None:
            print(f"[rank {cluster.rank}/{cluster.world}] chunk {index + 1}/{total} done", file=sys.stderr)

        ran = run_atlas(run_chunk, units, done, args.chunk_size, cluster, on_chunk=report_chunk)
        cluster.barrier()
        if cluster.rank == 0:
            seconds = time.perf_counter() - start
            todo = len(units) - len(done)
            index = merge(store, units, kind, {"command": "atlas", "args": _args_dict(args), "hookpoint": hookpoint,
                                               "model": model.source, "versions": versions(),
                                               "world_size": cluster.world, "seconds": round(seconds, 3),
                                               "resumed_units": len(done)})
            per_1000 = f", {seconds / todo * 1000:.0f} s per 1000 units" if todo else ""
            print(f"atlas: {index['finished_units']}/{index['total_units']} {kind}s finished ({len(done)} from an "
                  f"earlier run) on {cluster.world} process(es) in {seconds:.1f}s{per_1000}; wrote {args.out}/"
                  f"index.json, atlas.html, atlas.png")
        elif ran == 0:
            print(f"[rank {cluster.rank}] no work left", file=sys.stderr)
        return 0
    finally:
        cluster.close()


def cmd_examples(args: argparse.Namespace) -> int:
    from .examples import generate_with_maps, overlay, rank_examples
    from .metrics import display_images
    from .plots import image_grid
    from .report import save_json, save_png, versions

    model, sae, hookpoint = setup(args)
    analysis = load_analysis(args.analysis)
    prompts = read_prompts(args.prompts, model.source)
    t = args.timestep
    if t is None:
        peaks = analysis.peaks(args.unit) if analysis is not None else []
        t = peaks[0] if peaks else 500
    latents, maps, used = generate_with_maps(model.unet, model.scheduler, hookpoint, prompts, model.require_prompts(),
                                             args.unit, t, sae=sae, seeds=range(args.seed, args.seed + len(prompts)),
                                             steps=args.steps, guidance=args.guidance, batch_size=args.batch_size)
    ranked = rank_examples(maps, k=args.k, by=args.by, prompts=prompts, timestep=used)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if model.decoder is not None:
        with torch.no_grad():
            images = display_images(model.decoder(latents[[e.index for e in ranked]]))
        vmax = max(float(ranked[0].heatmap.max()), 1e-8)
        tiles = [overlay(img, e.heatmap, vmax=vmax) for img, e in zip(images.numpy(), ranked)]
        save_png(image_grid(tiles, [f"{e.prompt} {e.score:.2f}" for e in ranked], columns=min(4, len(tiles)),
                            cell=160), out / f"examples_{args.unit}.png")
    save_json({"command": "examples", "args": _args_dict(args), "timestep": used, "versions": versions(),
               "examples": [{"rank": i + 1, "prompt": e.prompt, "index": e.index, "score": e.score}
                            for i, e in enumerate(ranked)]}, out / f"examples_{args.unit}.json")
    for i, e in enumerate(ranked):
        print(f"{i + 1:>3}. {e.score:9.4f}  {e.prompt}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .ablate import markdown_table, standard_variants
    from .toy.concepts import toy_ablation

    variants = standard_variants()
    if args.variants:
        names = [n.strip() for n in args.variants.split("|")]
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

    report = toy_ablation(args.out, variants=variants, seeds=args.seeds, count=args.units, raw_count=args.raw_units,
                          prior_steps=args.prior_steps, device=args.device, on_variant=progress,
                          held_out=args.held_out, on_phase=phase)
    print("units:", ", ".join(f"{u} {c}" for u, c in report["concepts"]["sae"].items()))
    print("raw channels:", ", ".join(f"{u} {c}" for u, c in report["concepts"]["raw"].items()))
    print("held-out features:", ", ".join(f"{u} {c}" for u, c in report["concepts"]["held_out"].items()))
    print(markdown_table(report["table"]))
    print(f"wrote {args.out}/ablation.md, ablation.json, sheets/ ({time.perf_counter() - start:.0f} s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .ablate import markdown_table
    from .demo import run_demo

    summary = run_demo(args.out, num_units=args.units, lvo_steps=args.lvo_steps)
    print(f"toy world, {summary['hookpoint']}: {len(summary['units'])} concept-pure SAE features and "
          f"{len(summary['channels'])} raw channels")
    for unit, concept in {**summary["concepts"], **summary["channel_concepts"]}.items():
        print(f"  unit {unit:>4}: {concept} of its top-20 held-out images")
    steps = ", ".join(f"{name} {n} steps" for name, n in summary["lvo_steps"].items())
    print(f"\nLVO ({steps}), seeds {summary['seeds']}; agreement = the judge reads the unit's concept in the image")
    print(markdown_table(summary["table"]))
    print(f"\nwrote {args.out}/: concepts.png (dataset examples | paper | faithful per unit), activity.png, "
          f"summary.json ({summary['seconds']} s)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .hookpoints import check_sae_fits, list_hookpoints, resolve_hookpoint
    from .models import load_model
    from .sae import describe, load_sae

    report: dict = {}
    if args.sae:
        report["sae"] = describe(args.sae)
    if args.model or not args.sae:
        unet = load_model(args.model or "tiny", config=args.config).unet
        report["hookpoints"] = [{"diffusers": p.diffusers_name, "ldm": p.ldm_name, "channels": p.channels,
                                 "kind": p.kind} for p in list_hookpoints(unet)]
        if args.sae:
            sae = load_sae(args.sae, hookpoint=args.hookpoint)
            point = resolve_hookpoint(unet, args.hookpoint or sae.hookpoint or DEFAULT_HOOKPOINT)
            check_sae_fits(sae.d_in, point, unet)
            report["fit"] = f"SAE ({sae.d_in} channels) fits {point.diffusers_name} / {point.ldm_name}"
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if "sae" in report:
        print("SAE:", json.dumps(report["sae"], indent=2))
    for p in report.get("hookpoints", []):
        print(f"  {p['diffusers']:<32} {p['ldm']:<20} {p['channels']:>6}  {p['kind']}")
    if "fit" in report:
        print(report["fit"])
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .sae import convert_to_safetensors, load_sae

    out = convert_to_safetensors(args.source, args.out, k=args.k)
    print(f"wrote {out} ({load_sae(out).summary()['format']} layout, safetensors only)")
    return 0


# ---------------------------------------------------------------------------------------------- parser
def _model_args(p: argparse.ArgumentParser, units: bool = True) -> None:
    p.add_argument("--model", default="tiny", help="'tiny' (default), 'toy' (the trained toy world), a local "
                                                   "diffusers folder, or a .safetensors checkpoint with --config")
    p.add_argument("--config", help="local diffusers folder with the configs of a single-file checkpoint")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    p.add_argument("--sae", help="SAE folder/file (any supported format), or 'tiny'/'toy' (the default with "
                                 "--model tiny/toy)")
    p.add_argument("--raw", action="store_true", help="use raw channels of the block instead of SAE features")
    p.add_argument("--hookpoint", help=f"block to hook, diffusers or LDM name (default: the SAE's, else "
                                       f"{DEFAULT_HOOKPOINT})")


def _generation_args(p: argparse.ArgumentParser) -> None:
    """Generating from a prompt set (``analyze`` and ``examples``)."""
    p.add_argument("--prompts", help="text file, one prompt per line (the tiny and toy models have built-in prompts)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps per prompt (50)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (7.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first prompt; the next prompts count up")
    p.add_argument("--batch-size", type=int, default=4, help="prompts per batch (4)")


def _steer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="add", choices=["add", "scale"], help="add the decoder direction / channel "
                   "constant, or scale the feature's code with the SAE error preserved")
    p.add_argument("--scale", type=float, help="strength = dataset max at t × scale (default 500 SAE, 50 raw)")
    p.add_argument("--strength", type=float, help="fixed strength (or factor in scale mode) instead")
    p.add_argument("--window", type=float, nargs=2, default=(0.0, 1.0), metavar=("START", "END"),
                   help="with a fixed strength and no analysis: steer within this fraction of sampling")
    p.add_argument("--prior-steps", type=int, default=50, help="sampling steps of the steered generation (50)")


def _lvo_args(p: argparse.ArgumentParser) -> None:
    """The LVO settings shared by ``visualize`` and ``atlas``."""
    p.add_argument("--timesteps", type=timesteps_arg, default="peaks",
                   help="'peaks' ({0} ∪ activity peaks; needs --analysis) or comma-separated timesteps")
    p.add_argument("--prior", default="steer", help="'steer' (default), 'random', or a priors.safetensors file")
    p.add_argument("--preset", choices=["sae", "raw"], help="settings preset (default: by unit kind)")
    p.add_argument("--robustness", choices=["L0", "L1", "L2", "L3"], help="augmentation level (preset: L1)")
    p.add_argument("--steps", type=int, help="optimization steps (100)")
    p.add_argument("--lr", type=float, help="learning rate (0.05)")
    p.add_argument("--optimizer", choices=["adam", "adamw"], help="adamw (default, weight decay 0.01) or adam")
    p.add_argument("--tv-weight", type=float, help="total-variation weight")
    p.add_argument("--range-weight", type=float, help="range-penalty weight")
    p.add_argument("--moment-weight", type=float, help="moment-penalty weight")
    p.add_argument("--blur-sigma", type=float, help="starting σ of the gradient blur")
    p.add_argument("--prior-weight", type=float, help="weight of the diffusion-prior (score-distillation) term; "
                   "0 = off (the paper's recipe)")
    p.add_argument("--seed", type=int, help="seed of the augmentation draws (0)")
    p.add_argument("--value", default="dense", choices=["dense", "pre", "sparse"],
                   help="SAE objective: dense ReLU pre-activation (paper), pre-ReLU, or the sparse code")
    p.add_argument("--no-noise", action="store_true", help="ablation: no schedule-matched noise injection")
    p.add_argument("--no-precondition", action="store_true", help="ablation: no spectral preconditioning")
    p.add_argument("--no-augment", action="store_true", help="ablation: no jitter/rotation/zoom")
    p.add_argument("--no-penalties", action="store_true", help="ablation: no TV, range or moment penalty")
    p.add_argument("--minimize", action="store_true", help="minimize the unit instead")
    p.add_argument("--batch-size", type=batch_arg, default=20, help="rows optimized together (20), or 'auto' "
                   "(fits free memory; halves on out-of-memory either way)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="fp32",
                   help="UNet precision under autocast; the latent stays fp32 (auto: bf16 on CUDA)")
    p.add_argument("--check-every", type=int, default=1, help="read the NaN check back every N steps (fewer "
                   "device syncs; a bad step rolls back to the last check)")
    p.add_argument("--display", default="per_image", choices=["per_image", "batch"], help="image scaling")
    p.add_argument("--eval-samples", type=int, default=4, help="noise draws for the reported metrics (4)")


def build_parser() -> argparse.ArgumentParser:
    from .steering import REFERENCE_SEEDS

    parser = argparse.ArgumentParser(prog="python -m lvo_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seeds_help = f"comma-separated seeds (default the reference's {','.join(map(str, REFERENCE_SEEDS))})"

    p = sub.add_parser("analyze", help="time-step activity analysis over a prompt set")
    _model_args(p)
    _generation_args(p)
    p.add_argument("--top-n", type=int, default=20, help="a unit is active when among the top N (20)")
    p.add_argument("--out", default="lvo_runs/activity.safetensors", help="analysis file to write")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("steer", help="steered generations: the LVO priors of some units")
    _model_args(p)
    _steer_args(p)
    p.add_argument("--units", type=int_list, required=True, help="comma-separated feature or channel indices")
    p.add_argument("--seeds", type=int_list, default=list(REFERENCE_SEEDS), help=seeds_help)
    p.add_argument("--analysis", help="activity analysis (strength from its dataset max at active timesteps)")
    p.add_argument("--out", default="lvo_runs/steer", help="output folder")
    p.set_defaults(func=cmd_steer)

    p = sub.add_parser("visualize", help="LVO: optimize latents so that units fire, decode, measure")
    _model_args(p)
    _steer_args(p)
    p.add_argument("--units", type=int_list, help="comma-separated feature or channel indices (required)")
    p.add_argument("--seeds", type=int_list, default=list(REFERENCE_SEEDS), help=seeds_help)
    p.add_argument("--analysis", help="activity analysis: peak timesteps, dataset max, steering strengths")
    _lvo_args(p)
    p.add_argument("--out", default="lvo_runs/visualize", help="output folder")
    p.add_argument("--from-json", help="rerun a previous result.json with its recorded arguments")
    p.add_argument("--resume", action="store_true", help="skip visualizations an earlier run with the same "
                   "settings finished in --out; redo unfinished ones")
    p.set_defaults(func=cmd_visualize)

    p = sub.add_parser("atlas", help="LVO for many units (all of an SAE), resumable, on 1 or N processes (torchrun)")
    _model_args(p)
    _steer_args(p)
    p.add_argument("--units", default="all", help="'all' (every feature/channel) or indices/ranges like '0-1023'")
    p.add_argument("--seeds", type=int_list, default=[1024], help="comma-separated seeds (default 1024)")
    p.add_argument("--analysis", help="activity analysis: peak timesteps, dataset max, steering strengths")
    _lvo_args(p)
    p.add_argument("--chunk-size", type=int, default=16, help="units per unit of work a rank claims (16)")
    p.add_argument("--out", default="lvo_runs/atlas", help="shared output folder (all ranks write here)")
    p.set_defaults(func=cmd_atlas, resume=True, from_json=None)

    p = sub.add_parser("examples", help="top-activating generations of a unit, ranked, with heatmaps")
    _model_args(p)
    p.add_argument("--unit", type=int, required=True, help="feature or channel index")
    p.add_argument("--timestep", type=int, help="timestep (default: the unit's first peak, else 500)")
    p.add_argument("--analysis", help="activity analysis (for the default timestep)")
    _generation_args(p)
    p.add_argument("--k", type=int, default=8, help="how many examples to keep (8)")
    p.add_argument("--by", default="mean", choices=["mean", "max"], help="rank by spatial mean or max")
    p.add_argument("--out", default="lvo_runs/examples", help="output folder")
    p.set_defaults(func=cmd_examples)

    p = sub.add_parser("info", help="hookable blocks of a model, SAE summary, and whether they fit")
    p.add_argument("--model", help="'tiny', a local diffusers folder, or a checkpoint with --config")
    p.add_argument("--config", help="local diffusers folder for a single-file checkpoint")
    p.add_argument("--sae", help="SAE folder or file (any supported format)")
    p.add_argument("--hookpoint", help="hookpoint to check the SAE against / choose in a multi-hookpoint root")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert an SAE (e.g. a pickled ae.pt/state_dict.pth) to safetensors")
    p.add_argument("source", help="SAE folder or file")
    p.add_argument("out", help="output folder")
    p.add_argument("--k", type=int, help="number of active latents, if the source does not say")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("demo", help="the whole pipeline on the shipped toy world, with faithfulness metrics")
    p.add_argument("--out", default="lvo_runs/demo", help="output folder (default: lvo_runs/demo)")
    p.add_argument("--units", type=int, default=6, help="how many concept-pure features to show (6)")
    p.add_argument("--lvo-steps", type=int, default=None,
                   help="optimization steps for every recipe (default: each recipe's own, paper 100, faithful 30)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ablate", help="paper, best and faithful recipes, each part of faithful changed, SAE vs raw, "
                                      "held-out features: one table (toy world: with concept agreement)")
    p.add_argument("--out", default="lvo_runs/ablation", help="output folder (ablation.md, ablation.json, sheets/)")
    p.add_argument("--units", type=int, default=10, help="how many concept-pure SAE features to test (10)")
    p.add_argument("--raw-units", type=int, default=4, help="how many concept-pure raw channels to test (4)")
    p.add_argument("--seeds", type=int_list, default=[1, 2, 3, 4], help="seeds (1,2,3,4)")
    p.add_argument("--variants", help="'|'-separated variant names from the standard list (default: all)")
    p.add_argument("--held-out", type=int, default=10,
                   help="further concept-pure features, never used to choose a default, for the three recipes (10)")
    p.add_argument("--prior-steps", type=int, default=50, help="sampling steps of the steering priors (50)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    p.set_defaults(func=cmd_ablate)
    return parser


def _positive(args: argparse.Namespace) -> None:
    if args.command in ("steer", "visualize", "atlas") and not args.units:
        raise LVOError("give --units, e.g. --units 12,305 (feature or channel indices)")
    for name in ("steps", "prior_steps", "batch_size", "k", "top_n", "eval_samples", "lvo_steps", "check_every"):
        value = getattr(args, name, None)
        if value is not None and value != "auto" and value <= 0:
            raise LVOError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "from_json", None):
            recorded = json.loads(Path(args.from_json).read_text())
            if recorded.get("command") != args.command:
                raise LVOError(f"{args.from_json} records a '{recorded.get('command')}' run, not '{args.command}'")
            out = args.out if "--out" in (argv or sys.argv[1:]) else recorded["args"]["out"]
            args = argparse.Namespace(**{**recorded["args"], "out": out, "func": args.func, "from_json": None,
                                         "resume": args.resume})
        _positive(args)
        return args.func(args)
    except LVOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
