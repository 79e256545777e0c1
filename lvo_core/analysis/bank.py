"""The sample bank: a pool of the model's own unconditional samples, scored for units, built once and reused.

Gradient methods find directions off the data that raise a feature and lose its concept; choosing among the
model's own samples stays on the data. One pool serves every unit of every block of a model (and every
visualization, the atlas, model-generated dataset examples and feature search): sample ``size`` latents with the
empty prompt, no CFG, DDIM ``steps``; then, per (block, unit kind, SAE, selection timestep t), score each sample for
every unit — the unit's spatial-mean dense activation on the latent noised to t, averaged over ``draws`` fixed
noise draws that no optimizer or metric uses.

On disk a bank is a folder (its layout, settings and reading: :mod:`~lvo_core.analysis.bank_format`; scoring:
:mod:`~lvo_core.analysis.bank_scoring`; here: the pool object, writing under the folder's lock, building; every
public name of the three is importable from here). What is refused: a bank of another model (a sampled hash of
the weights and the ᾱ schedule — not the latent size, which only matters where pool images become starts) or
other sampler settings, before any work. Reading never writes (a read-only bank serves whatever it holds); writers
take a lock, so concurrent builders add to one index instead of overwriting each other; every file is checked
against its digest and for NaN on load, and a corrupt one is named with what to do.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from safetensors.torch import save_file
from torch import Tensor

from ..errors import LVOError, UnitError
from ..fileio import atomic_write, check_file_target, ensure_folder
from ..identity import digest, file_digest, strided_sample
from ..model.backend import Backend
from ..model.sampling import sample_with
from ..sae.model import SparseAutoencoder
from .activity import sae_fingerprint
from .bank_format import (
    BANK_SEED,
    FORMAT_VERSION,
    KINDS,
    SCORE_STEP_OFFSET,
    BankError,
    BankSettings,
    ScoreKey,
    batch_path,
    check_compatible,
    chain_length,
    entry_key,
    load_batches,
    load_table,
    read_index,
    read_settings,
    score_file,
    shape_text,
    unit_kind,
)
from .bank_scoring import Progress, score_latents

__all__ = ["BANK_SEED", "FORMAT_VERSION", "KINDS", "SCORE_STEP_OFFSET", "BankError", "BankSettings", "Progress",
           "SampleBank", "ScoreKey", "build_bank", "model_fingerprint", "read_settings", "score_file",
           "score_latents", "unit_kind"]


def model_fingerprint(backend: Backend) -> str:
    """A short hash of what decides the samples up to their size: a strided sample of every weight (bounded cost
    even for SD-sized models) and the ᾱ schedule. The latent size is kept apart (:attr:`SampleBank.latent_shape`):
    feature search reads a bank beside images of any size."""
    unet = backend.denoiser
    if unet is None:
        raise BankError("this backend exposes no model to fingerprint; a bank needs one to refuse foreign models")
    return digest(unet.named_parameters(), values=strided_sample(256), header=("name", "shape"),
                  extra=backend.schedule.signature(), length=16)


@dataclass
class SampleBank:
    """Pool latents ``[N, C, H, W]`` and score tables ``[N, U]`` keyed by :data:`ScoreKey`. ``hookpoint`` is the
    block the bank is used at now (set by :meth:`check_matches`); score lookups without one use it."""

    latents: Tensor
    settings: BankSettings
    hookpoint: str | None
    model_id: str
    scores: dict[ScoreKey, Tensor] = field(default_factory=dict)
    path: Path | None = None
    latent_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.latent_shape is None and self.latents.ndim == 4:
            self.latent_shape = tuple(self.latents.shape[1:])
        self._sae_ids: dict[int, tuple[SparseAutoencoder, str]] = {}
        self._models: dict[int, Backend] = {}  # backends whose model was checked (by object: weights can change)

    @property
    def size(self) -> int:
        return len(self.latents)

    @property
    def seeds(self) -> list[int]:
        return [self.settings.seed + i for i in range(self.size)]

    @property
    def hookpoints(self) -> list[str]:
        """Every block this bank holds scores of."""
        return sorted({k[0] for k in self.scores})

    def sae_id(self, sae: SparseAutoencoder | None) -> str:
        """The SAE's fingerprint ("" for raw channels), computed once per SAE object."""
        if sae is None:
            return ""
        cached = self._sae_ids.get(id(sae))
        if cached is None or cached[0] is not sae:
            cached = self._sae_ids[id(sae)] = (sae, sae_fingerprint(sae))
        return cached[1]

    def key(self, t: int, sae: SparseAutoencoder | None = None, hookpoint: str | None = None) -> ScoreKey:
        """The key of the scores of ``sae``'s features (None: raw channels) at ``t`` of ``hookpoint`` (default:
        the block the bank is used at)."""
        hookpoint = hookpoint or self.hookpoint
        if hookpoint is None:
            raise BankError("this sample bank is not bound to a block yet: call check_matches(backend) first, or "
                            f"name the hookpoint (it holds scores of {', '.join(self.hookpoints) or 'no block'})")
        return (hookpoint, unit_kind(sae), self.sae_id(sae), int(t))

    def prefix(self, size: int) -> "SampleBank":
        """The first ``size`` pool images with their scores: exactly the bank a build of that size gives. In memory
        (nothing written through it)."""
        if not isinstance(size, int) or not 0 < size <= self.size:
            raise BankError(f"--bank-size {size} is outside this bank's 1..{self.size}; give a smaller --bank-size "
                            f"or grow the bank (`python -m lvo_core bank --size {size}`)")
        if size == self.size:
            return self
        return SampleBank(self.latents[:size], replace(self.settings, size=size), self.hookpoint, self.model_id,
                          {k: v[:size] for k, v in self.scores.items()}, None, self.latent_shape)

    # ------------------------------------------------------------------ checks
    def check_matches(self, backend: Backend, sae: SparseAutoencoder | None = None, *, any_size: bool = False) \
            -> None:
        """Refuse a bank of another model (or, unless ``any_size``, of another latent size: its images become
        starts), naming what differs; then use the bank at the backend's block. Scores of another block or SAE
        are kept apart, never refused: the samples are the model's."""
        self._check_model(backend)
        shape = tuple(backend.latent_shape)
        if not any_size and self.latent_shape is not None and tuple(self.latent_shape) != shape:
            raise BankError(f"this sample bank holds {shape_text(self.latent_shape)} latents, this run makes "
                            f"{shape_text(shape)} (another image size); build a bank at this size (a new --bank "
                            f"folder, or an Empty Latent of the bank's size)")
        self.hookpoint = backend.hookpoint.diffusers_name
        self.sae_id(sae)

    # ------------------------------------------------------------------ scoring
    def ensure_scores(self, backend: Backend, sae: SparseAutoencoder | None, timesteps: Sequence[int],
                      on_progress: Progress | None = None) -> None:
        """Score every pool image for every unit of the backend's block at each of ``timesteps`` not scored yet
        (saved with the bank when it has a folder, so later runs reuse them). The model is checked first."""
        hookpoint = backend.hookpoint.diffusers_name
        self._check_model(backend)
        keys = [self.key(t, sae, hookpoint) for t in dict.fromkeys(int(t) for t in timesteps)]
        if all(k in self.scores for k in keys):
            return
        backend.schedule.check([k[3] for k in keys])
        with _locked(self.path, "score it at t = " + ", ".join(str(k[3]) for k in keys)):
            if self.path is not None:  # another process may have scored some meanwhile
                self._adopt_scores(read_index(self.path))
            todo = [k for k in keys if k not in self.scores]
            for i, key in enumerate(todo):
                base = i * self.size * self.settings.draws

                def progress(done: int, _total: int, base: int = base) -> None:
                    if on_progress is not None:
                        on_progress(base + done, len(todo) * self.size * self.settings.draws)

                table = score_latents(backend, self.latents, key[3], sae, self.settings.draws,
                                      self.settings.batch_size, progress)
                if not torch.isfinite(table).all():
                    raise BankError(f"scoring at t = {key[3]} gave NaN or inf (fp16 overflow or a broken model); "
                                    f"check the model and its precision")
                self.scores[key] = table
                if self.path is not None:
                    entry = _save_table(self.path, key, table)
                    _update_index(self.path, scores=[entry])

    def _check_model(self, backend: Backend) -> None:
        if self._models.get(id(backend)) is backend:
            return
        if model_fingerprint(backend) != self.model_id:
            raise BankError("this sample bank was made with a different model (the weights or the noise schedule "
                            "differ); build a bank with the model you are using (a new --bank folder)")
        self._models[id(backend)] = backend

    def _adopt_scores(self, index: dict[str, Any]) -> None:
        for entry in index["scores"]:
            key = entry_key(entry)
            if key not in self.scores and entry["rows"] == self.size:
                self.scores[key] = load_table(self.path, entry, self.size)

    def table(self, t: int, sae: SparseAutoencoder | None = None) -> Tensor:
        """The score table ``[N, U]`` of the bank's block for ``sae`` (None: raw channels) at ``t``."""
        key = self.key(t, sae)
        if key not in self.scores:
            raise BankError(f"this bank has no {key[1]} scores of {key[0]} at t = {t}; score it first "
                            f"(ensure_scores)")
        return self.scores[key]

    def score(self, unit: int, t: int, sae: SparseAutoencoder | None = None, pool: int | None = None) -> Tensor:
        """Scores ``[N]`` of one unit at timestep ``t`` (``pool``: only the first that many images)."""
        table = self.table(t, sae)
        kind = unit_kind(sae)
        if not 0 <= int(unit) < table.shape[1]:
            raise UnitError(f"unit {unit} is out of range: the bank scores {table.shape[1]} {kind} units")
        n = self.size if pool is None else int(pool)
        if not 0 < n <= self.size:
            raise BankError(f"pool size {n} is outside this bank's 1..{self.size}; build a larger bank")
        return table[:n, int(unit)].float()

    def top(self, unit: int, t: int, count: int, sae: SparseAutoencoder | None = None,
            pool: int | None = None) -> list[int]:
        """Indices of the ``count`` pool images that drive ``unit`` hardest at ``t``, best first (ties by index)."""
        scores = self.score(unit, t, sae, pool)
        if count > len(scores):
            raise BankError(f"{count} images asked from a pool of {len(scores)}; build a larger bank or ask fewer")
        return torch.sort(scores, descending=True, stable=True).indices[:count].tolist()

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        """What the bank is (settings, model, size, blocks and score tables), as recorded in results."""
        return {"format_version": FORMAT_VERSION, "settings": asdict(self.settings), "hookpoint": self.hookpoint,
                "model_id": self.model_id, "size": self.size, "latent_shape": list(self.latent_shape or ()),
                "scores": sorted([list(k) for k in self.scores])}

    def save(self, folder: str | Path) -> Path:
        """Write the whole bank (latents as one batch file, every score table, the index) into ``folder``."""
        folder = ensure_folder(folder)
        with _locked(folder, "save it"):
            batch = _save_batch(folder, 0, self.latents, self.model_id)
            _write_index(folder, _new_index(self.settings, self.model_id, self.latent_shape), batches=[batch],
                         scores=[_save_table(folder, k, v) for k, v in self.scores.items()])
        self.path = folder
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, partial: bool = False) -> "SampleBank":
        """A finished bank from its folder (``partial``: also an unfinished one, to resume). Reads only."""
        folder = Path(folder)
        index = read_index(folder)
        settings = BankSettings(**index["settings"])
        latents = load_batches(folder, index)
        if len(latents) < settings.size and not partial:
            raise BankError(f"sample bank {folder} is unfinished ({len(latents)} of {settings.size} samples); "
                            f"finish it: `python -m lvo_core bank --out {folder} --size {settings.size} --steps "
                            f"{settings.steps}` with the same model")
        bank = cls(latents, settings, None, index["model_id"], path=folder,
                   latent_shape=tuple(index["latent_shape"]))
        bank._adopt_scores(index)
        blocks = bank.hookpoints
        bank.hookpoint = blocks[0] if len(blocks) == 1 else None
        return bank


