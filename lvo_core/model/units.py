"""What a user points LVO at: units (SAE features or raw channels) of one hooked block, validated once against
the model before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from ..errors import LVOError, TimestepError, UnitError
from ..hookpoints import Hookpoint, check_sae_fits, resolve_hookpoint
from ..sae.model import SparseAutoencoder


@dataclass(frozen=True)
class UnitSpec:
    """Units of one block: SAE features when ``sae`` is set, raw channels otherwise."""

    hookpoint: str
    units: tuple[int, ...]
    sae: SparseAutoencoder | None = None
    channels: int = 0

    @property
    def reads(self) -> str:
        """What the units read at the block: an SAE's input kind (``output`` or ``update``), raw channels the
        output."""
        return self.sae.input_kind if self.sae is not None else "output"

    @property
    def kind(self) -> str:
        return "sae" if self.sae is not None else "raw"

    def label(self, unit: int) -> str:
        return f"{'feature' if self.sae is not None else 'channel'} {unit}"


MAX_LIST = 1 << 20  # more units or seeds than any SAE has features (and than a run could finish)
MAX_VALUE = (1 << 63) - 1  # an index, seed or timestep must fit torch's int64


@dataclass(frozen=True)
class _Field:
    """How a list of one kind of integer is named in messages, and which error it raises."""

    one: str
    many: str
    example: str
    error: type[LVOError]
    more: str = ""


_UNITS = _Field("unit", "units", "indices like '12, 305' or a range '10-13'", UnitError,
               " (an atlas of every unit: --units all)")
_SEEDS = _Field("seed", "seeds", "seeds like '1, 2, 3, 4' or a range '1-4'", LVOError)
_TIMESTEPS = _Field("timestep", "timesteps", "timesteps like '200, 500' or a range '100-300'", TimestepError)


def _int_list(text: str, field: _Field, limit: int) -> list[int]:
    """``"12, 305 7"`` → ``[12, 305, 7]``; ranges like ``"10-13"`` expand; sizes are checked before a range is
    expanded, so ``0-10000000000`` is refused at once instead of filling memory."""
    values: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part[1:]:
                lo_text, hi_text = part.split("-", 1)
                lo, hi = int(lo_text), int(hi_text)
                bounds = (lo, hi)
            else:
                lo = hi = int(part)
                bounds = (lo,)
        except ValueError as exc:
            raise field.error(f"cannot read {field.one} '{part}'; write {field.example}") from exc
        if any(not 0 <= v <= MAX_VALUE for v in bounds):
            raise field.error(f"'{part}' is outside 0..2^63-1; {field.many} are non-negative 64-bit integers")
        if hi < lo:
            raise field.error(f"range '{part}' is empty (its end is before its start); write it as '{hi}-{lo}'")
        if len(values) + hi - lo + 1 > limit:
            raise field.error(f"'{text.strip()[:40]}' lists more than {limit} {field.many}; give fewer "
                              f"{field.many}{field.more}")
        values += range(lo, hi + 1)
    return values


def parse_units(text: str, limit: int = MAX_LIST) -> list[int]:
    """Feature or channel indices typed by a user (CLI ``--units``, the nodes' unit text): ``"12, 305 7"`` or
    ranges ``"10-13"``; anything else is a :class:`UnitError` that names the unit."""
    return _int_list(text, _UNITS, limit)


def parse_seeds(text: str, limit: int = MAX_LIST) -> list[int]:
    """Seeds typed by a user (CLI ``--seeds``, the nodes' seed text), same syntax as :func:`parse_units`."""
    return _int_list(text, _SEEDS, limit)


def parse_timesteps(text: str, limit: int = MAX_LIST) -> list[int]:
    """Timesteps typed by a user, same syntax as :func:`parse_units`; the model's own range (e.g. 0..999) is
    checked where the model is known."""
    return _int_list(text, _TIMESTEPS, limit)


def make_unit_spec(unet: nn.Module, hookpoint: str, units: Sequence[int], sae: SparseAutoencoder | None = None) \
        -> UnitSpec:
    """Resolve the hookpoint on ``unet`` and check the SAE width and every unit index before any run."""
    point: Hookpoint = resolve_hookpoint(unet, hookpoint)
    units = [int(u) for u in units]
    if not units:
        raise UnitError("no units given; name at least one feature or channel, e.g. '12, 305'")
    if len(set(units)) != len(units):
        raise UnitError(f"unit {next(u for u in units if units.count(u) > 1)} is listed twice")
    if sae is not None:
        check_sae_fits(sae.d_in, point, unet)
        sae.check_features(units)
    else:
        bad = [u for u in units if not 0 <= u < point.channels]
        if bad:
            raise UnitError(f"channel {bad[0]} is out of range: block '{point.diffusers_name}' has {point.channels} "
                            f"channels (valid 0..{point.channels - 1})")
    return UnitSpec(point.diffusers_name, tuple(units), sae, point.channels)
