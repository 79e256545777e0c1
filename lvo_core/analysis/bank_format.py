"""A sample bank's format: its settings, and its folder as written to disk and read back and checked.

A bank is a folder: ``bank.json`` (settings, the model's fingerprint, and every file with its SHA-256), one
``latents-NNNNN.safetensors`` per finished batch of samples (so an interrupted build resumes where it stopped) and
one ``scores-<kind>-t<t>-<key>.safetensors`` per score table, keyed by what produced it (hookpoint, unit kind, SAE
fingerprint, timestep), so the scores of several blocks and SAEs live side by side and never stand in for each
other. Everything here only reads: every index field is checked with its type, every file against its digest and
for NaN, and a corrupt one is named with what to do. Writing (under the folder's lock) is
:mod:`lvo_core.analysis.bank`'s.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import safe_open
from torch import Tensor

from ..errors import LVOError
from ..fileio import check_safetensors_file
from ..identity import file_digest
from ..sae.model import SparseAutoencoder

FORMAT_VERSION = 2
BANK_SEED = 1 << 20  # pool seeds start here: far from the LVO seeds (1, 2, … and the reference's 1024…)
SCORE_STEP_OFFSET = 5 << 28  # noise draws for scoring: never used by the optimizer, the metrics or re-encoding
KINDS = ("sae", "raw")
ScoreKey = tuple[str, str, str, int]  # (hookpoint, unit kind, SAE fingerprint or "", timestep)
_HOOKPOINT_NAME = re.compile(r"^[A-Za-z0-9_.]{1,200}$")
REBUILD = "delete the bank folder and build it again (`python -m lvo_core bank --out FOLDER`)"


class BankError(LVOError):
    """A sample bank is missing, corrupt, or belongs to another model or sampler settings."""


@dataclass(frozen=True)
class BankSettings:
    """How the pool is made and scored. Pool image ``i`` is sampled from seed ``seed + i``, so a bank of 40 is the
    first 40 images of a bank of 160 with the same settings (a bank grows, and a smaller one is its prefix)."""

    size: int = 160
    steps: int = 25
    seed: int = BANK_SEED
    draws: int = 4
    batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("size", "steps", "draws", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BankError(f"bank {name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 63:
            raise BankError(f"bank seed must be an integer in 0..2^63, got {self.seed!r}")

    def identity(self) -> dict[str, Any]:
        """The settings that decide the latents and their scores (not how many there are, nor how they are
        batched)."""
        return {"steps": self.steps, "seed": self.seed, "draws": self.draws, "sampler": "ddim", "prompt": "",
                "guidance": 1.0}


def unit_kind(sae: SparseAutoencoder | None) -> str:
    return "sae" if sae is not None else "raw"


def score_file(key: ScoreKey) -> str:
    """The file name of a score table: built from checked parts only (no name from a file can become a path)."""
    hookpoint, kind, sae_id, t = key
    tag = hashlib.sha256(f"{hookpoint}\0{kind}\0{sae_id}".encode()).hexdigest()[:12]
    return f"scores-{kind}-t{int(t)}-{tag}.safetensors"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))


def chain_length(batches: Sequence[dict]) -> int:
    start = 0
    for b in sorted(batches, key=lambda b: b["start"]):
        if b["start"] != start:
            break
        start += b["count"]
    return start


def file_error(path: Path, what: str) -> BankError:
    return BankError(f"sample bank file {path} {what}; {REBUILD}")


def check_index(path: Path, index: Any) -> dict[str, Any]:
    """Every field bank.json must have, with its type; anything else is a corrupt index."""
    if not isinstance(index, dict):
        raise file_error(path, "is not a JSON object")
    version = index.get("format_version")
    if version != FORMAT_VERSION:
        raise BankError(f"{path} has bank format {version!r}, this version reads format {FORMAT_VERSION} (scores "
                        f"kept per block and SAE, digests per file); {REBUILD}")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise file_error(path, f"is malformed: {what}")

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    need(isinstance(index.get("settings"), dict), "'settings' must be an object")
    try:
        BankSettings(**index["settings"])
    except (TypeError, LVOError) as exc:
        raise file_error(path, f"has bad settings ({exc})") from None
    need(isinstance(index.get("model_id"), str), "'model_id' must be a string")
    shape = index.get("latent_shape")
    need(isinstance(shape, list) and len(shape) == 3 and all(count(v) and v > 0 for v in shape),
         "'latent_shape' must be three positive integers")
    need(count(index.get("size")), "'size' must be a count")
    need(isinstance(index.get("batches"), list) and isinstance(index.get("scores"), list),
         "'batches' and 'scores' must be lists")
    for b in index["batches"]:
        need(isinstance(b, dict) and count(b.get("start")) and count(b.get("count")) and b["count"] > 0
             and isinstance(b.get("sha256"), str), f"batch entry {b!r}")
        need(b.get("file") == batch_path(Path(), b["start"]).name, f"batch file name {b.get('file')!r}")
    starts = [b["start"] for b in index["batches"]]
    need(len(set(starts)) == len(starts), "two batches start at the same sample")
    for e in index["scores"]:
        need(isinstance(e, dict) and isinstance(e.get("hookpoint"), str)
             and bool(_HOOKPOINT_NAME.match(e["hookpoint"])) and e.get("kind") in KINDS
             and isinstance(e.get("sae_id"), str) and bool(re.fullmatch(r"[0-9a-f]{0,64}", e["sae_id"]))
             and count(e.get("timestep")) and count(e.get("rows")) and count(e.get("units"))
             and isinstance(e.get("sha256"), str), f"score entry {e!r}")
        need(e.get("file") == score_file(entry_key(e)), f"score file name {e.get('file')!r}")
    return index


def read_index(folder: Path) -> dict[str, Any]:
    path = folder / "bank.json"
    if not folder.is_dir():
        raise BankError(f"{folder} is not a sample bank folder; build one with `python -m lvo_core bank --out "
                        f"{folder}`")
    if not path.is_file():
        raise BankError(f"{folder} is not a sample bank (no bank.json); build one with `python -m lvo_core bank`")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise file_error(path, f"is not readable JSON ({exc})") from None
    return check_index(path, index)


def read_settings(folder: str | Path) -> BankSettings | None:
    """The settings of the bank in ``folder`` (None when there is none yet), from its checked index."""
    folder = Path(folder)
    return BankSettings(**read_index(folder)["settings"]) if (folder / "bank.json").exists() else None


def entry_key(entry: dict[str, Any]) -> ScoreKey:
    return (entry["hookpoint"], entry["kind"], entry["sae_id"], int(entry["timestep"]))


def read_tensor(folder: Path, entry: dict[str, Any], name: str) -> Tensor:
    """One tensor of a listed file: a regular file (not a link), its digest as recorded, readable, finite."""
    path = folder / entry["file"]
    if path.is_symlink() or not path.is_file():
        raise file_error(path, "is missing or not a regular file (bank files are never read through links)")
    try:
        check_safetensors_file(path)
        if file_digest(path) != entry["sha256"]:
            raise file_error(path, "does not match the digest in bank.json (changed or damaged since it was written)")
        with safe_open(str(path), framework="pt") as fh:
            tensor = fh.get_tensor(name)
    except BankError:
        raise
    except Exception as exc:  # safetensors raises its own error types, torch TypeError/RuntimeError
        raise file_error(path, f"cannot be read ({type(exc).__name__}: {exc})") from None
    if not torch.isfinite(tensor.float()).all():
        raise file_error(path, "holds NaN or inf values")
    return tensor


def load_table(folder: Path, entry: dict[str, Any], size: int) -> Tensor:
    table = read_tensor(folder, entry, "scores")
    if tuple(table.shape) != (size, entry["units"]):
        raise file_error(folder / entry["file"], f"has shape {tuple(table.shape)}, bank.json says ({size}, "
                                            f"{entry['units']})")
    return table


def batch_path(folder: Path, start: int) -> Path:
    return folder / f"latents-{start:05d}.safetensors"


def load_batches(folder: Path, index: dict[str, Any]) -> Tensor:
    """Latents of the batches bank.json lists, in pool order up to the first gap (files it does not list — a
    batch saved by a build killed before its index update — are ignored and sampled again)."""
    rows, start = [], 0
    shape = tuple(index["latent_shape"])
    for entry in sorted(index["batches"], key=lambda b: b["start"]):
        if entry["start"] != start:
            break
        tensor = read_tensor(folder, entry, "latents")
        if tuple(tensor.shape) != (entry["count"], *shape):
            raise file_error(folder / entry["file"], f"has shape {tuple(tensor.shape)}, bank.json says "
                                                f"({entry['count']}, {shape_text(shape)})")
        rows.append(tensor.float())
        start += entry["count"]
    return torch.cat(rows) if rows else torch.empty(0, *shape)


def check_compatible(folder: Path, index: dict[str, Any], settings: BankSettings, model_id: str,
                      shape: tuple[int, ...]) -> None:
    """Refuse, before any work, a bank folder whose samples this build could not extend: another model, latent
    size or sampler setting (its size may differ: a bank grows, and a smaller one is its prefix)."""
    if index["model_id"] != model_id:
        raise BankError(f"{folder} holds a sample bank of another model (the weights or the noise schedule differ); "
                        f"give a new bank folder (--out / --bank) for this model")
    if tuple(index["latent_shape"]) != shape:
        raise BankError(f"{folder} holds a bank of {shape_text(index['latent_shape'])} latents, this model makes "
                        f"{shape_text(shape)}; give a new bank folder for this image size")
    have = BankSettings(**index["settings"]).identity()
    flags = {"steps": "--steps", "seed": "the seed", "draws": "the draws"}
    for name, value in settings.identity().items():
        if have[name] != value:
            raise BankError(f"{folder} holds a bank made with other settings ({name} {have[name]}, this run asks "
                            f"{value}); give {flags.get(name, name)} {have[name]} to use it, or a new bank folder")
