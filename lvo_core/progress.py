"""Progress that moves: one reporter for every long loop of the pack, with an ETA, quiet unless asked.

A long job (a sample bank, an optimization, a demo phase) may take minutes at SD scale on a CPU; a line that sits
still for that long looks like a hang. Every loop therefore reports each finished unit of work (a denoising step of
a batch, an optimizer step, a scored batch) to one callable ``progress(label, done, total)``. The library's default
is :func:`quiet`; the command line passes a :class:`Printer`, which draws one line per label on stderr with the
elapsed time and an ETA — redrawn in place on a terminal, and as a full line every couple of seconds when stderr
is a pipe or a log file (so logs and tests see it move). ComfyUI nodes map the same calls onto the node's progress
bar. :func:`stage` turns the three-argument form into the ``on_progress(done, total)`` that inner loops take.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, TextIO

ProgressFn = Callable[[str, int, int], None]
StepFn = Callable[[int, int], None]
EVERY_ENV = "LVO_PROGRESS_EVERY"  # seconds between full lines when stderr is not a terminal (default 2)


def announce_program(name: str, spec: Any) -> None:
    """Say what is starting when a module runs as a program (``name == "__main__"``), called before it imports
    torch (seconds): every command speaks within its first second. Never prints on a library import."""
    if name != "__main__" or spec is None:
        return
    module, args = spec.name.removesuffix(".__main__"), sys.argv[1:]
    if {"-h", "--help"} & set(args) or (module == "lvo_core" and (not args or args[0].startswith("-"))):
        return  # help, or no subcommand: argparse answers at once
    label = f"{module} {args[0]}" if module == "lvo_core" else module
    print(f"{label}: loading torch and diffusers …", file=sys.stderr, flush=True)


def quiet(label: str, done: int, total: int) -> None:
    """The library default: report nothing."""


def stage(progress: ProgressFn | None, label: str, offset: int = 0, total: int | None = None) -> StepFn:
    """``on_progress(done, of)`` for an inner loop, reported to ``progress`` under ``label``; with ``total`` the
    loop is one part of a bigger count that starts at ``offset`` (e.g. one batch of many)."""
    if progress is None:
        return lambda done, of: None
    return lambda done, of: progress(label, offset + done, of if total is None else total)


def format_duration(seconds: float | None) -> str:
    """``0:07``, ``12:05``, ``1:02:03``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def estimate_remaining(elapsed: float, done: float, total: float, done_at_start: float = 0) -> float | None:
    """Seconds left at the rate so far (work finished before this run started, e.g. a resumed bank, does not count
    towards the rate); None before the first unit is done."""
    worked = done - done_at_start
    if total <= done:
        return 0.0
    if worked <= 0 or elapsed <= 0:
        return None
    return elapsed / worked * (total - done)


class _Line:
    def __init__(self, done: int, total: int, now: float):
        self.start, self.first_done, self.shown = now, done, float("-inf")
        self.done, self.total, self.finished = done, total, False


class Printer:
    """``progress(label, done, total)`` drawn on ``stream`` (stderr): on a terminal one line per label redrawn at
    most every 0.2 s; elsewhere a full line at most every ``every`` seconds (``LVO_PROGRESS_EVERY``, default 2), so
    a log shows the work moving. The first and the last call of a label always print; a finished label that starts
    again from a lower count is a new line."""

    def __init__(self, stream: TextIO | None = None, every: float | None = None, tty: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.every = every if every is not None else (0.2 if self.tty else float(os.environ.get(EVERY_ENV, "2")))
        self.lines: dict[str, _Line] = {}
        self.current: str | None = None  # the label of a terminal line drawn without its newline yet

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        line = self.lines.get(label)
        fresh = line is None or (line.finished and done < line.total)
        if fresh:
            line = self.lines[label] = _Line(done, total, now)
        finished = done >= total
        if line.finished and finished:
            return  # its end is already shown
        line.done, line.total = done, total
        if not (fresh or finished or now - line.shown >= self.every):
            return
        line.shown, line.finished = now, finished
        self._draw(label, self.describe(label, done, total, now), finished)

    def describe(self, label: str, done: int, total: int, now: float | None = None) -> str:
        """``bank: 96/160 (60%) 0:41 elapsed, ETA 0:27`` (at the end: ``… 160/160 (100%) in 1:08``)."""
        line = self.lines[label]
        elapsed = (time.monotonic() if now is None else now) - line.start
        share = f"{done}/{total} ({done / max(total, 1):.0%})"
        if done >= total:
            return f"{label}: {share} in {format_duration(elapsed)}"
        return (f"{label}: {share} {format_duration(elapsed)} elapsed, "
                f"ETA {format_duration(estimate_remaining(elapsed, done, total, line.first_done))}")

    def note(self, text: str) -> None:
        """A one-off line (what starts next), ending any line drawn in place."""
        self._draw(None, text, True)

    def _draw(self, label: str | None, text: str, finished: bool) -> None:
        if self.tty:
            if self.current is not None and label != self.current:
                self.stream.write("\n")
            self.stream.write(f"\r{text}\x1b[K" + ("\n" if finished else ""))
        else:
            self.stream.write(text + "\n")
        self.current = None if finished else label
        self.stream.flush()

