"""What each command of ``python -m lvo_core`` does, as library calls over parsed settings.

Each ``cmd_*`` takes the settings as attributes (an ``argparse.Namespace`` from :mod:`lvo_core.cli`, or a
``types.SimpleNamespace`` from Python), writes its files, prints what it did and returns the exit status.
Bad input raises :class:`~lvo_core.errors.LVOError`; the CLI turns it into one line and status 2.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import ActivityError, LVOError
from .fileio import ensure_folder
from .progress import Printer, ProgressFn, StepFn, stage

DEFAULT_HOOKPOINT = "up_blocks.1.attentions.1"
TINY_PROMPTS = ["red circle", "blue square", "green triangle", "yellow ring", "red stripes", "blue circle",
                "green square", "white ring"]
NOT_RECORDED = ("func", "from_json", "resume")
BANK_SAMPLING = "bank: sampling (images × denoising steps)"
BANK_SCORING = "bank: scoring (images × noise draws)"
VISUALIZE = "visualize (rows × steps, then measure and decode)"
ARG_ACTIONS: dict[str, dict[str, Any]] = {}  # command → {dest: argparse action}, filled by lvo_core.cli


_CONSOLE: list = []


def console() -> ProgressFn:
    """The command line's progress printer on the current stderr (one per stream, so every line shares it)."""
    if not _CONSOLE or _CONSOLE[0].stream is not sys.stderr:
        _CONSOLE[:] = [Printer(sys.stderr)]
    return _CONSOLE[0]


def Progress(label: str) -> StepFn:
    """``on_progress(done, total)`` drawn on stderr under ``label``, with elapsed time and ETA."""
    return stage(console(), label)


def preload_diffusers() -> None:
    """Import diffusers now, under the start line that promised it, so the first phase line is not followed by
    seconds of silent importing."""
    import diffusers  # noqa: F401


def recorded_args(s: Any) -> dict[str, Any]:
    """The settings as written into result files (enough to rerun with ``--from-json``)."""
    return {k: v for k, v in vars(s).items() if k not in NOT_RECORDED}


def check_settings(s: Any) -> Any:
    """Refuse missing units and non-positive counts before anything loads."""
    if s.command in ("steer", "visualize", "atlas") and not s.units:
        raise LVOError("give --units, e.g. --units 12,305 (feature or channel indices)")
    counts = ["steps", "prior_steps", "batch_size", "k", "top_n", "eval_samples", "lvo_steps", "check_every",
              "bank_size", "chunk_size", "size", "top"]
    if s.command in ("demo", "ablate"):
        counts.append("units")  # here a count of concept-pure features, not indices
    for name in counts:
        value = getattr(s, name, None)
        if value is not None and value != "auto" and not isinstance(value, list) and value <= 0:
            raise LVOError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if s.command == "bank" and s.units and s.k > s.size:
        raise LVOError(f"--k {s.k} asks for more examples than the bank holds (--size {s.size}); lower --k or raise "
                       f"--size")
    if getattr(s, "device", None) is not None:
        check_device(s.device)
    check_out(s)
    return s


def check_units(model, hookpoint: str, units: Sequence[int], sae) -> None:
    """Unit indices, the SAE's width and the hookpoint checked against the model before any sampling (a bad
    index must not cost a bank build first)."""
    from .model.units import make_unit_spec

    make_unit_spec(model.denoiser, hookpoint, units, sae)


FILE_OUTPUTS = ("analyze",)  # commands whose --out is one file; the others write a folder


def check_out(s: Any) -> None:
    """Refuse an ``--out`` of the wrong kind before any work: a folder or special file where a file goes, a file
    or special file where a folder goes (nothing is ever written over them)."""
    from .fileio import OutputPathError, check_file_target

    out = getattr(s, "out", None)
    if not isinstance(out, str) or not out:
        return
    path = Path(out)
    if s.command in FILE_OUTPUTS:
        check_file_target(path)
    elif (path.exists() or path.is_symlink()) and not path.is_dir():
        raise OutputPathError(f"--out {out} exists and is not a folder; {s.command} writes a folder of files there: "
                              f"choose another --out")