@contextmanager
def _locked(folder: Path | None, what: str) -> Iterator[None]:
    """Hold the bank folder's write lock (``.lock``, an advisory lock the system drops when the process dies, so a
    killed builder never blocks the next) for the block; None (an in-memory bank) locks nothing. Re-entrant."""
    held = (threading.get_ident(), folder.resolve() if folder is not None else None)
    if folder is None or held in _HELD:
        yield
        return
    lock = folder / ".lock"
    try:
        fd = _open_lock(lock)
    except OSError as exc:
        raise BankError(f"sample bank {folder} cannot be written ({exc.strerror or exc}) and lacks what this run "
                        f"needs ({what}); copy it to a folder you can write, or ask for what it holds") from None
    except LVOError as exc:
        raise BankError(f"sample bank {folder}: {exc}") from None
    try:
        _lock_fd(fd)
        _HELD.add(held)
        try:
            yield
        finally:
            _HELD.discard(held)
    finally:
        os.close(fd)  # closing drops the lock


_HELD: set[tuple[int, Path | None]] = set()  # (thread, folder) locks this process holds


def _open_lock(lock: Path) -> int:
    check_file_target(lock)
    return os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)


def _lock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt's byte-range lock, retried while another process holds it
        import msvcrt
        import time

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.1)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _new_index(settings: BankSettings, model_id: str, latent_shape: Sequence[int] | None) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "settings": asdict(settings), "model_id": model_id,
            "latent_shape": list(latent_shape or ()), "size": 0, "batches": [], "scores": []}


