"""Command line: ``python -m lvo_core <command> …`` (``--help`` lists the commands, ``<command> --help`` its flags,
grouped, with an example).

This module only parses: one ``*_args`` function per subcommand declares its flags (the regularizers' come from
:mod:`lvo_core.lvo.regularizers`) and :data:`COMMANDS` pairs it with the ``cmd_*`` of :mod:`lvo_core.commands` that
does the work; :func:`lvo_core.commands.boundary.run` runs it behind the error boundary (bad input: one line,
status 2; an interrupt: status 130).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import torch

from .analysis.steering import REFERENCE_SEEDS
from .commands import browse, data, demo, files, visualize
from .commands.boundary import ARG_ACTIONS, run
from .commands.setup import DEFAULT_HOOKPOINT
from .errors import LVOError
from .lvo import regularizers


DESCRIPTION = """See what a diffusion model has learned: pictures of SAE features and raw channels of a UNet block
(Latent Visualization by Optimization), with numbers that say how faithful they are.

Start here:  python -m lvo_core demo
  (the trained toy world that ships with the pack: about a minute on a laptop CPU, writes lvo_runs/demo/)

Models (--model): toy (trained, known concepts), tiny / tiny-sdxl / tiny-flux (random weights: plumbing checks
only), a local diffusers folder, or a single-file .safetensors checkpoint with --config. Nothing is downloaded."""

EPILOG = """typical research sequence on your own SD1.5 model:
  python -m lvo_core info      --model MODEL --sae SAE
  python -m lvo_core bank      --model MODEL --sae SAE --out lvo_runs/bank-sd15 --size 1000
  python -m lvo_core visualize --model MODEL --sae SAE --bank lvo_runs/bank-sd15 --units 1234,77
every command: python -m lvo_core COMMAND --help"""

# One example per command, shown under its --help (each runs as written on the shipped toy world).
EXAMPLES = {
    "demo": "python -m lvo_core demo --out lvo_runs/demo",
    "visualize": "python -m lvo_core visualize --model toy --units 319,14 --out lvo_runs/toy-vis",
    "bank": "python -m lvo_core bank --model toy --out lvo_runs/toy-bank --size 160 --units 319 --k 8",
    "search": "python -m lvo_core search --model toy --prompt \"red ring\" --out lvo_runs/toy-search",
    "page": "python -m lvo_core page --model toy --unit 319 --bank lvo_runs/toy-bank --out lvo_runs/toy-page",
    "analyze": "python -m lvo_core analyze --model toy --out lvo_runs/toy-activity.safetensors",
    "examples": "python -m lvo_core examples --model toy --unit 319 --out lvo_runs/toy-examples",
    "steer": "python -m lvo_core steer --model toy --units 319 --seeds 1,2 --out lvo_runs/toy-steer",
    "atlas": "python -m lvo_core atlas --model toy --units 0-31 --out lvo_runs/toy-atlas",
    "info": "python -m lvo_core info --model toy --sae toy",
    "convert": "python -m lvo_core convert path/to/ae.pt-folder lvo_runs/converted-sae",
    "ablate": "python -m lvo_core ablate --out lvo_runs/ablation",
    "label": "python -m lvo_core label --model toy --out lvo_runs/toy-labels",
}


class Parser(argparse.ArgumentParser):
    """argparse with the pack's error shape: one line naming the fix, status 2."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _integers(parser: str) -> Callable[[str], list[int]]:
    """An argparse type from one of :mod:`lvo_core.model.units`' parsers: ``12,305`` or ranges ``10-13``, as
    everywhere in the pack, with messages naming the field."""
    def read(text: str) -> list[int]:
        from .model import units

        try:
            return getattr(units, parser)(text)
        except LVOError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return read


int_list, seed_list, timestep_list = _integers("parse_units"), _integers("parse_seeds"), _integers("parse_timesteps")


def seed(text: str) -> int:
    """One seed: a non-negative 64-bit integer (what torch's generators take)."""
    values = seed_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"give one seed, got '{text}'")
    return values[0]


