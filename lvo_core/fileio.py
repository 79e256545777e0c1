"""Safe file handling shared by every writer and reader: atomic writes, and safetensors sanity checks that turn
empty, truncated or pickled files into actionable errors before safetensors' own terse ones."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Callable

from .errors import SAEFormatError, UnsafeFileError

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # protocol-2+ pickle opcode; zip container of torch.save


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place: an interrupted write
    never leaves a half-written file that looks complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def looks_pickled(path: Path) -> bool:
    """A pickle or torch.save zip, not a safetensors file (whose 8-byte header length may itself start with 0x80,
    so a JSON header right after it rules a pickle out)."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[8:9] == b"{":
        return False
    return any(head.startswith(m) for m in _PICKLE_MAGIC)


def check_safetensors_file(path: str | os.PathLike) -> None:
    """Refuse empty, truncated and pickled files with a message that says what to do."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SAEFormatError(f"cannot open {path}: {exc}") from exc
    if size < 8:
        raise SAEFormatError(f"{path} is empty or truncated ({size} bytes); download or write it again")
    if looks_pickled(path):
        raise UnsafeFileError(
            f"{path} is a pickle (torch.save) file, not safetensors; pickles can run code, so it is not opened as "
            f"safetensors. If it is a dictionary_learning or openai-style checkpoint, give it its usual name "
            f"(ae.pt / state_dict.pth) so it is read with torch.load(weights_only=True), or convert it with "
            f"`python -m lvo_core convert`")
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
    if header_len > size - 8:
        raise SAEFormatError(f"{path} is truncated: its header claims {header_len} bytes but the file has "
                             f"{size - 8}; download or write it again")
