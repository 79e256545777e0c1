"""The text a user types into a node (seeds, timesteps, units, a bank name), checked when ComfyUI validates the
prompt, before any node of it runs: a typo in LVO Faithful must not cost the Sample Bank upstream a build first.
Each node declares ``validate_inputs`` over its own text widgets and returns :func:`check_text`'s answer."""

from __future__ import annotations

import re

from ..lvo_core.analysis.selection import SELECT_T
from ..lvo_core.errors import LVOError
from ..lvo_core.model.units import parse_seeds, parse_timesteps, parse_units


def _seeds(text: str) -> None:
    if not parse_seeds(text):
        raise LVOError("give at least one seed, e.g. '1, 2, 3, 4'")


def row_timesteps(text: str) -> str | list[int]:
    """LVO Optimize's ``timesteps``: 'peaks' (also when empty) or a list of timesteps."""
    text = text.strip()
    return "peaks" if text in ("", "peaks") else parse_timesteps(text)


def selection_rule(text: str) -> str | int:
    """LVO Faithful's ``selection_t``: 'peak', one timestep, or (empty) the default selection timestep."""
    text = text.strip()
    if text == "peak":
        return text
    values = parse_timesteps(text)
    if len(values) > 1:
        raise LVOError(f"selection_t takes one timestep or 'peak', got '{text}'")
    return values[0] if values else SELECT_T


def _timesteps(text: str) -> None:
    rule = row_timesteps(text)
    _in_range(rule if isinstance(rule, list) else [])


def _selection_t(text: str) -> None:
    rule = selection_rule(text)
    _in_range([rule] if isinstance(rule, int) else [])


def _in_range(values: list[int]) -> None:
    bad = [t for t in values if not 0 <= t <= 999]
    if bad:
        raise LVOError(f"timestep {bad[0]} is outside the model's 0..999")


def _units(text: str) -> None:
    if not parse_units(text):
        raise LVOError("no units given; name at least one feature or channel, e.g. '12, 305'")


BANK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def bank_folder_name(name: str) -> str:
    """A bank's folder name ('' for none), refused when it is or could become a path: separators, drive letters
    (``D:evil``), ``..`` or hidden names."""
    name = name.strip()
    if name and not BANK_NAME.fullmatch(name):
        raise LVOError(f"bank name '{name}' must be a plain folder name (letters, digits, -, _ and inner dots, at "
                       f"most 100), not a path")
    return name


CHECKS = {"seeds": _seeds, "timesteps": _timesteps, "selection_t": _selection_t, "units": _units,
          "name": bank_folder_name}


def check_text(**values: str | None) -> bool | str:
    """True, or ``"<input>: <what to fix>"`` for the first text input that does not parse (a linked input arrives
    as None: it is checked when its node runs)."""
    for name, value in values.items():
        if value is None:
            continue
        try:
            CHECKS[name](value)
        except LVOError as exc:
            return f"{name}: {exc}"
    return True
