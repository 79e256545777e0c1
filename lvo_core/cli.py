"""Command line: ``python -m lvo_core <command> …`` (``--help`` lists the commands, ``<command> --help`` its flags).

Models: ``--model tiny`` (embedded, the default), ``toy`` (the trained toy world), a local diffusers folder, or a
single-file ``.safetensors`` checkpoint with ``--config``. Units are SAE features (``--sae``) or raw channels
(``--raw``).

This module only parses: one ``*_args`` function per subcommand declares its flags (the regularizers' come from
:mod:`lvo_core.lvo.regularizers`); :func:`lvo_core.commands.run` runs the command behind the error boundary (bad
input: one line, status 2; an interrupt: status 130) and the rest of :mod:`lvo_core.commands` does the work.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import torch

from . import commands
from .analysis.steering import REFERENCE_SEEDS
from .commands import DEFAULT_HOOKPOINT
from .errors import LVOError
from .lvo import regularizers


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


def seed(text: str) -> int:
    """One seed: a non-negative 64-bit integer (what torch's generators take)."""
    values = int_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"give one seed, got '{text}'")
    return values[0]


def either(word: str, parse: Callable[[str], object] = int_list) -> Callable[[str], object]:
    """A flag that takes a keyword (``all``, ``peaks``, ``auto``) or a parsed value."""
    return lambda text: word if text == word else parse(text)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny", help="tiny (default), tiny-sdxl, tiny-flux, toy (the trained toy "
                                                   "world), a local diffusers folder, or a .safetensors with --config")
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
    p.add_argument("--seed", type=seed, default=0, help="seed of the first prompt; the next prompts count up")
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
    p.add_argument("--bank-size", type=int, help="pool size: a new bank's (160), or the first N images of an "
                   "existing --bank (default: all of it; a larger N grows it)")
    p.add_argument("--select-t", type=either("peak", int), help="faithful: the selection timestep (200) or 'peak'")
    p.add_argument("--timesteps", type=either("peaks"),
                   help="custom/paper/best: 'peaks' ({0} ∪ activity peaks; needs --analysis) or timesteps")
    p.add_argument("--prior", help="custom: 'steer' (default), 'random', or a priors.safetensors file")
    p.add_argument("--preset", choices=["sae", "raw"], help="custom: settings preset (default: by unit kind)")
    p.add_argument("--robustness", choices=["L0", "L1", "L2", "L3"], help="augmentation level (preset: L1)")
    p.add_argument("--steps", type=int, help="optimization steps (100)")
    p.add_argument("--lr", type=float, help="learning rate (0.05)")
    p.add_argument("--optimizer", choices=["adam", "adamw"], help="adamw (default, weight decay 0.01) or adam")
    p.add_argument("--seed", type=seed, help="seed of the augmentation draws (0)")
    p.add_argument("--value", choices=["dense", "pre", "sparse"],
                   help="SAE objective: dense ReLU pre-activation (paper, custom), pre-ReLU (faithful, best), or the "
                        "sparse code")
    p.add_argument("--no-noise", action="store_true", help="ablation: no schedule-matched noise injection")
    p.add_argument("--no-augment", action="store_true", help="ablation: no jitter/rotation/zoom")
    for flag in regularizers.flags():  # --tv-weight, --blur-sigma, --no-precondition, --no-penalties, …
        p.add_argument(flag.option, **flag.argparse_options)
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
    p.add_argument("--seed", type=seed, default=0, help="seed for --prompt")
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


# A subcommand is its name here, a ``<name>_args`` function above declaring its flags, and ``cmd_<name>`` in
# lvo_core.commands doing the work (the first paragraph of its docstring is the help line).
SUBCOMMANDS = ("analyze", "steer", "visualize", "atlas", "examples", "bank", "search", "info", "convert", "demo",
               "ablate")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the regularizers' flags come from :mod:`lvo_core.lvo.regularizers`."""
    parser = Parser(prog="python -m lvo_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in SUBCOMMANDS:
        func = getattr(commands, f"cmd_{name}")
        globals()[f"{name}_args"](sub.add_parser(name, help=" ".join(func.__doc__.split("\n\n")[0].split())))
        sub.choices[name].set_defaults(func=func)
        commands.ARG_ACTIONS[name] = {a.dest: a for a in sub.choices[name]._actions if a.dest != "help"}
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, then run behind the error boundary (:func:`lvo_core.commands.run`): bad input is one line and status
    2, an interrupt status 130, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return commands.run(build_parser().parse_args(argv), argv)