def _write_index(folder: Path, index: dict[str, Any], batches: Sequence[dict] = (),
                 scores: Sequence[dict] = ()) -> dict[str, Any]:
    """Write ``index`` with ``batches`` and ``scores`` entries added (an entry replaces one of the same file)."""
    index = dict(index)
    index["batches"] = sorted({**{b["file"]: b for b in index["batches"]}, **{b["file"]: b for b in batches}}.values(),
                              key=lambda b: b["start"])
    index["scores"] = sorted({**{e["file"]: e for e in index["scores"]}, **{e["file"]: e for e in scores}}.values(),
                             key=lambda e: e["file"])
    index["size"] = chain_length(index["batches"])
    text = json.dumps(index, indent=1)
    atomic_write(folder / "bank.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return index


def _update_index(folder: Path, **entries: Sequence[dict]) -> dict[str, Any]:
    """Add entries to the index on disk as it is now (the caller holds the lock): what others added stays."""
    return _write_index(folder, read_index(folder), **entries)


def _save_table(folder: Path, key: ScoreKey, table: Tensor) -> dict[str, Any]:
    path = folder / score_file(key)
    table = table.contiguous()
    meta = {"hookpoint": key[0], "kind": key[1], "sae_id": key[2], "timestep": str(key[3])}
    atomic_write(path, lambda tmp: save_file({"scores": table}, str(tmp), metadata=meta))
    return {"file": path.name, "hookpoint": key[0], "kind": key[1], "sae_id": key[2], "timestep": key[3],
            "rows": int(table.shape[0]), "units": int(table.shape[1]), "sha256": file_digest(path)}


def _save_batch(folder: Path, start: int, latents: Tensor, model_id: str) -> dict[str, Any]:
    path = batch_path(folder, start)
    atomic_write(path, lambda tmp: save_file({"latents": latents.float().contiguous()}, str(tmp),
                                             metadata={"start": str(start), "model_id": model_id}))
    return {"file": path.name, "start": start, "count": len(latents), "sha256": file_digest(path)}


def build_bank(backend: Backend, settings: BankSettings = BankSettings(), *, sae: SparseAutoencoder | None = None,
               timesteps: Sequence[int] = (), out: str | Path | None = None, on_progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None) -> SampleBank:
    """Sample the pool (resuming or growing a bank in ``out``), then score it at ``timesteps`` at the backend's
    block.

    ``out`` None keeps the bank in memory. An existing bank is reused when its model, latent size and sampler
    settings match, and refused before any work otherwise; with at least ``settings.size`` samples it is only read
    (it may be read-only; take :meth:`SampleBank.prefix` for fewer), with fewer it grows. ``should_stop()`` between
    batches raises ``KeyboardInterrupt`` after the finished batches are saved, so a rerun continues from there.
    ``on_progress(sample-steps done, size × steps)`` after every denoising step of every batch.
    """
    model_id = model_fingerprint(backend)
    shape = tuple(backend.latent_shape)
    hookpoint = backend.hookpoint.diffusers_name
    folder = Path(out) if out is not None else None
    index: dict[str, Any] | None = None
    if folder is not None and (folder / "bank.json").exists():
        index = read_index(folder)
        check_compatible(folder, index, settings, model_id, shape)
    if timesteps:
        backend.schedule.check(list(timesteps))
    if folder is not None and index is not None and index["size"] >= settings.size:
        bank = SampleBank.load(folder, partial=True)  # nothing to sample: read only
        bank.settings = replace(bank.settings, size=bank.size)
        bank.hookpoint = hookpoint
        bank.ensure_scores(backend, sae, timesteps)
        return bank
    if folder is not None:
        ensure_folder(folder)
    with _locked(folder, f"sample {settings.size} images"):
        done = torch.empty(0, *shape)
        if folder is not None and (folder / "bank.json").exists():  # again under the lock: another builder
            index = read_index(folder)
            check_compatible(folder, index, settings, model_id, shape)
            done = load_batches(folder, index)
        if folder is not None:
            index = _write_index(folder, {**(index or _new_index(settings, model_id, shape)),
                                          "settings": asdict(replace(settings, size=max(settings.size, len(done))))})
        scheduler = backend.schedule.sampler(settings.steps)
        context = backend.empty_context(1)
        parts = [done] if len(done) else []
        start = len(done)
        n_steps = settings.steps
        if on_progress is not None:
            on_progress(start * n_steps, settings.size * n_steps)
        while start < settings.size:
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt(f"bank build stopped after {start} of {settings.size} samples")
            seeds = list(range(settings.seed + start, settings.seed + min(settings.size, start + settings.batch_size)))

            def step(i: int, _t: int, _x: Tensor, first: int = start, n: int = len(seeds)) -> None:
                if on_progress is not None:
                    on_progress(first * n_steps + (i + 1) * n, settings.size * n_steps)

            with torch.inference_mode(False):
                latents = sample_with(backend.predict, scheduler, context, steps=settings.steps, seeds=seeds,
                                      latent_shape=backend.latent_shape, device=backend.device,
                                      dtype=torch.float32, on_step=step).float().cpu()
            if not torch.isfinite(latents).all():
                raise BankError("the model produced NaN or inf samples; check the model and its precision")
            if folder is not None:
                index = _write_index(folder, index, batches=[_save_batch(folder, start, latents, model_id)])
            parts.append(latents)
            start += len(latents)
        latents = torch.cat(parts)
        bank = SampleBank(latents, replace(settings, size=len(latents)), hookpoint, model_id, path=folder,
                          latent_shape=shape)
        if index is not None:
            bank._adopt_scores(index)
        if timesteps:
            bank.ensure_scores(backend, sae, timesteps)
    return bank