def check_device(name: str) -> torch.device:
    """The torch device ``name``, refused at once when it is malformed or not on this machine (``cuda:7`` on a
    machine with one GPU), instead of a driver traceback after the model loaded."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise LVOError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:0, mps, …)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise LVOError(f"--device {name}: this machine has no CUDA device (torch {torch.__version__}); use "
                           f"--device cpu")
        if device.index is not None and device.index >= count:
            raise LVOError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise LVOError(f"--device {name}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise LVOError(f"--device {name}: use cpu, cuda[:N] or mps")
    return device


def run(s: Any, argv: Sequence[str] = ()) -> int:
    """Run ``s.func`` (a ``cmd_*``) behind the CLI's error boundary: bad input is one line on stderr and status 2,
    an interrupt (Ctrl-C, or SIGTERM, as torchrun stops workers) status 130, never a traceback. With
    ``s.from_json`` the recorded run's settings come back first (``--out`` in ``argv`` moves it)."""
    from .runs.record import RunInterrupted, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            if getattr(s, "from_json", None):
                s = rerun_settings(s, argv)
            status = s.func(check_settings(s))
            if getattr(s, "model", None) in tiny_models() and status == 0:  # last, where a reader looks
                print(f"note: --model {s.model} has random weights (a stand-in for checking the plumbing): its "
                      f"pictures are noise. For a trained model with known concepts use --model toy; for SD give "
                      f"a local folder.", file=sys.stderr)
            return status
    except LVOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        said = str(exc) if isinstance(exc, RunInterrupted) else "what finished is saved"
        print(f"interrupted: {said}; rerun the same command{' with --resume' * (s.command == 'visualize')} to "
              f"finish", file=sys.stderr)
        return 130


def rerun_settings(s: Any, argv: Sequence[str]) -> Any:
    """The settings a result.json recorded (flags it predates keep today's defaults); ``--out`` may move it."""
    from .runs.record import load_result

    recorded = load_result(s.from_json)
    if recorded.get("command") != s.command:
        raise LVOError(f"{s.from_json} records a '{recorded.get('command')}' run, not '{s.command}'")
    args = recorded.get("args")
    if not isinstance(args, dict):
        raise LVOError(f"{s.from_json} records no arguments ('args'); give the result.json of an earlier run")
    known = ARG_ACTIONS.get(s.command, {})
    args = {k: v for k, v in args.items() if k in known and k not in ("out", *NOT_RECORDED)}
    for key, value in args.items():
        check_recorded(s.from_json, key, value, known[key])
    # where files go is this command line's choice (--out, or the command's default), never the JSON's
    return type(s)(**{**vars(s), **args, "func": s.func, "from_json": None, "resume": s.resume})


def check_recorded(path: str, key: str, value: Any, action: Any) -> None:
    """A recorded argument has the type its flag parses to (a result.json from elsewhere may say anything)."""
    flag = "--" + key.replace("_", "-")

    def bad(want: str) -> LVOError:
        return LVOError(f"{path}: {flag} is recorded as {value!r}, expected {want}; fix or remove it in the JSON")

    def number(v: Any, kind: type) -> bool:
        return isinstance(v, kind if kind is not float else (int, float)) and not isinstance(v, bool)

    if value is None:
        if action.default is not None:
            raise bad(f"a value (default {action.default!r})")
        return
    if action.nargs == 0:
        if not isinstance(value, bool):
            raise bad("true or false")
        return
    if action.choices is not None and value not in action.choices:
        raise bad(f"one of {', '.join(map(str, action.choices))}")
    if isinstance(action.nargs, int):
        if not isinstance(value, list) or len(value) != action.nargs or not all(number(v, float) for v in value):
            raise bad(f"a list of {action.nargs} numbers")
        return
    parse = action.type
    if parse is int:
        if not number(value, int):
            raise bad("an integer")
    elif parse is float:
        if not number(value, float):
            raise bad("a number")
    elif parse is None:
        if not isinstance(value, str):
            raise bad("a string")
    else:  # a unit list, or a keyword such as 'all' / 'peaks' / 'auto': re-parsed from its text form
        if isinstance(value, list) and all(number(v, int) for v in value):
            text = ",".join(map(str, value))
        elif isinstance(value, str) or number(value, int):
            text = str(value)
        else:
            raise bad("a list of integers or a keyword")
        try:
            parse(text)
        except Exception as exc:  # argparse types raise ArgumentTypeError / ValueError
            raise bad(f"a value its flag accepts ({exc})") from None


def read_prompts(path: str | None, model_source: str) -> list[str]:
    if path is None:
        if model_source in tiny_models():
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


def load_named_model(spec: str, **kwargs: Any):
    """``toy`` (the shipped toy world) or anything :func:`~lvo_core.model.loading.load_model` takes."""
    if spec == "toy":
        from .toy import load_toy_model

        return load_toy_model(device=kwargs.get("device", "cpu"))
    from .model.loading import load_model

    return load_model(spec, **kwargs)


