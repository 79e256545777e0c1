"""Command line: ``python -m lvo_core {analyze,steer,visualize,atlas,examples,info,convert,demo,ablate} …``.

Models: ``--model tiny`` (the embedded tiny model, default), a local diffusers folder, or a single-file
``.safetensors`` checkpoint with ``--config`` (a local diffusers folder). Units are SAE features (``--sae``; ``tiny``
is the embedded random SAE) or raw channels (``--raw``). Errors from bad input print one line naming what to fix
and exit with status 2; an interrupt (Ctrl-C, SIGTERM) stops the run, keeps what it finished and exits with 130.

This module only parses: one ``*_args`` function per subcommand declares its flags, and :mod:`lvo_core.commands`
does the work (the run record lives in :mod:`lvo_core.runs.record`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import torch

from . import commands
from .analysis.steering import REFERENCE_SEEDS
from .commands import DEFAULT_HOOKPOINT, check_settings
from .errors import LVOError
from .runs.record import RunInterrupted, load_result, sigterm_as_interrupt


class Parser(argparse.ArgumentParser):
    """argparse with the pack's error shape: one line naming the fix, status 2."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def int_list(text: str) -> list[int]:
    """``12,305`` or ranges ``10-13``, as everywhere in the pack."""
    from .model.units import parse_units

    try:
        return parse_units(text)
    except LVOError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def either(word: str, parse: Callable[[str], object] = int_list) -> Callable[[str], object]:
    """A flag that takes a keyword (``all``, ``peaks``, ``auto``) or a parsed value."""
    return lambda text: word if text == word else parse(text)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny", help="'tiny' (default), 'tiny-flux' (a tiny FLUX.1-dev-shaped DiT), "
                                                   "'toy' (the trained toy world), a local diffusers folder (UNet "
                                                   "or FLUX), or a .safetensors checkpoint with --config")
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
    p.add_argument("--recipe", choices=["faithful", "paper", "best", "custom"],
                   help="faithful (default: the unit's best sample-bank image, polished), paper (the reference), "
                        "best, or custom (built from the flags; implied by --prior or --preset)")
    p.add_argument("--bank", help="sample-bank folder to build, resume or reuse (default: OUT/bank)")
    p.add_argument("--bank-size", type=int, default=160, help="pool size of a new sample bank (160)")
    p.add_argument("--select-t", type=either("peak", int), help="faithful: the selection timestep (200) or 'peak'")
    p.add_argument("--timesteps", type=either("peaks"),
                   help="custom/paper/best: 'peaks' ({0} ∪ activity peaks; needs --analysis) or timesteps")
    p.add_argument("--prior", help="custom: 'steer' (default), 'random', or a priors.safetensors file")
    p.add_argument("--preset", choices=["sae", "raw"], help="custom: settings preset (default: by unit kind)")
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
    p.add_argument("--value", choices=["dense", "pre", "sparse"],
                   help="SAE objective: dense ReLU pre-activation (paper, custom), pre-ReLU (faithful, best), or the "
                        "sparse code")
    p.add_argument("--no-noise", action="store_true", help="ablation: no schedule-matched noise injection")
    p.add_argument("--no-precondition", action="store_true", help="ablation: no spectral preconditioning")
    p.add_argument("--no-augment", action="store_true", help="ablation: no jitter/rotation/zoom")
    p.add_argument("--no-penalties", action="store_true", help="ablation: no TV, range or moment penalty")
    p.add_argument("--minimize", action="store_true", help="minimize the unit instead")
    p.add_argument("--batch-size", type=either("auto", int), default=20, help="rows optimized together (20), or 'auto' "
                   "(fits free memory; halves on out-of-memory either way)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="fp32",
                   help="UNet precision under autocast; the latent stays fp32 (auto: bf16 on CUDA)")
    p.add_argument("--check-every", type=int, default=1, help="read the NaN check back every N steps (fewer "
                   "device syncs; a bad step rolls back to the last check)")
    p.add_argument("--display", default="per_image", choices=["per_image", "batch"], help="image scaling")
    p.add_argument("--eval-samples", type=int, default=4, help="noise draws for the reported metrics (4)")


