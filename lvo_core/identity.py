"""Identity digests: one hasher for "which model / which SAE is this", so saved banks, analyses and run records can
refuse files made with something else.

Every digest is SHA-256 over a stream of named parts. A tensor contributes a header (any of its name, dtype and
shape) and its values, read one of three ways: :func:`exact_bytes` (the stored bytes: any change at all, dtype
included, gives a new digest — run records), :func:`strided_sample` (a bounded sample of float32 values: cost
independent of model size — bank model ids) or :func:`float_prefix` (float32 values up to a byte budget: the
analysis check's quick SAE id). Anything else contributes its name and sorted JSON. The values of saved digests
depend on these exact byte streams (``tests/test_identity.py`` pins them): change a reader, and every saved file
stops matching.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Iterable

import torch

Reader = Callable[[torch.Tensor], bytes]
HEADER = ("name", "dtype", "shape")


def exact_bytes(t: torch.Tensor) -> bytes:
    """The tensor's bytes as stored (dtype and all)."""
    return t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()


def strided_sample(count: int) -> Reader:
    """At most ``count`` float32 values taken at an even stride through the flattened tensor."""
    def read(t: torch.Tensor) -> bytes:
        with torch.inference_mode(False), torch.no_grad():  # parameters read the same inside a caller's inference
            flat = t.detach().reshape(-1)
            step = max(1, flat.numel() // count)
            return flat[::step][:count].float().cpu().numpy().tobytes()
    return read


def float_prefix(max_bytes: int) -> Reader:
    """The tensor as float32 bytes, cut at ``max_bytes``."""
    def read(t: torch.Tensor) -> bytes:
        return t.detach().float().cpu().contiguous().numpy().tobytes()[:max_bytes]
    return read


def file_digest(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB blocks (a multi-GB checkpoint never sits in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def digest(named: Iterable[tuple[str, Any]], *, values: Reader = exact_bytes, header: tuple[str, ...] = HEADER,
           extra: bytes = b"", length: int | None = None) -> str:
    """Hex SHA-256 of named tensors and JSON-able settings, in the order given, then ``extra``; ``length`` cuts
    the hex string (short ids for file names and metadata)."""
    h = hashlib.sha256()
    for name, value in named:
        if isinstance(value, torch.Tensor):
            parts = {"name": name, "dtype": str(value.dtype), "shape": str(tuple(value.shape))}
            h.update("".join(parts[key] for key in header).encode())
            h.update(values(value))
        else:
            h.update(name.encode() + json.dumps(value, sort_keys=True, default=str).encode())
    h.update(extra)
    hexdigest = h.hexdigest()
    return hexdigest if length is None else hexdigest[:length]