def tiny_models() -> tuple[str, ...]:
    """The tiny random models of the registered model families (built in code; each with its own random SAE)."""
    from .model.families import tiny_names

    return tiny_names()


def tiny_sae(model_source: str):
    """The random SAE that goes with a tiny model (its family's: each says where it reads)."""
    from .model.families import tiny_family

    return tiny_family(model_source).tiny_sae()


def setup(s: Any):
    """Model, SAE (None for raw units) and hookpoint name from the common settings, the SAE's width checked
    against the block (naming the blocks that would fit)."""
    from .hookpoints import check_sae_fits, resolve_hookpoint
    from .sae import load_sae

    if s.raw and s.sae:
        raise LVOError("give either --sae (SAE features) or --raw (raw channels), not both")
    sae = None
    tiny = tiny_models()
    spec = None if s.raw else s.sae or (s.model if s.model in (*tiny, "toy") else None)
    if spec is not None:  # the SAE first: a feature index out of range is refused before the model (and diffusers)
        sae = tiny_sae(spec) if spec in tiny else load_sae(sae_path(spec), hookpoint=s.hookpoint)
        sae = sae.to(device=s.device, dtype=torch.float32)
        named = [s.unit] if getattr(s, "unit", None) is not None else getattr(s, "units", None)
        if isinstance(named, list) and named:
            sae.check_features(named)
    model = load_named_model(s.model, config=s.config, device=s.device)
    if not s.raw and sae is None:
        raise LVOError("give --sae PATH for SAE features, or --raw for raw channels")
    hookpoint = s.hookpoint or (sae.hookpoint if sae is not None and sae.hookpoint
                                else default_hookpoint(model.denoiser))
    if sae is not None:
        check_sae_fits(sae.d_in, resolve_hookpoint(model.denoiser, hookpoint), model.denoiser)
    return model, sae, hookpoint


def sae_path(spec: str) -> str:
    """``--sae toy`` is the toy world's shipped SAE; anything else is a path."""
    if spec == "toy":
        from .toy import SAE_PATH

        return str(SAE_PATH)
    return spec


def default_hookpoint(denoiser) -> str:
    """The block its family hooks by default (SD's ``up_blocks.1.attentions.1``, FLUX's ``transformer_blocks.18``)."""
    from .model.families import family_of

    return family_of(denoiser).default_hookpoint(denoiser)


def load_analysis(path: str | None, model: Any = None, sae: Any = None, hookpoint: str | None = None):
    """The activity analysis in ``path``; without one, the toy world's shipped analysis when ``model`` is the toy
    world and it was made for this block and these units (so toy runs report ratios to the dataset max)."""
    from .analysis.activity import ActivityAnalysis

    if path is None:
        return toy_analysis(model, sae, hookpoint) if model is not None else None
    if not Path(path).is_file():
        raise LVOError(f"activity analysis {path} does not exist; create it with `python -m lvo_core analyze`")
    return ActivityAnalysis.load(path)


def toy_analysis(model: Any, sae: Any, hookpoint: str | None):
    """The toy world's shipped activity analysis of ``sae``'s features (or of the raw channels when ``sae`` is
    None) at ``hookpoint``; None for any other model, block or SAE."""
    from .analysis.activity import ActivityAnalysis
    from .toy import ANALYSIS, RAW_ANALYSIS

    path = ANALYSIS if sae is not None else RAW_ANALYSIS
    if getattr(model, "source", None) != "toy" or not path.is_file():
        return None
    analysis = ActivityAnalysis.load(path)
    try:
        analysis.check_matches(hookpoint or DEFAULT_HOOKPOINT, sae)
    except ActivityError:
        return None
    print(f"using the toy world's shipped activity analysis ({path.name}); give --analysis to use another",
          file=sys.stderr)
    return analysis


def backend_for(model, hookpoint: str, sae=None):
    """A backend on the model's hooked block (its family's), reading there what ``sae`` was trained on."""
    from .model.families import family_of

    return family_of(model.denoiser).backend(model, hookpoint, reads=sae.input_kind if sae is not None else "output")


def priors_from_file(path: str):
    """A prior ``(units, seeds) -> latents`` read from ``steer``'s ``priors.safetensors``."""
    import json

    from safetensors import safe_open

    from .sae.formats import read_safetensors

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


