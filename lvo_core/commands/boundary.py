"""The commands' error boundary and settings: :func:`run` runs a ``cmd_*`` so that bad input is one line and status
2 and an interrupt status 130; settings are checked before anything loads, and ``--from-json`` brings a recorded
run's settings back (each checked against the type its flag parses to). Also the progress lines every command
draws on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import LVOError
from ..fileio import OutputPathError, check_file_target
from ..progress import Printer, ProgressFn, StepFn, stage
from .setup import tiny_models

NOT_RECORDED = ("func", "from_json", "resume")
BANK_SAMPLING = "bank: sampling (images × denoising steps)"
BANK_SCORING = "bank: scoring (images × noise draws)"
VISUALIZE = "visualize (rows × steps, then measure and decode)"
ARG_ACTIONS: dict[str, dict[str, Any]] = {}  # command → {dest: argparse action}, filled by lvo_core.cli
FILE_OUTPUTS = ("analyze",)  # commands whose --out is one file; the others write a folder


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


def check_out(s: Any) -> None:
    """Refuse an ``--out`` of the wrong kind before any work: a folder or special file where a file goes, a file
    or special file where a folder goes (nothing is ever written over them)."""
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
    from ..runs.record import RunInterrupted, sigterm_as_interrupt  # runs.* loads PIL: not for --help

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
    from ..runs.record import load_result

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
