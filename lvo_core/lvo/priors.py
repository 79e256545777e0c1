"""A table of start latents keyed by (unit, seed): the prior LVO polishes, made once and looked up per batch.

``steer`` (CLI) and Steering Init (node) both make one latent per unit × seed; a run later asks for the rows of the
units and seeds it optimizes, in its own order. One class holds that table so the CLI file, the node socket and the
run builder agree on the lookup, the missing-row error and the file format (``priors.safetensors``: a ``latents``
tensor ``[N, C, H, W]`` with the rows as JSON ``[{"unit": u, "seed": s}, …]`` in the header's ``rows`` field).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..errors import LVOError
from ..fileio import atomic_write, check_safetensors_file


class PriorTable:
    """Latents by (unit, seed). Calling ``table(units, seeds)`` stacks the rows asked for, so the table is a prior
    callable wherever a run takes one. ``source`` and ``fix`` word the missing-row error for the place the table
    came from (a file, a node); ``notes`` carry what the maker had to fall back on (shown with the run)."""

    def __init__(self, rows: Sequence[tuple[int, int]], latents: Tensor, *, label: str = "prior table",
                 source: str = "the prior", fix: str = "make the prior with the same units and seeds",
                 notes: Sequence[str] = ()):
        rows = [(int(u), int(s)) for u, s in rows]
        if latents.ndim != 4 or len(rows) != latents.shape[0]:
            raise LVOError(f"{source}: {len(rows)} (unit, seed) rows for latents of shape {tuple(latents.shape)}; "
                           f"give one [C, H, W] latent per row")
        self.rows = rows
        self.latents = latents
        self.label = label
        self.source = source
        self.fix = fix
        self.notes = list(notes)
        self._index = {row: i for i, row in enumerate(rows)}  # a repeated seed makes the same row: the last one

    def __len__(self) -> int:
        return len(self.rows)

    def __call__(self, units: Sequence[int], seeds: Sequence[int]) -> Tensor:
        """The latents of ``zip(units, seeds)``, stacked in that order."""
        wanted = [(int(u), int(s)) for u, s in zip(units, seeds)]
        missing = [row for row in wanted if row not in self._index]
        if missing:
            raise LVOError(f"{self.source} has no latent for unit {missing[0][0]}, seed {missing[0][1]}; {self.fix}")
        return self.latents[[self._index[row] for row in wanted]]

    def with_latents(self, latents: Tensor) -> "PriorTable":
        """The same rows over other latents (e.g. moved into a model's latent space), keeping label and wording."""
        return PriorTable(self.rows, latents, label=self.label, source=self.source, fix=self.fix, notes=self.notes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``priors.safetensors`` in the format ``steer`` writes and :meth:`load` reads."""
        meta = {"rows": json.dumps([{"unit": u, "seed": s} for u, s in self.rows])}
        clean = {"latents": self.latents.detach().contiguous().cpu()}
        return atomic_write(path, lambda tmp: save_file(clean, str(tmp), metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PriorTable":
        """Read ``steer``'s ``priors.safetensors``; labelled ``file:<path>`` as run results name their prior."""
        check_safetensors_file(path)
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                latents = fh.get_tensor("latents") if "latents" in fh.keys() else None
        except Exception as exc:  # safetensors raises its own error types; re-raise naming the file
            raise LVOError(f"priors file {path} is corrupt or not a safetensors file: {exc}") from exc
        if latents is None:
            raise LVOError(f"priors file {path} has no 'latents' tensor; write it with `steer`")
        try:
            rows = [(int(r["unit"]), int(r["seed"])) for r in json.loads(meta.get("rows", "[]"))]
        except (ValueError, TypeError, KeyError) as exc:
            raise LVOError(f"priors file {path}: its 'rows' metadata is not a list of {{unit, seed}}; write it "
                           f"again with `steer`") from exc
        return cls(rows, latents, label=f"file:{path}", source=f"priors file {path}",
                   fix="run `steer` with the same units and seeds")

