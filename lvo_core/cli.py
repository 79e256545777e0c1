"""Command line: ``python -m lvo_core {demo,info,convert} …``.

Errors from bad input (:class:`~lvo_core.errors.LVOError`) print one line naming what to fix and exit with status
2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .errors import LVOError


def _load_unet(model: str | None):
    """A UNet from a local diffusers folder (``unet/`` subfolder or the UNet folder itself), or the tiny default."""
    if model is None:
        from .tiny import tiny_unet

        return tiny_unet()
    from diffusers import UNet2DConditionModel

    path = Path(model)
    if not path.is_dir():
        raise LVOError(f"model folder {path} does not exist; give a local diffusers folder (with unet/config.json)")
    sub = "unet" if (path / "unet" / "config.json").is_file() else None
    if sub is None and not (path / "config.json").is_file():
        raise LVOError(f"{path} has neither unet/config.json nor config.json; it is not a diffusers model folder")
    return UNet2DConditionModel.from_pretrained(str(path), subfolder=sub, local_files_only=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.out, steps=args.steps, num_units=args.units)
    print(f"activity analysis of {len(summary['prompts'])} prompts × {summary['steps']} steps at "
          f"{summary['hookpoint']} ({summary['seconds']} s)")
    print(f"{'feature':>8}  {'peaks':<18} {'active ts':>9}  {'max at peak':>11}  top example")
    for unit, info in summary["units"].items():
        top = info["top_examples"][0]
        print(f"{unit:>8}  {str(info['peaks']):<18} {info['active_timesteps']:>9}  "
              f"{info['dataset_max_at_peak']:>11.4f}  {top['prompt']} ({top['score']:.4f})")
    print(f"wrote {args.out}/activity.png, examples_<feature>.png, activity.safetensors, summary.json")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .hookpoints import check_sae_fits, list_hookpoints, resolve_hookpoint
    from .sae import describe, load_sae

    report: dict = {}
    if args.sae:
        report["sae"] = describe(args.sae)
    if args.model or not args.sae:
        unet = _load_unet(args.model)
        report["hookpoints"] = [{"diffusers": p.diffusers_name, "ldm": p.ldm_name, "channels": p.channels,
                                 "kind": p.kind} for p in list_hookpoints(unet)]
        if args.sae:
            sae = load_sae(args.sae, hookpoint=args.hookpoint)
            point = resolve_hookpoint(unet, args.hookpoint or sae.hookpoint or "")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lvo_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="activity analysis + dataset examples on the embedded tiny model")
    demo.add_argument("--out", default="lvo_runs/demo", help="output folder (default: lvo_runs/demo)")
    demo.add_argument("--steps", type=int, default=20, help="sampling steps per generation (default 20)")
    demo.add_argument("--units", type=int, default=4, help="how many features to report (those whose activity varies most over time)")
    demo.set_defaults(func=cmd_demo)
    info = sub.add_parser("info", help="hookable blocks of a model, SAE summary, and whether they fit")
    info.add_argument("--model", help="local diffusers model folder (default: the tiny embedded model)")
    info.add_argument("--sae", help="SAE folder or file (any supported format)")
    info.add_argument("--hookpoint", help="hookpoint to check the SAE against / choose in a multi-hookpoint root")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)
    convert = sub.add_parser("convert", help="convert an SAE (e.g. a pickled ae.pt/state_dict.pth) to safetensors")
    convert.add_argument("source", help="SAE folder or file")
    convert.add_argument("out", help="output folder")
    convert.add_argument("--k", type=int, help="number of active latents, if the source does not say")
    convert.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "steps", 1) is not None and getattr(args, "steps", 1) <= 0:
        print("error: --steps must be a positive integer", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except LVOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
