"""SAE names under the ``sae`` model folders: models/sae, folders from extra_model_paths.yaml, and symlinks in them.

People share SAEs by symlinking folders into models/sae or by pointing extra_model_paths.yaml at a shared disk.
Both are the server owner's choice, made on the file system, so a symlink may lead anywhere; what a web request or
a workflow file may name is only what the listing offers. A name is listed when it is a plain relative path below a
root whose resolved target is a readable SAE (a known SAE folder layout, or a ``.safetensors`` file). Nothing here
reads or serves file contents beyond what the SAE format detection looks at.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..lvo_core.errors import SAEFormatError
from ..lvo_core.sae.formats import SPARSIFY_ROOT, detect_format

MAX_DEPTH = 4
MAX_ENTRIES = 5000


def safe_name(name: object) -> bool:
    """A relative path with no ``..``, empty or absolute parts and no NUL: the only shape a name may have."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > 1024 or "\\" in name:
        return False
    parts = Path(name).parts
    return not Path(name).is_absolute() and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _readable_sae(target: Path) -> str | None:
    """The format at a resolved path, or None when it is not a readable SAE."""
    try:
        if target.is_file():
            return detect_format(target) if target.suffix == ".safetensors" and os.access(target, os.R_OK) else None
        return detect_format(target) if os.access(target, os.R_OK | os.X_OK) else None
    except (SAEFormatError, OSError):
        return None


def list_names(roots: list[Path]) -> list[str]:
    """Relative names of the SAEs below each root (first root wins on equal names), symlinks followed once."""
    names: list[str] = []
    budget = [MAX_ENTRIES]

    def walk(base: Path, folder: Path, depth: int, seen: set[Path]) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            budget[0] -= 1
            if budget[0] < 0:
                return
            rel = entry.relative_to(base).as_posix()
            try:
                target = entry.resolve(strict=True)
            except (OSError, RuntimeError):
                continue  # a dangling or looping symlink
            fmt = _readable_sae(target)
            if fmt is None:
                if target.is_dir() and depth < MAX_DEPTH and target not in seen:
                    walk(base, entry, depth + 1, seen | {target})
                continue
            if target.is_file() and (entry.parent / "cfg.json").is_file():
                continue  # the weights of a folder SAE, listed as the folder
            if rel not in names:
                names.append(rel)
            if fmt == SPARSIFY_ROOT:
                names.extend(f"{rel}/{c.name}" for c in sorted(target.iterdir())
                             if c.is_dir() and _readable_sae(c) and f"{rel}/{c.name}" not in names)

    for root in roots:
        try:
            base = root.resolve(strict=True)
        except OSError:
            continue
        walk(root, root, 0, {base})
    return sorted(names)


def resolve(roots: list[Path], name: str) -> Path | None:
    """The resolved SAE path of a listed name, or None: unsafe or unlisted names never reach the file system."""
    if not safe_name(name) or name not in list_names(roots):
        return None
    for root in roots:
        candidate = root / name
        if os.path.lexists(candidate):
            target = candidate.resolve()
            if _readable_sae(target):
                return target
    return None


def relative_message(text: str, roots: list[Path], name: str | None = None, target: Path | None = None) -> str:
    """``text`` with the server's absolute paths (roots, and a symlinked SAE's target) replaced by names relative
    to models/sae, so errors sent to a browser never reveal the server's folder layout."""
    pairs: list[tuple[str, str]] = []
    if target is not None and name:
        pairs.append((str(target), name))
    for root in roots:
        for form in {str(root), str(root.resolve())}:
            pairs.append((form + os.sep, ""))
            pairs.append((form, "models/sae"))
    for absolute, relative in sorted(pairs, key=lambda p: -len(p[0])):
        text = text.replace(absolute, relative)
    return text