def steer_prior(model, sae, hookpoint: str, analysis, s: Any):
    """The steered-generation prior with the ``--mode/--scale/--strength/--window/--prior-steps`` settings."""
    from .analysis.steering import steer

    backend = backend_for(model, hookpoint)

    def prior(units: list[int], seeds: list[int]) -> torch.Tensor:
        progress = Progress(f"steer {len(units)} rows")
        return steer(backend, units, seeds, sae=sae, analysis=analysis,
                     mode=s.mode, scale=s.scale, strength=s.strength, window=tuple(s.window), steps=s.prior_steps,
                     on_step=lambda i, n: progress(i + 1, n))
    prior.label = "steer"
    return prior


def make_prior(s: Any, model, sae, hookpoint: str, analysis):
    if s.prior == "random":
        return "random"
    if s.prior == "steer":
        return steer_prior(model, sae, hookpoint, analysis, s)
    if not Path(s.prior).is_file():
        raise LVOError(f"--prior {s.prior}: give 'steer', 'random' or an existing priors.safetensors file")
    return priors_from_file(s.prior)


def lvo_config(s: Any, kind: str, base: Any = None):
    """The LVO config from a preset (or a recipe's ``base`` config) and the flags that override it."""
    from .lvo.optimize import auto_precision, preset
    from .lvo.regularizers import settings_from_flags
    from .lvo.transforms import ROBUSTNESS_LEVELS

    if base is None:
        config = preset(s.preset or kind, robustness=s.robustness)
    else:
        config = base if s.robustness is None else replace(base, augment=ROBUSTNESS_LEVELS[s.robustness])
    overrides: dict[str, Any] = {"precision": auto_precision(s.device) if s.precision == "auto" else s.precision,
                                 "check_every": s.check_every}
    for name in ("steps", "lr", "optimizer", "seed"):
        if getattr(s, name) is not None:
            overrides[name] = getattr(s, name)
    overrides.update(settings_from_flags(vars(s)))  # the regularizers' flags: --tv-weight, --no-penalties, …
    if s.no_noise:
        overrides["noise"] = False
    if s.no_augment:
        overrides["augment"] = ROBUSTNESS_LEVELS["L0"]
    if s.minimize:
        overrides["maximize"] = False
    return replace(config, **overrides)


def chosen_recipe(s: Any) -> str:
    """``--recipe``, or by default ``faithful`` — unless ``--prior`` or ``--preset`` describe a hand-built run."""
    if s.recipe:
        return s.recipe
    return "custom" if s.prior is not None or s.preset is not None else "faithful"


def bank_for(s: Any, backend, sae, units: list[int], variant, analysis, cluster: Any = None):
    """The sample bank in ``--bank`` (default ``<out>/bank``): built or resumed, and scored at the units' selection
    timesteps, by one process (rank 0 under torchrun; the others wait and load it). A bank that is there is used
    as it is: all of it, or its first ``--bank-size`` images when that is smaller (a larger one grows it); its
    sampler settings are its own, and only another model or latent size is refused, before any work."""
    from .analysis.bank import BankSettings, SampleBank, build_bank, read_settings
    from .analysis.selection import selection_timesteps

    folder = Path(s.bank) if s.bank else Path(s.out) / "bank"
    have = read_settings(folder)
    settings = replace(have or BankSettings(), size=s.bank_size or (have or BankSettings()).size)
    if cluster is None or cluster.rank == 0:
        bank = build_bank(backend, settings, sae=sae, out=folder, on_progress=Progress(BANK_SAMPLING))
        bank.check_matches(backend, sae)
        timesteps, _ = selection_timesteps(units, variant.select_t, analysis, variant.fallback_t)
        bank.ensure_scores(backend, sae, sorted(set(timesteps.values())), on_progress=Progress(BANK_SCORING))
    if cluster is not None:
        cluster.barrier()
    bank = SampleBank.load(folder)
    bank.check_matches(backend, sae)
    return bank.prefix(s.bank_size) if s.bank_size and s.bank_size < bank.size else bank


