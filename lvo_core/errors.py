"""Errors the pack raises on bad input.

Every error is a ``ValueError`` subclass so callers that only know Python's built-ins still catch it, and every
message names the thing the user has to fix (a file, a hookpoint, a feature index), because ComfyUI shows the
message verbatim on the node.
"""

from __future__ import annotations


class LVOError(ValueError):
    """Base class of every error raised by lvo_core on bad input."""


class SAEFormatError(LVOError):
    """An SAE file or folder cannot be read: unknown layout, corrupt file, or shapes that contradict its config."""


class UnsafeFileError(SAEFormatError):
    """A file would need unrestricted unpickling to load; we refuse instead of running code from it."""


class HookpointError(LVOError):
    """A hookpoint name does not resolve to a hookable block of the given model."""


class SAEMismatchError(LVOError):
    """An SAE does not fit the block it is meant to read (its ``d_in`` differs from the block's channels)."""


class UnitError(LVOError):
    """A feature or channel index is out of range, duplicated, or the unit list is empty."""


class ActivityError(LVOError):
    """An activity analysis is empty, inconsistent, or belongs to another SAE or hookpoint."""


class TimestepError(LVOError):
    """A timestep lies outside the model's training schedule, or is not an integer."""
