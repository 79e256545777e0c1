"""Progress that moves: the ETA arithmetic, the printer's two modes, and the gaps between lines of real commands.

The subprocess tests time each line of a toy-world command as it arrives on a pipe (as a log or CI sees it) and
assert that, once the work has started, no gap between lines is longer than ``GAP``. The bank run is sized so that
the old behaviour (one line per batch of 32 samples) was silent for its whole sampling: ≈ 11 s on an idle 2-core
machine, 48 s under load. The visualize run guards the LVO line and what follows its last step (measuring,
decoding, saving, the contact sheet).
"""

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lvo_core.progress import Printer, estimate_remaining, format_duration, stage

ROOT = Path(__file__).resolve().parents[1]
PROGRESS_LINE = re.compile(r"\d+/\d+ \(\d+%\)")
GAP = 5.0  # seconds; lines are due every LVO_PROGRESS_EVERY = 1 s, the rest is slack for a loaded CI box


def test_durations_and_eta():
    assert [format_duration(s) for s in (0, 7.4, 65, 3725, None, float("nan"), -1)] == \
        ["0:00", "0:07", "1:05", "1:02:05", "?", "?", "?"]
    assert estimate_remaining(10.0, 25, 100) == pytest.approx(30.0)  # 25 units in 10 s: 75 more take 30 s
    assert estimate_remaining(10.0, 60, 100, done_at_start=50) == pytest.approx(40.0)  # resumed work is not rate
    assert estimate_remaining(0.0, 0, 100) is None and estimate_remaining(5.0, 100, 100) == 0.0


def test_printer_writes_full_lines_off_a_terminal_and_redraws_on_one(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("lvo_core.progress.time.monotonic", lambda: clock[0])
    log = io.StringIO()
    printer = Printer(log, every=2.0, tty=False)
    step = stage(printer, "bank")
    for done in range(0, 11):  # one unit per second
        step(done, 10)
        clock[0] += 1.0
    step(10, 10)  # a repeated end is not printed twice
    printer.note("next phase")
    step(0, 4)  # a finished label that starts again is a new line
    lines = log.getvalue().splitlines()
    assert lines == ["bank: 0/10 (0%) 0:00 elapsed, ETA ?", "bank: 2/10 (20%) 0:02 elapsed, ETA 0:08",
                     "bank: 4/10 (40%) 0:04 elapsed, ETA 0:06", "bank: 6/10 (60%) 0:06 elapsed, ETA 0:04",
                     "bank: 8/10 (80%) 0:08 elapsed, ETA 0:02", "bank: 10/10 (100%) in 0:10", "next phase",
                     "bank: 0/4 (0%) 0:00 elapsed, ETA ?"]
    screen = io.StringIO()
    tty = Printer(screen, every=0.0, tty=True)
    tty("scores", 1, 2)
    tty("scores", 2, 2)
    assert screen.getvalue() == "\rscores: 1/2 (50%) 0:00 elapsed, ETA ?\x1b[K\rscores: 2/2 (100%) in 0:00\x1b[K\n"


def timed_lines(args: list[str], timeout: float = 300.0) -> tuple[int, list[tuple[float, str]]]:
    """Run ``python -m lvo_core args`` with both streams piped; every line (``\\n`` or ``\\r`` ended) with the
    second it arrived."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "LVO_PROGRESS_EVERY": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lvo_core", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)
    lines: list[tuple[float, str]] = []

    def pump(stream) -> None:
        buffer = b""
        while chunk := stream.read1(4096):
            buffer += chunk
            parts = re.split(rb"[\r\n]", buffer)
            buffer = parts.pop()
            now = time.perf_counter() - start
            lines.extend((now, p.decode()) for p in parts if p.strip())

    threads = [threading.Thread(target=pump, args=(s,)) for s in (proc.stdout, proc.stderr)]
    for t in threads:
        t.start()
    code = proc.wait(timeout=timeout)
    for t in threads:
        t.join()
    return code, sorted(lines)


def largest_gap(lines: list[tuple[float, str]]) -> tuple[float, str]:
    """The longest silence from the first progress line to the last line (the command's summary, written after its
    files; not the interpreter's teardown), and the line before it."""
    first = next(i for i, (_, text) in enumerate(lines) if PROGRESS_LINE.search(text))
    times = [t for t, _ in lines[first:]]
    gaps = [(b - a, lines[first + i][1]) for i, (a, b) in enumerate(zip(times, times[1:]))]
    return max(gaps)


@pytest.mark.parametrize("args, phases", [
    # 32 samples × 100 denoising steps: one batch, printed only at its end before (≈ 11 s idle)
    (["bank", "--model", "toy", "--size", "32", "--steps", "100", "--timesteps", "200"],
     ["bank: sampling", "bank: scoring"]),
    # its own bank of 32 (one batch: 2.7 s idle, 10 s under load without a line before), then 5 rows × 60 steps
    (["visualize", "--model", "toy", "--units", "3", "--steps", "60", "--bank-size", "32"],
     ["bank: sampling", "bank: scoring", "visualize"]),
], ids=["bank", "visualize"])
def test_no_silent_stretch_on_the_toy_world(tmp_path, args, phases):
    code, lines = timed_lines([*args, "--out", str(tmp_path / "out")])
    text = [t for _, t in lines]
    assert code == 0, "\n".join(text)
    gap, before = largest_gap(lines)
    assert gap < GAP, f"{gap:.1f} s of silence after {before!r}:\n" + "\n".join(f"{t:6.1f} {x}" for t, x in lines
                                                                              if x in text[text.index(before) - 3:
                                                                                           text.index(before) + 4])
    for phase in phases:
        shown = [x for x in text if x.startswith(phase) and PROGRESS_LINE.search(x)]
        assert len(shown) >= 2 and "ETA" in shown[0] and "(100%) in " in shown[-1], (phase, text)