def either(word: str, parse: Callable[[str], object] = int_list) -> Callable[[str], object]:
    """A flag that takes a keyword (``all``, ``peaks``, ``auto``) or a parsed value."""
    return lambda text: word if text == word else parse(text)


def _model_args(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Declares the model flags in their own help group, and returns it for the units flags."""
    g = p.add_argument_group("model and units")
    g.add_argument("--model", default="tiny", help="toy (the trained toy world: start here), a local diffusers "
                   "folder, a .safetensors with --config, or tiny / tiny-sdxl / tiny-flux (default tiny: RANDOM "
                   "weights, for plumbing checks only)")
    g.add_argument("--config", help="local diffusers folder with the configs of a single-file checkpoint (e.g. "
                                    "a copy of the model's repository without weights; nothing is downloaded)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    g.add_argument("--sae", help="SAE folder/file (any supported format), or 'tiny'/'toy' (the default with "
                                 "--model tiny/toy)")
    g.add_argument("--raw", action="store_true", help="use raw channels of the block instead of SAE features")
    g.add_argument("--hookpoint", help=f"block to hook, diffusers or LDM name (default: the SAE's, else "
                                       f"{DEFAULT_HOOKPOINT}; `info --model M` lists them)")
    return g


def _generation_args(p: argparse.ArgumentParser) -> None:
    """Generating from a prompt set (``analyze`` and ``examples``)."""
    p.add_argument("--prompts", help="text file, one prompt per line (the tiny and toy models have built-in prompts)")
    p.add_argument("--steps", type=int, default=50, help="sampling steps per prompt (50)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (7.5)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first prompt; the next prompts count up")
    p.add_argument("--batch-size", type=int, default=4, help="prompts per batch (4)")


def _steer_args(p: argparse.ArgumentParser) -> None:
    p = p.add_argument_group("steering (the steer command and the paper/custom recipes' prior)")
    p.add_argument("--mode", default="add", choices=["add", "scale"], help="add the decoder direction / channel "
                   "constant, or scale the feature's code with the SAE error preserved")
    p.add_argument("--scale", type=float, help="strength = dataset max at t × scale (default 500 SAE, 50 raw)")
    p.add_argument("--strength", type=float, help="fixed strength (or factor in scale mode) instead")
    p.add_argument("--window", type=float, nargs=2, default=(0.0, 1.0), metavar=("START", "END"),
                   help="with a fixed strength and no analysis: steer within this fraction of sampling")
    p.add_argument("--prior-steps", type=int, default=50, help="sampling steps of the steered generation (50)")


def recipe_defaults(field: str) -> str:
    """``faithful 30, paper 100, …``: a setting's effective default under each recipe (help text)."""
    from .lvo.optimize import preset
    from .lvo.recipes import RECIPES

    values = {name: getattr(r.config, field) for name, r in RECIPES.items()}
    values["custom"] = getattr(preset("sae"), field)
    return ", ".join(f"{name} {value}" for name, value in values.items())


def _lvo_args(p: argparse.ArgumentParser) -> None:
    """The LVO settings shared by ``visualize`` and ``atlas``."""
    g = p.add_argument_group("recipe (what the pictures start from and how they are optimized)")
    g.add_argument("--recipe", choices=["faithful", "paper", "best", "custom"],
                   help="faithful (default: the unit's best sample-bank image, polished), paper (the reference), "
                        "best, or custom (built from the flags; implied by --prior or --preset)")
    g.add_argument("--bank", help="sample-bank folder to build, resume or reuse (default: OUT/bank); an existing "
                                  "bank is used as it is, whatever its size")
    g.add_argument("--bank-size", type=int, help="pool size: a new bank's (160), or the first N images of an "
                   "existing --bank (default: all of it; a larger N grows it)")
    g.add_argument("--select-t", type=either("peak", int), help="faithful: the selection timestep (200) or 'peak'")
    g.add_argument("--timesteps", type=either("peaks", timestep_list),
                   help="custom/paper/best: 'peaks' ({0} ∪ activity peaks; needs --analysis) or timesteps")
    g.add_argument("--prior", help="custom: 'steer' (default), 'random', or a priors.safetensors file")
    g.add_argument("--preset", choices=["sae", "raw"], help="custom: settings preset (default: by unit kind)")
    g.add_argument("--robustness", choices=["L0", "L1", "L2", "L3"], help="augmentation level (preset: L1)")
    g.add_argument("--steps", type=int, help=f"optimization steps (default by recipe: {recipe_defaults('steps')})")
    g.add_argument("--lr", type=float, help=f"learning rate (default by recipe: {recipe_defaults('lr')})")
    g.add_argument("--optimizer", choices=["adam", "adamw"], help="adamw (default, weight decay 0.01) or adam")
    g.add_argument("--seed", type=seed, help="seed of the augmentation draws (jitter, rotation, zoom; default 0) — "
                                            "not the pictures' starts, which --seeds sets")
    g.add_argument("--value", choices=["dense", "pre", "sparse"],
                   help="SAE objective: dense ReLU pre-activation (paper, custom), pre-ReLU (faithful, best), or the "
                        "sparse code")
    g.add_argument("--no-noise", action="store_true", help="ablation: no schedule-matched noise injection")
    g.add_argument("--no-augment", action="store_true", help="ablation: no jitter/rotation/zoom")
    g.add_argument("--minimize", action="store_true", help="minimize the unit instead")
    terms = p.add_argument_group("regularizers (each recipe sets its own; these override)")
    for flag in regularizers.flags():  # --tv-weight, --blur-sigma, --no-precondition, --no-penalties, …
        terms.add_argument(flag.option, **flag.argparse_options)
    p = p.add_argument_group("speed and display")
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
    g = _model_args(p)
    g.add_argument("--units", help=units_help, **units)
    g.add_argument("--seeds", type=seed_list, default=list(seeds),
                   help=f"one picture per unit and seed: the k-th seed starts from the unit's k-th best bank image "
                        f"(faithful) or from its own steering noise (paper) (default {','.join(map(str, seeds))})")
    g.add_argument("--analysis", help="activity analysis (`analyze`): peak timesteps, dataset max (pictures are "
                                      "then reported as a ratio to it), steering strengths")
    _steer_args(p)


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
    p.add_argument("--labels", help="label folder made by `label`: labels and scores in the atlas site")
    p.add_argument("--site-examples", type=int, default=4, help="top bank images per unit in the site (4)")
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
    p.add_argument("--timesteps", type=timestep_list, default=[200], help="timesteps to score every unit at (200)")
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
    p.add_argument("--text", help="…or a word: the features whose labels match it (needs --labels)")
    p.add_argument("--labels", help="label folder made by `label` (for --text)")
    p.add_argument("--out", default="lvo_runs/search", help="output folder (search.png, search.json)")


def page_args(p: argparse.ArgumentParser) -> None:
    g = _model_args(p)
    g.add_argument("--unit", type=int, required=True, help="feature or channel index")
    g.add_argument("--analysis", help="activity analysis (activity over timesteps, dataset examples; the toy world's "
                                      "ships with it)")
    g.add_argument("--bank", help="sample bank folder (histogram, density, top pool images)")
    g.add_argument("--run", action="append", help="a visualize output folder: its pictures of the unit and their "
                                                  "metrics (repeat to compare runs)")
    g.add_argument("--labels", help="label folder made by `label`: the unit's labels and their detection scores")
    p.add_argument("--bank-t", type=int, default=200, help="timestep the bank is scored at (200)")
    p.add_argument("--top", type=int, default=8, help="examples per section (8)")
    p.add_argument("--bins", type=int, default=20, help="histogram bins (20)")
    p.add_argument("--out", default="lvo_runs/page", help="output folder (feature_N.png, feature_N.json)")


def label_args(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p = p.add_argument_group("labelling")
    p.add_argument("--vocabulary", help="phrase file (one a line) or a shipped list: 'common', 'toy' (default: "
                                        "'toy' for --model toy, else 'common')")
    p.add_argument("--units", type=int_list, help="label only these units (default: all; the cost is the same)")
    p.add_argument("--timestep", type=int, default=200, help="timestep the generations are read at (200)")
    p.add_argument("--label-images", type=int, default=16, help="generations per phrase for the lift (16)")
    p.add_argument("--score-images", type=int, default=8, help="held-out generations per phrase for scores (8)")
    p.add_argument("--steps", type=int, default=25, help="DDIM steps per generation (25)")
    p.add_argument("--guidance", type=float, default=1.0, help="CFG scale of the generations (1: none)")
    p.add_argument("--top", type=int, default=5, help="labels kept per unit (5)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (64)")
    p.add_argument("--no-score", action="store_true", help="skip the held-out detection scores")
    p.add_argument("--show", type=int, default=10, help="units to print (10)")
    p.add_argument("--out", default="lvo_runs/labels", help="folder for labels.json and lift.safetensors")


def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="lvo_runs/demo", help="output folder (default: lvo_runs/demo)")
    p.add_argument("--units", type=int, default=6, help="how many concept-pure features to show (6)")
    p.add_argument("--lvo-steps", type=int, default=None,
                   help="optimization steps for every recipe (default: each recipe's own, paper 100, faithful 30)")


def ablate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="lvo_runs/ablation", help="output folder (ablation.md, ablation.json, sheets/)")
    p.add_argument("--units", type=int, default=10, help="how many concept-pure SAE features to test (10)")
    p.add_argument("--raw-units", type=int, default=4, help="how many concept-pure raw channels to test (4)")
    p.add_argument("--seeds", type=seed_list, default=[1, 2, 3, 4], help="seeds (1,2,3,4)")
    p.add_argument("--variants", help="'|'-separated variant names from the standard list (default: all)")
    p.add_argument("--held-out", type=int, default=10,
                   help="further concept-pure features, never used to choose a default, for the three recipes (10)")
    p.add_argument("--prior-steps", type=int, default=50, help="sampling steps of the steering priors (50)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")