def _units_args(p: argparse.ArgumentParser, seeds: Sequence[int], units_help: str, **units: object) -> None:
    """Model, steering, units, seeds and analysis: what ``steer``, ``visualize`` and ``atlas`` share."""
    _model_args(p)
    _steer_args(p)
    p.add_argument("--units", help=units_help, **units)
    p.add_argument("--seeds", type=int_list, default=list(seeds),
                   help=f"comma-separated seeds (default {','.join(map(str, seeds))})")
    p.add_argument("--analysis", help="activity analysis: peak timesteps, dataset max, steering strengths")


def analyze_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    _generation_args(p)
    p.add_argument("--top-n", type=int, default=20, help="a unit is active when among the top N (20)")
    p.add_argument("--out", default="lvo_runs/activity.safetensors", help="analysis file to write")


def steer_args(p: argparse.ArgumentParser) -> None:
    _units_args(p, REFERENCE_SEEDS, "comma-separated feature or channel indices", type=int_list, required=True)
    p.add_argument("--out", default="lvo_runs/steer", help="output folder")


def visualize_args(p: argparse.ArgumentParser) -> None:
    _units_args(p, REFERENCE_SEEDS, "comma-separated feature or channel indices (required)", type=int_list)
    _lvo_args(p)
    p.add_argument("--out", default="lvo_runs/visualize", help="output folder")
    p.add_argument("--from-json", help="rerun a previous result.json with its recorded arguments")
    p.add_argument("--resume", action="store_true", help="skip visualizations an earlier run with the same "
                   "settings finished in --out; redo unfinished ones")


def atlas_args(p: argparse.ArgumentParser) -> None:
    _units_args(p, [1024], "'all' (every feature/channel) or indices/ranges like '0-1023'", type=either("all"),
                default="all")
    _lvo_args(p)
    p.add_argument("--chunk-size", type=int, default=16, help="units per unit of work a rank claims (16)")
    p.add_argument("--out", default="lvo_runs/atlas", help="shared output folder (all ranks write here)")
    p.set_defaults(resume=True, from_json=None)


def examples_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--unit", type=int, required=True, help="feature or channel index")
    p.add_argument("--timestep", type=int, help="timestep (default: the unit's first peak, else 500)")
    p.add_argument("--analysis", help="activity analysis (for the default timestep)")
    _generation_args(p)
    p.add_argument("--k", type=int, default=8, help="how many examples to keep (8)")
    p.add_argument("--by", default="mean", choices=["mean", "max"], help="rank by spatial mean or max")
    p.add_argument("--out", default="lvo_runs/examples", help="output folder")


def info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="'tiny', 'tiny-flux', a local diffusers folder, or a checkpoint with --config")
    p.add_argument("--config", help="local diffusers folder for a single-file checkpoint")
    p.add_argument("--sae", help="SAE folder or file (any supported format)")
    p.add_argument("--hookpoint", help="hookpoint to check the SAE against / choose in a multi-hookpoint root")
    p.add_argument("--json", action="store_true", help="print JSON")


def convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="SAE folder or file")
    p.add_argument("out", help="output folder")
    p.add_argument("--k", type=int, help="number of active latents, if the source does not say")


def bank_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--out", default="lvo_runs/bank", help="bank folder: built, resumed, or scored further")
    p.add_argument("--size", type=int, default=160, help="pool size (160); pool image i comes from seed 2^20 + i")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps per sample (25)")
    p.add_argument("--timesteps", type=int_list, default=[200], help="timesteps to score every unit at (200)")
    p.add_argument("--units", type=int_list, help="also draw these units' top pool images (model-generated "
                                                   "dataset examples) to examples.png")
    p.add_argument("--k", type=int, default=8, help="examples per unit (8)")


def search_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--image", action="append", help="image file to search (repeat for several)")
    p.add_argument("--prompt", action="append", help="…or a prompt: its generation is searched (repeatable)")
    p.add_argument("--timestep", type=int, default=200, help="timestep the features are read at (200)")
    p.add_argument("--top", type=int, default=10, help="features per image (10)")
    p.add_argument("--by", default="auto", choices=["auto", "lift", "ratio", "activation"],
                   help="rank by lift over the bank's samples (auto with --bank), ratio to dataset max (auto with "
                        "--analysis) or raw activation")
    p.add_argument("--bank", help="sample bank folder (its pool is the baseline for 'lift')")
    p.add_argument("--analysis", help="activity analysis (dataset max and activity peak of each hit)")
    p.add_argument("--steps", type=int, default=25, help="sampling steps for --prompt (25)")
    p.add_argument("--guidance", type=float, default=7.5, help="CFG scale for --prompt (7.5)")
    p.add_argument("--seed", type=int, default=0, help="seed for --prompt")
    p.add_argument("--out", default="lvo_runs/search", help="output folder (search.png, search.json)")


