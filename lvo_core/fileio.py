"""Safe file handling shared by every writer and reader: atomic writes that never replace or follow anything but
a regular file, and safetensors sanity checks that turn empty, truncated or pickled files into actionable errors
before safetensors' own terse ones.

Why each rule: a run as root (Docker, cloud GPU boxes) pointed at ``/dev/null`` must not replace the device node;
a symlink planted where a temporary file goes must not redirect a write to another file; files are created with
the process's umask like any other tool's, so a bank or atlas shared on a lab machine is readable by whoever can
read its folder.
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
from pathlib import Path
from typing import Callable

from .errors import LVOError, SAEFormatError, UnsafeFileError

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # protocol-2+ pickle opcode; zip container of torch.save
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class OutputPathError(LVOError):
    """An output path names something that must not be written over: a device, a pipe, a symlink, a folder."""


def check_file_target(path: str | os.PathLike) -> Path:
    """Refuse to write ``path`` unless it is absent or a regular file (not a symlink, device, pipe or folder)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise OutputPathError(f"{path} is a symbolic link; lvo_core does not write through links: remove it or "
                              f"choose another --out")
    if stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{path} is a folder, but a file is written there; choose another --out")
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{path} is a special file (device, pipe or socket), not a regular file; it is never "
                              f"replaced: choose another --out")
    return path


def ensure_folder(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (and its parents) or accept an existing folder; refuse a file or a special
    file where the folder goes (a link to a folder is accepted: only a user makes one there)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create the folder {path}: {exc}; choose another --out") from exc
        return path
    except OSError as exc:
        raise OutputPathError(f"cannot use {path} as a folder: {exc}") from exc
    if stat.S_ISLNK(st.st_mode) and path.is_dir():
        return path  # a user's own link to a folder (e.g. outputs on another disk) is theirs to make
    if not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{path} exists and is not a folder; an output folder is written there: choose "
                              f"another --out or remove it")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, then rename it into place: an interrupted
    write never leaves a half-written file that looks complete. The target must be absent or a regular file; the
    temporary name is unpredictable and created exclusively without following links; the file gets the umask's
    mode (not the 0600 of a private temporary file)."""
    path = check_file_target(path)
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{folder} is not a folder; {path.name} cannot be written into it")
    for _ in range(16):
        tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputPathError(f"cannot write into {folder}: {exc}") from exc
        break
    else:
        raise OutputPathError(f"cannot create a temporary file in {folder}")
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0666 less the umask: what any other tool's new file gets
        os.close(fd)
        write(tmp)
        if stat.S_IMODE(os.lstat(tmp).st_mode) != mode:  # writers that recreate the file (safetensors: 0600)
            os.chmod(tmp, mode)
        if not os.path.isfile(tmp) or os.path.islink(tmp):
            raise OutputPathError(f"the temporary file {tmp} was replaced while it was written; nothing was saved")
        check_file_target(path)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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