# A subcommand is its name here with the function above declaring its flags, the ``cmd_*`` of lvo_core.commands
# doing the work (the first paragraph of its docstring is the help line) and an example in EXAMPLES. In the order a
# newcomer meets them.
Declare = Callable[[argparse.ArgumentParser], None]
COMMANDS: dict[str, tuple[Declare, Callable[..., int]]] = {
    "demo": (demo_args, demo.cmd_demo), "visualize": (visualize_args, visualize.cmd_visualize),
    "bank": (bank_args, data.cmd_bank), "search": (search_args, browse.cmd_search), "page": (page_args, browse.cmd_page),
    "analyze": (analyze_args, data.cmd_analyze), "examples": (examples_args, data.cmd_examples),
    "steer": (steer_args, visualize.cmd_steer), "atlas": (atlas_args, visualize.cmd_atlas),
    "info": (info_args, files.cmd_info), "label": (label_args, data.cmd_label),
    "convert": (convert_args, files.cmd_convert), "ablate": (ablate_args, demo.cmd_ablate),
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the regularizers' flags come from :mod:`lvo_core.lvo.regularizers`."""
    parser = Parser(prog="python -m lvo_core", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, title="commands",
                                metavar="COMMAND")
    for name, (declare, func) in COMMANDS.items():
        summary = " ".join(func.__doc__.split("\n\n")[0].split())
        declare(sub.add_parser(name, help=summary, description=summary, epilog=f"example:\n  {EXAMPLES[name]}",
                               formatter_class=argparse.RawDescriptionHelpFormatter))
        sub.choices[name].set_defaults(func=func)
        ARG_ACTIONS[name] = {a.dest: a for a in sub.choices[name]._actions if a.dest != "help"}
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, then run behind the error boundary (:func:`lvo_core.commands.boundary.run`): bad input is one line and
    status 2, an interrupt status 130, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(build_parser().parse_args(argv), argv)
