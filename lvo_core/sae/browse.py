"""Find SAEs in a folder tree (for pickers) and resolve user-given names safely inside it.

A name is a path relative to a root. It must not escape the root: absolute paths, ``..`` components, NUL bytes and
symlinks that lead outside are refused — names come from web requests and workflow files written by others.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SAEFormatError
from .formats import ROOT_FORMATS, detect_format, root_members

MAX_DEPTH = 4


def resolve_inside(root: str | os.PathLike, name: str) -> Path | None:
    """``root / name`` resolved, or None when the name is unsafe or points outside ``root``."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > 1024:
        return None
    rel = Path(name)
    if rel.is_absolute() or any(part in ("..", "") for part in rel.parts) or name.startswith(("/", "\\")):
        return None
    base = Path(root).resolve()
    target = (base / rel).resolve()
    return target if target == base or base in target.parents else None


def find_saes(root: str | os.PathLike) -> list[str]:
    """Relative names of loadable SAEs below ``root``: SAE folders (single or multi-hookpoint, with each hookpoint
    folder listed too) and loose ``.safetensors`` files, depth-limited; unreadable entries are skipped."""
    base = Path(root)
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            if resolve_inside(base, str(entry.relative_to(base))) is None:
                continue  # a symlink out of the root
            rel = entry.relative_to(base).as_posix()
            if entry.is_dir():
                try:
                    fmt = detect_format(entry)
                except SAEFormatError:
                    if depth < MAX_DEPTH:
                        walk(entry, depth + 1)
                    continue
                found.append(rel)
                if fmt in ROOT_FORMATS:
                    found.extend(sorted(member.relative_to(base).as_posix()
                                        for member in root_members(entry).values()))
            elif entry.suffix == ".safetensors" and not (folder / "cfg.json").is_file():
                found.append(rel)

    walk(base, 0)
    return found