def _lvo_setup(s: Any, cluster: Any = None):
    """What ``visualize`` and ``atlas`` run: ``(backend, visualize kwargs, info, fingerprint settings, units)``
    under a named recipe (``faithful`` unless the flags describe a hand-built run), its flags overriding its
    settings; ``--units all`` becomes every feature or channel."""
    from .lvo.recipes import recipe, recipe_start

    model, sae, hookpoint = setup(s)
    if s.units != "all":
        check_units(model, hookpoint, s.units, sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    kind = "sae" if sae is not None else "raw"
    backend = backend_for(model, hookpoint, sae)
    count = sae.d_sae if sae is not None else backend.hookpoint.channels
    todo = list(range(count)) if s.units == "all" else list(s.units)
    name = chosen_recipe(s)
    settings = recorded_args(s)
    info = {"command": s.command, "args": dict(settings), "hookpoint": hookpoint, "model": model.source,
            "sae": None if sae is None else sae.summary(), "recipe": name}
    common = dict(sae=sae, analysis=analysis, seeds=s.seeds, batch_size=s.batch_size, display=s.display,
                  eval_samples=s.eval_samples)
    if name == "custom":
        kwargs = dict(common, timesteps=s.timesteps or "peaks", value=s.value or "dense",
                      prior=make_prior(replace_prior(s), model, sae, hookpoint, analysis), config=lvo_config(s, kind))
        return backend, kwargs, info, settings, todo
    variant = recipe(name, raw=sae is None)
    if s.select_t is not None:
        variant = replace(variant, select_t=s.select_t)
    variant = replace(variant, config=lvo_config(s, kind, variant.config), value=s.value or variant.value)
    if s.timesteps is not None:
        if variant.prior == "bank":
            raise LVOError(f"--timesteps sets the rows of a hand-built run; the {name} recipe polishes at its "
                           f"selection timestep: give --select-t (a timestep or 'peak') instead")
        variant = replace(variant, timesteps=s.timesteps if isinstance(s.timesteps, str) else tuple(s.timesteps))
    bank = bank_for(s, backend, sae, todo, variant, analysis, cluster) if variant.prior == "bank" else None
    factory = None
    if variant.prior == "steer":
        def factory(unit_sae, unit_analysis, strength):
            s2 = replace_prior(s, strength=strength if strength is not None else s.strength)
            return steer_prior(model, unit_sae, hookpoint, unit_analysis, s2)
    prior, timesteps, _notes = recipe_start(backend, variant, todo, sae=sae, analysis=analysis, seeds=s.seeds,
                                            steer_prior=factory, bank=bank)
    kwargs = dict(common, timesteps=timesteps, value=variant.value, prior=prior, config=variant.config,
                  optimize_latents=variant.polish)
    info["recipe"] = settings["recipe_settings"] = variant.describe()
    if bank is not None:  # the bank by identity, not by folder content (scores are added to it over time)
        info["bank"] = settings["bank"] = {k: v for k, v in bank.describe().items() if k != "scores"}
    return backend, kwargs, info, settings, todo


def replace_prior(s: Any, **changes: Any) -> Any:
    """A copy of the settings with ``prior`` defaulted to ``steer`` (and ``changes`` applied)."""
    from types import SimpleNamespace

    data = {**vars(s), "prior": s.prior or "steer", **changes}
    return SimpleNamespace(**data)


# ---------------------------------------------------------------------------------------------- commands
def cmd_analyze(s: Any) -> int:
    """Time-step activity analysis over a prompt set."""
    from .analysis.activity import analyze_activity

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


def cmd_steer(s: Any) -> int:
    """Steered generations: the LVO priors of some units."""
    import json

    from .analysis.metrics import display_images
    from .lvo.pipeline import plan_rows
    from .runs.plots import image_grid
    from .runs.report import save_json, save_png, save_tensors, versions

    model, sae, hookpoint = setup(s)
    check_units(model, hookpoint, s.units, sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    rows = plan_rows(s.units, s.seeds, [0], None)
    latents = steer_prior(model, sae, hookpoint, analysis, s)([r.unit for r in rows], [r.seed for r in rows])
    out = ensure_folder(s.out)
    meta_rows = [{"unit": r.unit, "seed": r.seed} for r in rows]
    save_tensors({"latents": latents}, out / "priors.safetensors", {"rows": json.dumps(meta_rows)})
    if model.decoder is not None:
        with torch.no_grad():
            images = display_images(model.decoder(latents))
        kind = "feature" if sae is not None else "channel"
        how = (f"strength {s.strength}" if s.strength is not None else
               f"strength = dataset max at t x {s.scale or ('500' if sae is not None else '50')}")
        save_png(image_grid(list(images.numpy()), columns=len(s.seeds), cell=128,
                            column_titles=[f"seed {seed}" for seed in s.seeds],
                            row_titles=list(dict.fromkeys(f"{kind} {r.unit}" for r in rows)),
                            title=f"Steered generations (LVO's steer prior): {kind}s at {hookpoint}",
                            subtitle=f"model {model.source}; {s.prior_steps} sampling steps, mode {s.mode}, {how}",
                            legend=["Each image: the model's own generation from the empty prompt with the unit "
                                    "pushed up while sampling, the start LVO polishes. Nothing is measured here; "
                                    "visualize reports each image's activation."]), out / "priors.png")
    save_json({"command": "steer", "args": recorded_args(s), "rows": meta_rows, "versions": versions()},
              out / "steer.json")
    print(f"wrote {len(rows)} steered priors to {out}/priors.safetensors")
    return 0


def cmd_visualize(s: Any) -> int:
    """LVO: optimize latents so that units fire, decode, measure."""
    from .runs.record import results_table, run_visualize

    start = time.perf_counter()
    backend, kwargs, info, settings, units = _lvo_setup(s)
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
    from .runs.atlas import build_atlas, join_cluster

    cluster = join_cluster()
    try:
        if cluster.world > 1 and torch.cuda.is_available():
            s.device = f"cuda:{cluster.local_rank}"
        start = time.perf_counter()
        backend, kwargs, info, settings, units = _lvo_setup(s, cluster)
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
            site = write_atlas_site(s, backend, kwargs, index, kind)
            print(f"atlas site: open {site} (static; copy the folder to share it)")
        elif ran == 0:
            print(f"[rank {cluster.rank}] no work left", file=sys.stderr)
        return 0
    finally:
        cluster.close()


def write_atlas_site(s: Any, backend, kwargs: dict, index: dict, kind: str) -> Path:
    """The atlas's static site in ``OUT/site``: labels (``--labels``), feature cards from the bank and the analysis,
    each unit's top bank images."""
    from .analysis.bank import SampleBank
    from .analysis.labels import LabelTable
    from .analysis.metrics import display_images
    from .runs.feature_page import feature_card
    from .runs.site import atlas_site

    sae, analysis = kwargs["sae"], kwargs["analysis"]
    labels = LabelTable.load(s.labels) if getattr(s, "labels", None) else None
    if labels is not None:
        labels.check_matches(sae)
    folder = Path(s.bank) if s.bank else Path(s.out) / "bank"
    bank = SampleBank.load(folder) if (folder / "bank.json").is_file() else None
    bank_t = None
    if bank is not None:  # the bank's scores of this block and these units, at the first timestep it has them
        bank.check_matches(backend, sae)
        mine = bank.key(0, sae)[:3]
        bank_t = next((key[3] for key in sorted(bank.scores) if key[:3] == mine), None)
    hookpoint = backend.hookpoint.diffusers_name
    cards, images = {}, {}
    units = [e["unit"] for e in index["units"]]
    progress = Progress("atlas site")
    for i, unit in enumerate(units):
        use_bank = bank if bank_t is not None else None
        cards[unit] = feature_card(unit, hookpoint=hookpoint, sae=sae, analysis=analysis, bank=use_bank,
                                   bank_t=bank_t or 200, top=getattr(s, "site_examples", 4))
        if use_bank is not None and backend_has_decoder(backend):
            top = cards[unit]["bank"]["top"]
            with torch.no_grad():
                pics = display_images(backend.decode(use_bank.latents[[e["index"] for e in top]].to(backend.device))
                                      .float().cpu()).numpy()
            images[unit] = {"bank": [(p, f"pool {e['index']}: {e['score']:.3g}") for p, e in zip(pics, top)]}
        progress(i + 1, len(units))
    return atlas_site(Path(s.out) / "site", index, atlas_dir=s.out, labels=labels, cards=cards, images=images,
                      kind=kind, units=units)


def backend_has_decoder(backend) -> bool:
    return getattr(backend, "_decoder", None) is not None


def cmd_bank(s: Any) -> int:
    """The sample bank: the model's own samples, scored for every unit (faithful's starts)."""
    from .analysis.bank import BankSettings, build_bank
    from .analysis.metrics import display_images
    from .runs.plots import WORDS, image_grid
    from .runs.report import save_png

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
        save_png(image_grid(tiles, labels, columns=s.k, cell=128,
                            column_titles=[f"#{j + 1}" for j in range(s.k)],
                            row_titles=[f"{kind} {unit}, t {t}" for unit in s.units for t in s.timesteps],
                            title=f"Sample bank's top images per {kind} at {hookpoint}",
                            subtitle=f"model {model.source}; {bank.size} unconditional samples, best first",
                            legend=[WORDS["bank"], "pool N: the image's index in the bank (its seed is the bank's "
                                    "seed + N)."]), Path(s.out) / "examples.png")
        print(f"wrote {s.out}/examples.png: each unit's top {s.k} pool images (model-generated dataset examples)")
    return 0


def cmd_search(s: Any) -> int:
    """Which SAE features an image (or a prompt's generation) drives, and where."""
    import numpy as np
    from PIL import Image

    from .analysis.bank import SampleBank
    from .analysis.feature_search import ranking_for, search_features, unit_list
    from .analysis.metrics import display_images
    from .runs.plots import search_sheet
    from .runs.report import save_json, save_png, versions

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


def cmd_page(s: Any) -> int:
    """One feature's page: activity, sample-bank histogram and top images, and each given run's pictures with
    their metrics."""
    import json

    import numpy as np
    from PIL import Image

    from .analysis.bank import SampleBank
    from .analysis.metrics import display_images
    from .runs.feature_page import feature_card, feature_sheet
    from .runs.record import load_result
    from .runs.report import save_json, save_png

    results = [load_result(Path(folder) / "result.json") for folder in s.run or []]  # cheap checks first
    model, sae, hookpoint = setup(s)
    check_units(model, hookpoint, [s.unit], sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    backend = backend_for(model, hookpoint, sae)
    bank = None
    if s.bank:
        bank = SampleBank.load(s.bank)
        bank.check_matches(backend, sae)
        bank.ensure_scores(backend, sae, [s.bank_t], on_progress=Progress(BANK_SCORING))
    labels = None
    if s.labels:
        from .analysis.labels import LabelTable

        labels = LabelTable.load(s.labels)
    card = feature_card(s.unit, hookpoint=hookpoint, sae=sae, analysis=analysis, bank=bank, bank_t=s.bank_t,
                        results=results, top=s.top, bins=s.bins, labels=labels)
    pictures: dict[str, list] = {}
    if card["bank"] is not None and model.decoder is not None:
        order = [e["index"] for e in card["bank"]["top"]]
        with torch.no_grad():
            pictures["bank"] = list(display_images(model.decoder(bank.latents[order].to(backend.device)))
                                    .float().cpu().numpy())
    for run, result, folder in zip(card["visualizations"], results, s.run or []):
        files = result.get("images") or []
        pictures[run["name"]] = [np.asarray(Image.open(Path(folder) / files[r["row"]]).convert("RGB"), np.float32)
                                 / 255 for r in run["rows"] if r["row"] < len(files)]
    out = ensure_folder(s.out)
    save_json(card, out / f"feature_{s.unit}.json")
    save_png(feature_sheet(card, analysis, pictures), out / f"feature_{s.unit}.png")
    for note in card["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({k: card[k] for k in ("unit", "kind", "hookpoint")}) +
          f"; wrote {out}/feature_{s.unit}.png and feature_{s.unit}.json")
    return 0


def search_text(s: Any) -> int:
    """``search --text``: the features whose labels (or lift) match a word, with their detection scores."""
    from .analysis.labels import LabelTable
    from .runs.report import save_json, versions

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


def cmd_label(s: Any) -> int:
    """Labels the model gives each feature (lift of vocabulary phrases), scored on held-out generations."""
    from .analysis.labels import LabelSettings, label_units, vocabulary

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


def read_image(path: str):
    """An RGB picture from ``path``; a file that is no image, or one so large that decoding it would exhaust memory
    (PIL's decompression-bomb guard), is one clear error."""
    import warnings

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


def cmd_examples(s: Any) -> int:
    """Top-activating generations of a unit, ranked, with heatmaps."""
    from .analysis.examples import generate_with_maps, rank_examples
    from .analysis.metrics import display_images
    from .runs.plots import WORDS, colour_bar, heat_tile, image_grid
    from .runs.report import save_json, save_png, versions

    model, sae, hookpoint = setup(s)
    check_units(model, hookpoint, [s.unit], sae)
    analysis = load_analysis(s.analysis, model, sae, hookpoint)
    prompts = read_prompts(s.prompts, model.source)
    t = s.timestep
    train_steps = int(model.scheduler.config.num_train_timesteps)
    if t is not None and not 0 <= t < train_steps:
        raise LVOError(f"--timestep {t} is outside this model's schedule 0..{train_steps - 1}")
    if t is None:
        peaks = analysis.peaks(s.unit) if analysis is not None else []
        t = peaks[0] if peaks else 500
    latents, maps, used = generate_with_maps(backend_for(model, hookpoint, sae), prompts, None, s.unit, t, sae=sae,
                                             seeds=range(s.seed, s.seed + len(prompts)), steps=s.steps,
                                             guidance=s.guidance, batch_size=s.batch_size,
                                             on_progress=Progress("examples (images × steps)"))
    ranked = rank_examples(maps, k=s.k, by=s.by, prompts=prompts, timestep=used)
    out = ensure_folder(s.out)
    if model.decoder is not None:
        with torch.no_grad():
            images = display_images(model.decoder(latents[[e.index for e in ranked]]))
        vmax = max(float(ranked[0].heatmap.max()), 1e-8)
        tiles = [heat_tile(img, e.heatmap, vmax=vmax, size=160) for img, e in zip(images.numpy(), ranked)]
        kind = "feature" if sae is not None else "channel"
        columns = min(4, len(tiles))
        save_png(image_grid(tiles, [f"#{i + 1} {e.prompt}: activation {e.score:.3g}" for i, e in enumerate(ranked)],
                            columns=columns, cell=160,
                            title=f"Dataset examples of {kind} {s.unit} at {hookpoint}, t = {used}",
                            subtitle=f"model {model.source}; the {len(ranked)} of {len(prompts)} prompts' generations "
                                     f"it fires on most, best first",
                            legend=[f"activation: the unit's spatial {s.by} over the image's positions at t = {used} "
                                    f"while the prompt's image was generated", WORDS["heatmap"]],
                            colour=colour_bar(columns * 164, vmax, "heatmap: the unit's activation at each position "
                                              "(one scale for every tile)")), out / f"examples_{s.unit}.png")
    save_json({"command": "examples", "args": recorded_args(s), "timestep": used, "versions": versions(),
               "examples": [{"rank": i + 1, "prompt": e.prompt, "index": e.index, "score": e.score}
                            for i, e in enumerate(ranked)]}, out / f"examples_{s.unit}.json")
    for i, e in enumerate(ranked):
        print(f"{i + 1:>3}. {e.score:9.4f}  {e.prompt}")
    return 0


def cmd_ablate(s: Any) -> int:
    """Paper, best and faithful, each part of faithful changed, raw channels, held-out features: one
    table."""
    from .toy.ablate import markdown_table, standard_variants
    from .toy.concepts import toy_ablation

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
    from .toy.ablate import markdown_table
    from .toy.demo import run_demo

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


def cmd_info(s: Any) -> int:
    """Hookable blocks of a model, SAE summary, and whether they fit."""
    import json

    from .hookpoints import check_sae_fits, list_hookpoints, resolve_hookpoint
    from .sae import describe, load_sae

    report: dict = {}
    if s.sae in tiny_models():
        report["sae"] = tiny_sae(s.sae).summary()
    elif s.sae:
        s.sae = sae_path(s.sae)
        report["sae"] = describe(s.sae)
        if s.hookpoint and "hookpoints" in report["sae"]:  # a root of several: the hookpoint chooses (or fails)
            report["sae"] = load_sae(s.sae, hookpoint=s.hookpoint).summary()
        elif s.hookpoint and not s.model:
            raise LVOError(f"--hookpoint {s.hookpoint}: {s.sae} holds one SAE, not a root of several; give --model "
                           f"too to check the SAE against that block")
    if s.model or not s.sae:
        unet = load_named_model(s.model or "tiny", config=s.config).denoiser
        report["hookpoints"] = [{"diffusers": p.diffusers_name, "ldm": p.ldm_name, "channels": p.channels,
                                 "kind": p.kind} for p in list_hookpoints(unet)]
        if s.hookpoint:
            point = resolve_hookpoint(unet, s.hookpoint)
            report["hookpoint"] = {"diffusers": point.diffusers_name, "ldm": point.ldm_name,
                                   "channels": point.channels}
        if s.sae:
            sae = tiny_sae(s.sae) if s.sae in tiny_models() else load_sae(s.sae, hookpoint=s.hookpoint)
            point = resolve_hookpoint(unet, s.hookpoint or sae.hookpoint or DEFAULT_HOOKPOINT)
            check_sae_fits(sae.d_in, point, unet)
            report["fit"] = f"SAE ({sae.d_in} channels) fits {point.diffusers_name} / {point.ldm_name}"
    if s.json:
        print(json.dumps(report, indent=2))
        return 0
    if "sae" in report:
        print("SAE:", json.dumps(report["sae"], indent=2))
    for p in report.get("hookpoints", []):
        print(f"  {p['diffusers']:<32} {p['ldm']:<20} {p['channels']:>6}  {p['kind']}")
    if "hookpoint" in report:
        h = report["hookpoint"]
        print(f"hookpoint {s.hookpoint} is {h['diffusers']} / {h['ldm']} ({h['channels']} channels)")
    if "fit" in report:
        print(report["fit"])
    return 0


def cmd_convert(s: Any) -> int:
    """Convert an SAE (e.g. a pickled ae.pt/state_dict.pth) to safetensors."""
    from .sae import convert_to_safetensors, load_sae

    out = convert_to_safetensors(s.source, s.out, k=s.k)
    print(f"wrote {out} ({load_sae(out).summary()['format']} layout, safetensors only)")
    return 0