def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="lvo_runs/demo", help="output folder (default: lvo_runs/demo)")
    p.add_argument("--units", type=int, default=6, help="how many concept-pure features to show (6)")
    p.add_argument("--lvo-steps", type=int, default=None,
                   help="optimization steps for every recipe (default: each recipe's own, paper 100, faithful 30)")


def ablate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="lvo_runs/ablation", help="output folder (ablation.md, ablation.json, sheets/)")
    p.add_argument("--units", type=int, default=10, help="how many concept-pure SAE features to test (10)")
    p.add_argument("--raw-units", type=int, default=4, help="how many concept-pure raw channels to test (4)")
    p.add_argument("--seeds", type=int_list, default=[1, 2, 3, 4], help="seeds (1,2,3,4)")
    p.add_argument("--variants", help="'|'-separated variant names from the standard list (default: all)")
    p.add_argument("--held-out", type=int, default=10,
                   help="further concept-pure features, never used to choose a default, for the three recipes (10)")
    p.add_argument("--prior-steps", type=int, default=50, help="sampling steps of the steering priors (50)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")


# name, help, flags, command: a new subcommand is an entry here plus its *_args function
SUBCOMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable]] = [
    ("analyze", "time-step activity analysis over a prompt set", analyze_args, commands.cmd_analyze),
    ("steer", "steered generations: the LVO priors of some units", steer_args, commands.cmd_steer),
    ("visualize", "LVO: optimize latents so that units fire, decode, measure", visualize_args, commands.cmd_visualize),
    ("atlas", "LVO for many units (all of an SAE), resumable, on 1 or N processes (torchrun)", atlas_args,
     commands.cmd_atlas),
    ("examples", "top-activating generations of a unit, ranked, with heatmaps", examples_args, commands.cmd_examples),
    ("bank", "the sample bank: the model's own samples, scored for every unit (faithful's starts)", bank_args,
     commands.cmd_bank),
    ("search", "which SAE features an image (or a prompt's generation) drives, and where", search_args,
     commands.cmd_search),
    ("info", "hookable blocks of a model, SAE summary, and whether they fit", info_args, commands.cmd_info),
    ("convert", "convert an SAE (e.g. a pickled ae.pt/state_dict.pth) to safetensors", convert_args,
     commands.cmd_convert),
    ("demo", "the whole pipeline on the shipped toy world, with faithfulness metrics", demo_args, commands.cmd_demo),
    ("ablate", "paper, best and faithful, each part of faithful changed, raw channels, held-out features: one table",
     ablate_args, commands.cmd_ablate),
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m lvo_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, help_text, add_args, func in SUBCOMMANDS:
        add_args(sub.add_parser(name, help=help_text))
        sub.choices[name].set_defaults(func=func)
    return parser


def _from_json(args: argparse.Namespace, argv: Sequence[str]) -> argparse.Namespace:
    """The arguments a result.json recorded (flags it predates keep today's defaults); ``--out`` may move it."""
    recorded = load_result(args.from_json)
    if recorded.get("command") != args.command:
        raise LVOError(f"{args.from_json} records a '{recorded.get('command')}' run, not '{args.command}'")
    out = args.out if "--out" in argv else recorded["args"]["out"]
    return argparse.Namespace(**{**vars(args), **recorded["args"], "out": out, "func": args.func,
                                 "from_json": None, "resume": args.resume})


def main(argv: Sequence[str] | None = None) -> int:
    """The error boundary: bad input is one line and status 2, an interrupt status 130, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():  # torchrun stops workers with SIGTERM: they end as cleanly as on Ctrl-C
            if getattr(args, "from_json", None):
                args = _from_json(args, argv)
            return args.func(check_settings(args))
    except LVOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        said = str(exc) if isinstance(exc, RunInterrupted) else "what finished is saved"
        print(f"interrupted: {said}; rerun the same command{' with --resume' * (args.command == 'visualize')} to "
              f"finish", file=sys.stderr)
        return 130
