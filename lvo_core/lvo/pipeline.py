"""Visualize units end to end: plan (unit, timestep, seed) rows, make priors, optimize in batches, decode, measure.

Rows follow the reference protocol: for each unit, one run per timestep in {0} ∪ its activity peaks (or explicit
timesteps), each with every seed; all timesteps of a unit start from the same prior per seed. Rows of different
units share batches — each row carries its own unit, timestep and seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..analysis.activity import ActivityAnalysis
from ..analysis.metrics import display_images, unit_metrics
from ..analysis.steering import REFERENCE_SEEDS
from ..errors import LVOError, UnitError
from ..hookpoints import check_sae_fits, check_sae_reads
from ..model.backend import Backend
from ..model.sampling import seeded_noise
from ..sae.model import SparseAutoencoder
from .objectives import Channel, SAEFeature
from .optimize import PRESETS, LVOConfig, LVOResult, history_keys, optimize

PriorFn = Callable[[list[int], list[int]], Tensor]
AFTER_STEPS = 2  # progress units per row after its optimizer steps: measuring it, decoding it


@dataclass(frozen=True)
class Row:
    unit: int
    timestep: int
    seed: int


Timesteps = str | Sequence[int] | Mapping[int, Sequence[int]]


def plan_rows(units: Sequence[int], seeds: Sequence[int], timesteps: Timesteps = "peaks",
              analysis: ActivityAnalysis | None = None) -> list[Row]:
    """Rows for every unit × timestep × seed; ``"peaks"`` means {0} ∪ the unit's activity peaks; a mapping gives
    each unit its own timesteps (e.g. the faithful recipe's selection timestep)."""
    if not len(units):
        raise UnitError("no units given; name at least one feature or channel")
    if len(set(units)) != len(units):
        raise UnitError(f"unit {next(u for u in units if list(units).count(u) > 1)} is listed twice")
    if not len(seeds):
        raise LVOError("no seeds given; LVO needs at least one seed")
    rows = []
    for unit in units:
        if isinstance(timesteps, str):
            if timesteps != "peaks":
                raise LVOError(f"timesteps must be 'peaks' or a list of integers, got '{timesteps}'")
            if analysis is None:
                raise LVOError("timesteps='peaks' needs an activity analysis; run `analyze` first or give explicit "
                               "timesteps such as 0,500")
            ts = [0] + [t for t in analysis.peaks(unit) if t != 0]
        elif isinstance(timesteps, Mapping):
            if unit not in timesteps:
                raise LVOError(f"no timesteps given for unit {unit}")
            ts = list(dict.fromkeys(int(t) for t in timesteps[unit]))
        else:
            ts = list(dict.fromkeys(int(t) for t in timesteps))
        rows += [Row(int(unit), t, int(s)) for t in ts for s in seeds]
    return rows


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def auto_batch_size(backend: Backend, rows: int, cap: int = 256) -> int:
    """A starting batch size: on CUDA from the free memory and the measured cost of one row (a probe step);
    elsewhere ``min(rows, 32)``. Out-of-memory still halves it on the fly, so the estimate only needs to be close."""
    if backend.device.type != "cuda":
        return max(1, min(rows, 32))
    free, _ = torch.cuda.mem_get_info(backend.device)
    torch.cuda.synchronize(backend.device)
    torch.cuda.reset_peak_memory_stats(backend.device)
    base = torch.cuda.memory_allocated(backend.device)
    shape = backend.latent_shape
    with torch.inference_mode(False), torch.enable_grad(), backend.frozen():
        z = torch.zeros(1, *shape, device=backend.device, requires_grad=True)
        t = torch.zeros(1, dtype=torch.long, device=backend.device)
        tokens, _ = backend.block_tokens(z, t, backend.empty_context(1))
        tokens.float().mean().backward()
    per_row = max(torch.cuda.max_memory_allocated(backend.device) - base, 1)
    return max(1, min(rows, cap, int(0.8 * free // per_row)))


def random_prior(units: list[int], seeds: list[int], shape: Sequence[int]) -> Tensor:
    """The no-prior start: plain N(0, I) latents from the same seeds."""
    return seeded_noise(seeds, shape)


def unoptimized(init: Tensor, rows: Sequence[Row], config: LVOConfig, objective: str) -> LVOResult:
    """The starting latents as a finished zero-step result."""
    return LVOResult(init.clone(), init, [r.timestep for r in rows], [r.seed for r in rows],
                     {k: np.zeros((0, len(rows)), np.float32) for k in history_keys()}, 0, config, objective,
                     stopped=None)


def _priors(prior_fn: PriorFn, plan: list[Row], rows: list[Row], size: int) -> dict[tuple[int, int], Tensor]:
    """One prior per (unit, seed) of ``rows``, computed in chunks cut from the whole plan's pairs: the same pair
    always shares a chunk with the same others, so a resumed run starts from the very same latents."""
    needed = {(r.unit, r.seed) for r in rows}
    pairs = list(dict.fromkeys((r.unit, r.seed) for r in plan))
    priors: dict[tuple[int, int], Tensor] = {}
    for i in range(0, len(pairs), size):
        chunk = pairs[i:i + size]
        if needed.isdisjoint(chunk):
            continue
        latents = prior_fn([u for u, _ in chunk], [s for _, s in chunk]).detach().float().cpu()
        priors.update({pair: latents[j] for j, pair in enumerate(chunk)})
    return priors


@dataclass
class Visualization:
    """Everything one LVO run produced, in row order."""

    rows: list[Row]
    latents: Tensor
    init_latents: Tensor
    images: Tensor | None
    metrics: list[dict[str, Any]]
    history: dict[str, np.ndarray]
    config: LVOConfig
    objective: str
    unit_kind: str
    prior: str
    interrupted: bool = False
    stopped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.interrupted and not self.stopped

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record of the run (history included), as written next to the images."""
        return {"unit_kind": self.unit_kind, "objective": self.objective, "prior": self.prior,
                "config": self.config.to_dict(), "rows": [r.__dict__ for r in self.rows], "metrics": self.metrics,
                "history": {k: v.T.round(6).tolist() for k, v in self.history.items()},
                "interrupted": self.interrupted, "stopped": self.stopped, "complete": self.complete,
                "seconds": round(self.seconds, 3), "batch_sizes": self.batch_sizes}


def visualize(backend: Backend, units: Sequence[int], *, sae: SparseAutoencoder | None = None,
              analysis: ActivityAnalysis | None = None, timesteps: Timesteps = "peaks",
              seeds: Sequence[int] = REFERENCE_SEEDS, prior: str | PriorFn = "random",
              config: LVOConfig | None = None, value: str = "dense", batch_size: int | str = 20,
              display: str = "per_image", eval_samples: int = 4, decode: bool = True,
              on_progress: Callable[[int, int], None] | None = None,
              on_preview: Callable[[list[Row], int, Tensor], None] | None = None,
              should_stop: Callable[[], bool] | None = None, optimize_latents: bool = True,
              on_batch: Callable[[list[Row], LVOResult, list[dict[str, Any]], Tensor | None], None] | None = None,
              skip: Sequence[Row] = (), row_fields: Callable[[Row], dict[str, Any]] | None = None) -> Visualization:
    """LVO for ``units`` (SAE features when ``sae`` is given, raw channels otherwise); see the module docstring.

    ``prior``: ``"random"`` or a function ``(units, seeds) -> latents`` (e.g. a steering prior). ``config``
    defaults to the ``sae``/``raw`` preset; with ``config.preview_every`` set, ``on_preview(rows, step, images)``
    receives each batch's decoded images every that many steps. Progress is reported as
    ``on_progress(done, total)`` over all batches, in row-steps: each row's optimizer steps, then one for measuring
    it and one for decoding it (at SD scale these take seconds after the last step); an interrupt returns the rows
    done so far plus the partial batch. ``on_batch(rows, result, metrics, images)`` runs after each batch, the
    interrupted or NaN-stopped one too (``result.complete`` tells them apart), so it can be saved at once. Batches
    are cut from the whole plan; a batch whose rows are all in ``skip`` is not run again, any other is run whole (see
    :mod:`lvo_core.runs.record`). ``row_fields(row)`` adds fields to a row's metrics before ``on_batch`` sees them
    (a bank start's ``pool_index`` and fallback ``note``). ``optimize_latents=False`` measures and decodes the starting latents as they are (e.g.
    bank selection alone). ``batch_size="auto"`` starts from :func:`auto_batch_size`; whatever the start, an
    out-of-memory error halves the batches and redoes the rows.
    """
    start = time.perf_counter()
    kind = "sae" if sae is not None else "raw"
    config = config or PRESETS[kind]
    if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size <= 0):
        raise LVOError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
    if sae is not None:
        check_sae_fits(sae.d_in, backend.hookpoint, backend.denoiser)
        check_sae_reads(sae.input_kind, backend.hookpoint)
        sae.check_features(list(units))
    elif any(not 0 <= u < backend.hookpoint.channels for u in units):
        bad = next(u for u in units if not 0 <= u < backend.hookpoint.channels)
        raise UnitError(f"channel {bad} is out of range: block '{backend.hookpoint.diffusers_name}' has "
                        f"{backend.hookpoint.channels} channels (valid 0..{backend.hookpoint.channels - 1})")
    if analysis is not None:
        analysis.check_matches(backend.hookpoint.diffusers_name, sae)
    plan = plan_rows(units, seeds, timesteps, analysis)
    prior_fn: PriorFn = (lambda u, s: random_prior(u, s, backend.latent_shape)) if prior == "random" else prior
    if not callable(prior_fn):
        raise LVOError(f"prior must be 'random' or a function, got {prior!r}")
    size = auto_batch_size(backend, len(plan)) if batch_size == "auto" else int(batch_size)
    # batches are cut from the whole plan, so a resumed run redoes an unfinished batch with the very rows (and
    # numbers) it had; only batches whose every row is in ``skip`` are left out
    done_before = set(skip)
    queue = [b for b in (plan[i:i + size] for i in range(0, len(plan), size)) if not set(b) <= done_before]
    if not queue:
        raise LVOError("every requested visualization is already finished; nothing to resume")
    rows = [r for b in queue for r in b]
    priors = _priors(prior_fn, plan, rows, size)
    per_row = config.steps + AFTER_STEPS
    total = len(rows) * per_row
    results: list[LVOResult] = []
    done_rows: list[Row] = []
    metrics: list[dict[str, Any]] = []
    images: list[Tensor] = []
    sizes_used: list[int] = []
    while queue:
        batch = queue[0]
        init = torch.stack([priors[(r.unit, r.seed)] for r in batch])
        objective = (SAEFeature(sae, [r.unit for r in batch], value=value) if sae is not None
                     else Channel([r.unit for r in batch]))
        offset = len(done_rows) * per_row

        def progress(info, offset=offset, n=len(batch)):
            if on_progress is not None:
                on_progress(offset + info.step * n, total)

        def after(extra: int, offset=offset, n=len(batch)) -> None:
            if on_progress is not None and not result.interrupted:  # an interrupted batch does not count as done
                on_progress(offset + (config.steps + extra) * n, total)

        preview = None if on_preview is None else (lambda step, images, batch=batch: on_preview(batch, step, images))
        try:
            result = (optimize(backend, objective, init, [r.timestep for r in batch], [r.seed for r in batch],
                               config, on_step=progress, on_preview=preview, preview_display=display,
                               should_stop=should_stop) if optimize_latents else
                      unoptimized(init, batch, config, objective.name))
            batch_metrics = unit_metrics(backend, [r.unit for r in batch], result.latents, result.init_latents,
                                         result.timesteps, result.seeds, sae, analysis, samples=eval_samples)
            if row_fields is not None:
                for row, m in zip(batch, batch_metrics):
                    m.update(row_fields(row))
            after(1)
            decoded = None
            if decode:
                with torch.no_grad():
                    decoded = backend.decode(result.latents.to(backend.device)).float().cpu()
            after(2)
        except Exception as exc:  # out of memory: halve the batches and redo the same rows
            if not is_out_of_memory(exc):
                raise
            free_device_memory(backend.device)
            if len(batch) == 1:
                raise LVOError("one visualization does not fit in device memory even alone; use a smaller "
                               "latent, fp16/bf16 precision, or a larger device") from exc
            half = max(1, len(batch) // 2)
            queue = [b[i:i + half] for b in queue for i in range(0, len(b), half)]
            continue
        queue.pop(0)
        results.append(result)
        metrics += batch_metrics
        done_rows += batch
        if decoded is not None:
            images.append(decoded)
        if on_batch is not None:
            on_batch(batch, result, batch_metrics, None if decoded is None else display_images(decoded, display))
        sizes_used.append(len(batch))
        if result.interrupted:
            break
    steps_done = min(r.steps_done for r in results)
    history = {k: np.concatenate([r.history[k][:steps_done] for r in results], axis=1) for k in results[0].history}
    return Visualization(rows=done_rows, latents=torch.cat([r.latents for r in results]),
                         init_latents=torch.cat([r.init_latents for r in results]),
                         images=display_images(torch.cat(images), display) if images else None, metrics=metrics,
                         history=history, config=config, objective=results[0].objective, unit_kind=kind,
                         prior=prior if isinstance(prior, str) else getattr(prior, "label", "custom"),
                         interrupted=results[-1].interrupted, stopped=[r.stopped for r in results if r.stopped],
                         seconds=time.perf_counter() - start, batch_sizes=sizes_used)
