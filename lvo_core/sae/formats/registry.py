"""The SAE format registry: each layout we read is one :class:`SAEFormat`, registered by its own module; detection,
loading, multi-hookpoint roots and descriptions go through here, so adding a format is adding one file.

Formats are told apart by file names only — nothing is unpickled to find out what a file is. Detection tries, in
order of ``priority``: a file (a format that reads that file itself, else the folder holding a file it names), a
folder holding one SAE, then a root folder of one SAE per hookpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ...errors import SAEFormatError
from ..model import SparseAutoencoder

Loader = Callable[..., SparseAutoencoder]


@dataclass(frozen=True)
class SAEFormat:
    """One on-disk SAE layout.

    ``kind``: ``folder`` (one SAE in a folder: ``matches(names)`` sees the folder's entry names, ``load(folder, k=,
    dtype=)`` reads it), ``file`` (``matches_file(path)``: a weights file read on its own) or ``root`` (one SAE
    folder per hookpoint: ``member(child)`` gives ``(hookpoint name, SAE folder)`` for a child folder, or None).
    ``files``: names that, given as the path, stand for their folder. ``layout``: how the layout reads in messages.
    """

    name: str
    kind: str
    layout: str
    priority: int
    matches: Callable[[set[str]], bool] | None = None
    matches_file: Callable[[Path], bool] | None = None
    member: Callable[[Path], tuple[str, Path] | None] | None = None
    load: Loader | None = None
    files: tuple[str, ...] = ()


FORMATS: dict[str, SAEFormat] = {}


def register(fmt: SAEFormat) -> SAEFormat:
    """Add a format (its name must be new); returns it, so a module can keep it under a name."""
    if fmt.name in FORMATS:
        raise SAEFormatError(f"SAE format '{fmt.name}' is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def _of(kind: str) -> list[SAEFormat]:
    return sorted((f for f in FORMATS.values() if f.kind == kind), key=lambda f: f.priority)


def root_formats() -> tuple[str, ...]:
    """Names of the multi-hookpoint root formats."""
    return tuple(f.name for f in _of("root"))


def detect_format(path: str | os.PathLike) -> str:
    """Name of the layout at ``path`` (see :data:`FORMATS`); raises :class:`SAEFormatError` for anything else."""
    p = Path(path)
    if not p.exists():
        raise SAEFormatError(f"SAE path {p} does not exist")
    if p.is_file():
        for fmt in _of("file"):
            if fmt.matches_file(p):
                return fmt.name
        if any(p.name in fmt.files for fmt in _of("folder")):
            return detect_format(p.parent)
        raise SAEFormatError(f"{p} is not a known SAE file; expected a folder, a .safetensors file, ae.pt or "
                             f"state_dict.pth")
    names = {c.name for c in p.iterdir()}
    for fmt in _of("folder"):
        if fmt.matches(names):
            return fmt.name
    for fmt in _of("root"):
        if any(fmt.member(c) is not None for c in p.iterdir() if c.is_dir()):
            return fmt.name
    raise SAEFormatError(
        f"{p} holds no SAE this pack can read. Expected one of: {', '.join(f.layout for f in _of('folder'))}, "
        f"or a folder of {' or '.join(f.layout for f in _of('root'))} hookpoint folders. "
        f"Found: {sorted(names)[:12]}")


def root_members(path: str | os.PathLike) -> dict[str, Path]:
    """Hookpoint name → SAE folder for a multi-hookpoint root (sparsify/SAeUron or sdxl-unbox ``checkpoints/``)."""
    root = Path(path)
    members: dict[str, Path] = {}
    for child in sorted(c for c in root.iterdir() if c.is_dir()):
        for fmt in _of("root"):
            found = fmt.member(child)
            if found is not None:
                members[found[0]] = found[1]
                break
    return members


def list_sae_hookpoints(path: str | os.PathLike) -> list[str]:
    """Hookpoint names inside a multi-hookpoint root (one entry for a single SAE: its own hookpoint)."""
    p = Path(path)
    if detect_format(p) in root_formats():
        return sorted(root_members(p))
    return [load_sae(p).hookpoint or ""]


def same_block(a: str, b: str) -> bool:
    """Whether two hookpoint names spell the same block (``unet.`` prefixes, LDM and diffusers names)."""
    from ...hookpoints import (
        equivalent_names,  # local import: hookpoints imports diffusers lazily too
    )

    return bool(set(equivalent_names(a)) & set(equivalent_names(b)))


def _pick_hookpoint(root: Path, hookpoint: str | None) -> Path:
    options = root_members(root)
    if hookpoint is None:
        if len(options) == 1:
            return next(iter(options.values()))
        raise SAEFormatError(f"{root} holds SAEs for several hookpoints: say which one (--hookpoint on the command "
                             f"line, the SAE Loader's hookpoint in ComfyUI), one of: {', '.join(options)}")
    for name, folder in options.items():
        if same_block(name, hookpoint):
            return folder
    raise SAEFormatError(f"{root} has no SAE for hookpoint '{hookpoint}'; available: {', '.join(options)}")


def load_sae(path: str | os.PathLike, *, hookpoint: str | None = None, k: int | None = None,
             device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SparseAutoencoder:
    """Load the SAE at ``path`` (a folder, a multi-hookpoint root, or a weights file), auto-detecting its format.

    ``hookpoint`` chooses inside a multi-hookpoint root (``unet.`` prefixes and LDM/diffusers spellings of the same
    block all match); ``k`` overrides or supplies the number of active latents; the file's dtype is kept unless
    ``dtype`` is given.
    """
    p = Path(path)
    fmt = FORMATS[detect_format(p)]
    if fmt.kind == "root":
        p = _pick_hookpoint(p, hookpoint)
        fmt = FORMATS[detect_format(p)]
    elif p.is_file() and fmt.kind != "file":
        p = p.parent
    sae = fmt.load(p, k=k, dtype=dtype)
    if device is not None or dtype is not None:
        sae = sae.to(device=device, dtype=dtype)
    return sae


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Format and shapes of the SAE(s) at ``path``, for ``info`` commands and the UI."""
    fmt = detect_format(path)
    if fmt in root_formats():
        members = root_members(path)
        return {"format": fmt, "hookpoints": {h: load_sae(folder).summary() for h, folder in members.items()}}
    return load_sae(path).summary()
