"""The sample bank: a pool of the model's own unconditional samples, scored for every unit, built once and reused.

Gradient methods find directions off the data that raise a feature and lose its concept; choosing among the
model's own samples stays on the data. One pool serves every unit of a block (and every visualization, the atlas,
and model-generated dataset examples): sample ``size`` latents with the empty prompt, no CFG, DDIM ``steps``; then,
per selection timestep t, score each sample for every unit — the unit's spatial-mean dense activation on the
latent noised to t, averaged over ``draws`` fixed noise draws that no optimizer or metric uses.

On disk a bank is a folder: ``bank.json`` (settings, fingerprints, what is finished), one ``latents-NNNNN.safetensors``
per finished batch of samples (so an interrupted build resumes where it stopped) and one
``scores-<kind>-t<t>.safetensors`` per scored (unit kind, timestep). Fingerprints tie it to the model (a sampled
hash of the weights, the ᾱ schedule, the latent shape), the hookpoint and the SAE: a bank made with another model or
SAE is refused, not silently reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import LVOError, UnitError
from ..fileio import atomic_write, check_safetensors_file
from ..model.backend import Backend
from ..model.noise import step_noise
from ..model.sampling import sample_with
from ..sae.model import SparseAutoencoder
from .activity import sae_fingerprint, unit_activations

FORMAT_VERSION = 1
BANK_SEED = 1 << 20  # pool seeds start here: far from the LVO seeds (1, 2, … and the reference's 1024…)
SCORE_STEP_OFFSET = 5 << 28  # noise draws for scoring: never used by the optimizer, the metrics or re-encoding
Progress = Callable[[int, int], None]


class BankError(LVOError):
    """A sample bank is missing, corrupt, or belongs to another model, hookpoint or SAE."""


@dataclass(frozen=True)
class BankSettings:
    """How the pool is made and scored. Pool image ``i`` is sampled from seed ``seed + i``, so a bank of 40 is the
    first 40 images of a bank of 160 with the same settings."""

    size: int = 160
    steps: int = 25
    seed: int = BANK_SEED
    draws: int = 4
    batch_size: int = 32

    def __post_init__(self) -> None:
        for name in ("size", "steps", "draws", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise BankError(f"bank {name} must be a positive integer, got {value!r}")

    def identity(self) -> dict[str, Any]:
        """The settings that decide the latents and their scores (not how they are batched)."""
        return {"size": self.size, "steps": self.steps, "seed": self.seed, "draws": self.draws, "sampler": "ddim",
                "prompt": "", "guidance": 1.0}


def model_fingerprint(backend: Backend) -> str:
    """A short hash of what decides the samples: a strided sample of every weight (bounded cost even for SD-sized
    models), the ᾱ schedule and the latent shape."""
    h = hashlib.sha256()
    unet = getattr(backend, "unet", None)
    if unet is None:
        raise BankError("this backend exposes no model to fingerprint; a bank needs one to refuse foreign models")
    with torch.inference_mode(False), torch.no_grad():
        for name, p in unet.named_parameters():
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // 256)
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(flat[::step][:256].float().cpu().numpy().tobytes())
    h.update(backend.schedule.signature())
    h.update(str(tuple(backend.latent_shape)).encode())
    return h.hexdigest()[:16]


def unit_kind(sae: SparseAutoencoder | None) -> str:
    return "sae" if sae is not None else "raw"


@dataclass
class SampleBank:
    """Pool latents ``[N, C, H, W]`` and, per ``(unit kind, timestep)``, scores ``[N, U]`` for every unit."""

    latents: Tensor
    settings: BankSettings
    hookpoint: str
    model_id: str
    sae_id: str | None = None
    scores: dict[tuple[str, int], Tensor] = field(default_factory=dict)
    path: Path | None = None

    @property
    def size(self) -> int:
        return len(self.latents)

    @property
    def seeds(self) -> list[int]:
        return [self.settings.seed + i for i in range(self.size)]

    # ------------------------------------------------------------------ checks
    def check_matches(self, backend: Backend, sae: SparseAutoencoder | None = None) -> None:
        """Refuse a bank made for another model, hookpoint or SAE, naming what differs."""
        from ..hookpoints import equivalent_names

        if not set(equivalent_names(self.hookpoint)) & set(equivalent_names(backend.hookpoint.diffusers_name)):
            raise BankError(f"this sample bank was scored at hookpoint '{self.hookpoint}', not "
                            f"'{backend.hookpoint.diffusers_name}'; build a bank for that block")
        if model_fingerprint(backend) != self.model_id:
            raise BankError("this sample bank was made with a different model (its fingerprint differs); build a "
                            "bank with the model you are visualizing")
        if sae is not None and self.sae_id is not None and sae_fingerprint(sae) != self.sae_id:
            raise BankError("this sample bank was scored with a different SAE (its fingerprint differs); build a "
                            "bank with the SAE you are using, or a new bank folder")

    # ------------------------------------------------------------------ scoring
    def ensure_scores(self, backend: Backend, sae: SparseAutoencoder | None, timesteps: Sequence[int],
                      on_progress: Progress | None = None) -> None:
        """Score every pool image for every unit at each of ``timesteps`` not scored yet (saved when the bank has
        a folder, so later runs reuse them)."""
        kind = unit_kind(sae)
        if sae is not None:
            sid = sae_fingerprint(sae)
            if self.sae_id is not None and sid != self.sae_id:
                raise BankError("this sample bank was scored with a different SAE; use a new bank folder for it")
            self.sae_id = sid
        todo = [int(t) for t in dict.fromkeys(int(t) for t in timesteps) if (kind, int(t)) not in self.scores]
        if not todo:
            return
        backend.schedule.check(todo)
        for i, t in enumerate(todo):
            base = i * self.size * self.settings.draws

            def progress(done: int, _total: int, base: int = base) -> None:
                if on_progress is not None:
                    on_progress(base + done, len(todo) * self.size * self.settings.draws)

            self.scores[(kind, t)] = score_latents(backend, self.latents, t, sae, self.settings.draws,
                                                   self.settings.batch_size, progress)
            if self.path is not None:
                self._save_scores(kind, t)
                self._write_index()

    def score(self, unit: int, t: int, sae: SparseAutoencoder | None = None, pool: int | None = None) -> Tensor:
        """Scores ``[N]`` of one unit at timestep ``t`` (``pool``: only the first that many images)."""
        kind = unit_kind(sae)
        if (kind, int(t)) not in self.scores:
            raise BankError(f"this bank has no {kind} scores at t = {t}; score it first (ensure_scores)")
        table = self.scores[(kind, int(t))]
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
        return {"format_version": FORMAT_VERSION, "settings": asdict(self.settings), "hookpoint": self.hookpoint,
                "model_id": self.model_id, "sae_id": self.sae_id, "size": self.size,
                "latent_shape": list(self.latents.shape[1:]),
                "scores": sorted([kind, t] for kind, t in self.scores)}

    def _write_index(self) -> None:
        assert self.path is not None
        text = json.dumps(self.describe(), indent=1)
        atomic_write(self.path / "bank.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def _save_scores(self, kind: str, t: int) -> None:
        assert self.path is not None
        table = self.scores[(kind, t)].contiguous()
        meta = {"kind": kind, "timestep": str(t), "sae_id": self.sae_id or "", "model_id": self.model_id}
        atomic_write(self.path / f"scores-{kind}-t{t}.safetensors",
                     lambda tmp: save_file({"scores": table}, str(tmp), metadata=meta))

    def save(self, folder: str | Path) -> Path:
        """Write the whole bank (latents as one batch file, every score table, the index) into ``folder``."""
        self.path = Path(folder)
        self.path.mkdir(parents=True, exist_ok=True)
        _save_batch(self.path, 0, self.latents, self.model_id)
        for kind, t in self.scores:
            self._save_scores(kind, t)
        self._write_index()
        return self.path

    @classmethod
    def load(cls, folder: str | Path) -> "SampleBank":
        """A finished bank from its folder (an unfinished one: resume it with :func:`build_bank`)."""
        folder = Path(folder)
        index = _read_index(folder)
        settings = BankSettings(**index["settings"])
        latents = _load_batches(folder, index["model_id"])
        if len(latents) < settings.size:
            raise BankError(f"sample bank {folder} is unfinished ({len(latents)} of {settings.size} samples); "
                            f"rerun the bank build with the same settings to finish it")
        bank = cls(latents[:settings.size], settings, index["hookpoint"], index["model_id"], index.get("sae_id"),
                   path=folder)
        for kind, t in index.get("scores", []):
            path = folder / f"scores-{kind}-t{t}.safetensors"
            check_safetensors_file(path)
            table = load_file(str(path))["scores"]
            if table.shape[0] != settings.size:
                raise BankError(f"{path} scores {table.shape[0]} samples, the bank has {settings.size}; delete it "
                                f"and score again")
            bank.scores[(kind, int(t))] = table
        return bank


def _read_index(folder: Path) -> dict[str, Any]:
    path = folder / "bank.json"
    if not path.is_file():
        raise BankError(f"{folder} is not a sample bank (no bank.json); build one with `python -m lvo_core bank`")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BankError(f"{path} is not readable JSON ({exc}); delete the bank folder and build it again") from exc
    if index.get("format_version") != FORMAT_VERSION:
        raise BankError(f"{path} has bank format {index.get('format_version')}, expected {FORMAT_VERSION}; build "
                        f"the bank again")
    return index


def _batch_path(folder: Path, start: int) -> Path:
    return folder / f"latents-{start:05d}.safetensors"


def _save_batch(folder: Path, start: int, latents: Tensor, model_id: str) -> None:
    atomic_write(_batch_path(folder, start),
                 lambda tmp: save_file({"latents": latents.float().contiguous()}, str(tmp),
                                       metadata={"start": str(start), "model_id": model_id}))


def _load_batches(folder: Path, model_id: str) -> Tensor:
    """Latents of the finished batches, in pool order; stops at the first gap."""
    found: dict[int, Tensor] = {}
    for path in sorted(folder.glob("latents-*.safetensors")):
        check_safetensors_file(path)
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensor = fh.get_tensor("latents")
        if meta.get("model_id") != model_id:
            raise BankError(f"{path} was sampled with another model than {folder / 'bank.json'} says; delete the "
                            f"bank folder and build it again")
        found[int(meta["start"])] = tensor
    rows, start = [], 0
    while start in found:
        rows.append(found[start])
        start += len(found[start])
    return torch.cat(rows) if rows else torch.empty(0)


@torch.no_grad()
def score_latents(backend: Backend, latents: Tensor, t: int, sae: SparseAutoencoder | None, draws: int,
                  batch_size: int = 32, on_progress: Progress | None = None) -> Tensor:
    """Spatial-mean dense activation ``[N, U]`` (fp16) of every unit on ``latents`` noised to ``t``, averaged over
    ``draws`` noise draws seeded per image (reserved step indices: independent of batching).
    ``on_progress(image-draws done, images × draws)`` after every draw of every batch."""
    with torch.inference_mode(False), torch.no_grad():
        out = []
        for start in range(0, len(latents), batch_size):
            z = latents[start:start + batch_size].to(backend.device, torch.float32)
            tt = torch.full((len(z),), int(t), device=backend.device, dtype=torch.long)
            total = None
            for d in range(draws):
                eps = step_noise(range(start, start + len(z)), SCORE_STEP_OFFSET + d, z.shape[1:], backend.device)
                tokens, _ = backend.block_tokens(backend.schedule.add_noise(z, tt, eps), tt, backend.empty_context(len(z)))
                acts = unit_activations(tokens, sae).float()
                total = acts if total is None else total + acts
                if on_progress is not None:
                    on_progress(start * draws + (d + 1) * len(z), len(latents) * draws)
            out.append((total / draws).half().cpu())
        return torch.cat(out)


def build_bank(backend: Backend, settings: BankSettings = BankSettings(), *, sae: SparseAutoencoder | None = None,
               timesteps: Sequence[int] = (), out: str | Path | None = None, on_progress: Progress | None = None,
               should_stop: Callable[[], bool] | None = None) -> SampleBank:
    """Sample the pool (resuming a partly built bank in ``out``), then score it at ``timesteps``.

    ``out`` None keeps the bank in memory. An existing folder is reused only if its sampling settings and model
    match; finished batches are kept, the rest is sampled. ``should_stop()`` between batches raises
    ``KeyboardInterrupt`` after the finished batches are saved, so a rerun continues from there.
    ``on_progress(sample-steps done, size × steps)`` after every denoising step of every batch.
    """
    model_id = model_fingerprint(backend)
    folder = Path(out) if out is not None else None
    done = torch.empty(0)
    if folder is not None and (folder / "bank.json").is_file():
        index = _read_index(folder)
        if index["model_id"] != model_id:
            raise BankError(f"{folder} holds a bank of another model; choose a new folder or delete it")
        if BankSettings(**index["settings"]).identity() != settings.identity():
            raise BankError(f"{folder} holds a bank made with other settings ({index['settings']}); choose a new "
                            f"folder or the same settings")
        done = _load_batches(folder, model_id)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if len(done) >= settings.size:
        bank = SampleBank.load(folder)
    else:
        bank = SampleBank(done, settings, backend.hookpoint.diffusers_name, model_id, path=folder)
        if folder is not None:
            bank._write_index()
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
            _save_batch(folder, start, latents, model_id)
        parts.append(latents)
        start += len(latents)
    bank.latents = torch.cat(parts)[:settings.size]
    if folder is not None:
        bank._write_index()
    if timesteps:
        bank.ensure_scores(backend, sae, timesteps)
    return bank
