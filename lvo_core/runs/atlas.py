"""A feature atlas of many units, on one process or many (``torchrun``), resumable.

    python -m lvo_core atlas --units all --out atlas/                      # one GPU or the CPU
    torchrun --nproc_per_node 8 -m lvo_core atlas --units all --out atlas/   # 8 GPUs, same command
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-endpoint HOST:29500 -m lvo_core atlas … # several nodes

Work is cut into chunks of units in a fixed order (so a chunk's batch — and its results — do not depend on which
rank runs it); ranks *claim* the next unfinished chunk from a shared counter in torch.distributed's TCPStore, so
slow chunks never stall a rank and fast ranks take more. Chunks are cut from the whole unit list, finished or not,
and every batch is saved at once in the run record (:class:`~lvo_core.runs.record.RunRecord`), so a crashed or interrupted
rank loses only its in-flight batch and a rerun redoes it with the same rows: the resumed atlas equals an
uninterrupted one. An interrupt (Ctrl-C, SIGINT, SIGTERM from torchrun) stops the whole run, never just a batch.
When all chunks are done, rank 0 merges ``index.json``, ``atlas.html`` (sortable by metrics) and ``atlas.png``.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Sequence

import numpy as np

from ..fileio import atomic_write
from .plots import WORDS
from .record import RunInterrupted, RunRecord, open_record
from .report import contact_sheet, save_json, save_png, versions

COUNTER = "lvo_atlas_next_chunk"


@dataclass
class Cluster:
    """Rank, world size and the shared store; a single process is a cluster of one (no torch.distributed)."""

    rank: int = 0
    world: int = 1
    store: Any = None
    local_rank: int = 0

    def claim(self) -> int:
        """Index of the next unclaimed chunk (0, 1, 2, … across all ranks)."""
        if self.store is None:
            self._next = getattr(self, "_next", -1) + 1
            return self._next
        # one counter per (re)start of the job, so an elastic restart does not inherit a spent counter
        key = f"{COUNTER}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        return int(self.store.add(key, 1)) - 1

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def join_cluster(backend: str | None = None) -> Cluster:
    """Join the process group torchrun set up (``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``); without
    torchrun, a cluster of one. The group is created on a TCPStore we own, whose atomic counter hands out work."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Cluster()
    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=rank == 0,
                          timeout=timedelta(minutes=30))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    return Cluster(rank, world, store, local_rank)


def chunks(units: Sequence[int], size: int) -> list[list[int]]:
    return [list(units[i:i + size]) for i in range(0, len(units), size)]


def run_atlas(run_chunk: Callable[[list[int]], None], units: Sequence[int], done_units: set[int], chunk_size: int,
              cluster: Cluster, on_chunk: Callable[[int, int], None] | None = None) -> int:
    """Claim and run the chunks with a unit not done yet until none is left; returns the number this rank ran.
    Chunks are cut from all of ``units`` (not from the undone ones), so a rerun computes every chunk with the very
    rows of an uninterrupted run; a chunk raising (an interrupt) stops this rank at once."""
    work = [c for c in chunks(list(units), chunk_size) if not set(c) <= done_units]
    ran = 0
    while True:
        index = cluster.claim()
        if index >= len(work):
            break
        run_chunk(work[index])
        ran += 1
        if on_chunk is not None:
            on_chunk(index, len(work))
    return ran


def build_atlas(out: str | os.PathLike, backend: Any, units: Sequence[int], *, cluster: Cluster,
                settings: dict[str, Any] | None = None, info: dict[str, Any] | None = None, chunk_size: int = 16,
                on_chunk: Callable[[int, int], None] | None = None, **visualize_kwargs: Any) \
        -> tuple[dict[str, Any] | None, int]:
    """Visualize ``units`` chunk by chunk into the shared run record at ``out`` (on every rank of ``cluster``),
    skipping chunks an earlier run with the same fingerprint finished; rank 0 then merges the atlas. Returns the
    index (rank 0; None elsewhere) and how many chunks this rank ran. An interrupt stops the whole run with
    :class:`~lvo_core.runs.record.RunInterrupted` (a single process merges what finished first)."""
    from ..analysis.steering import REFERENCE_SEEDS
    from ..lvo.pipeline import plan_rows, visualize

    record, lib = open_record(out, backend, settings, visualize_kwargs)
    seeds, timesteps = visualize_kwargs.get("seeds", REFERENCE_SEEDS), visualize_kwargs.get("timesteps", "peaks")
    analysis = visualize_kwargs.get("analysis")
    finished = set(record.finished())
    planned = {u: set(plan_rows([u], seeds, timesteps, analysis)) for u in units}
    done = {u for u in units if planned[u] <= finished}
    cluster.barrier()  # every rank has read the finished units before anyone adds more: same chunk lists
    meta = {**lib, **(info or {}), "versions": versions(), "resumed_units": len(done)}

    def run_chunk(chunk: list[int]) -> None:
        vis = visualize(backend, chunk, on_batch=record.save_batch, skip=list(finished), **visualize_kwargs)
        if vis.interrupted:
            raise RunInterrupted(f"stopped in chunk {chunk[0]}–{chunk[-1]}; finished batches are saved in {out}")

    try:
        ran = run_atlas(run_chunk, units, done, chunk_size, cluster, on_chunk=on_chunk)
    except KeyboardInterrupt as exc:
        if cluster.world == 1 and record.finished():
            merge(record, units, record.kind, {**meta, "interrupted": True}, planned)
        if isinstance(exc, RunInterrupted):
            raise
        raise RunInterrupted(f"finished batches are saved in {out}") from exc
    cluster.barrier()
    if cluster.rank != 0:
        return None, ran
    return merge(record, units, record.kind, meta, planned), ran


def unit_score(rows: list[dict]) -> float:
    """A unit's place in the atlas: mean ratio to its dataset max when known, else mean activation."""
    values = [m["ratio"] if m.get("ratio") is not None else m["activation"] for m in rows]
    return float(np.mean(values)) if values else float("-inf")


def merge(store: RunRecord, units: Sequence[int], kind: str, info: dict[str, Any],
          planned: dict[int, set] | None = None) -> dict[str, Any]:
    """Write ``index.json``, ``atlas.html`` and ``atlas.png`` from every finished row of this run; a unit is
    complete only when every row ``planned`` for it (all its seeds and timesteps) is finished."""
    finished = store.finished()
    by_unit: dict[int, list[tuple[Any, dict]]] = {}
    for row, marker in finished.items():
        by_unit.setdefault(row.unit, []).append((row, marker))
    entries = []
    for unit in units:
        rows = sorted(by_unit.get(unit, []), key=lambda rm: (rm[0].timestep, rm[0].seed))
        metrics = [m["metrics"] for _, m in rows]
        complete = bool(rows) and (planned is None or planned.get(unit, set()) <= {r for r, _ in rows})
        entries.append({"unit": unit, "score": round(unit_score(metrics), 4), "complete": complete,
                        "rows": [{**r.__dict__, "image": f"{m['stem']}.png", "metrics": m["metrics"]}
                                 for r, m in rows]})
    entries.sort(key=lambda e: (-e["score"], e["unit"]))
    index = {**info, "units": entries, "finished_units": sum(e["complete"] for e in entries),
             "total_units": len(entries)}
    save_json(index, store.out / "index.json")
    shown = [e for e in entries if e["rows"]]
    if shown:
        images = [store.image(finished[_row_key(e["rows"][0])]) for e in shown]
        ratios = all(m["metrics"].get("ratio") is not None for e in shown for m in e["rows"])
        number = "x dataset max" if ratios else "activation"
        labels = [f"{kind} {e['unit']}: " + (f"{e['score']:.2f}x dataset max" if ratios
                                             else f"activation {e['score']:.3g}") for e in shown]
        legend = [f"Score under each image: the unit's mean {number} over its rows (timesteps and seeds); the image "
                  f"is its first row (lowest t, first seed).", WORDS["activation"]] + [WORDS["ratio"]] * ratios
        save_png(contact_sheet(images, [e["unit"] for e in shown], labels, kind=kind, legend=legend,
                               title=f"LVO atlas: {len(shown)} of {len(entries)} {kind}s at "
                                     f"{info.get('hookpoint', store.out.name)}, best score first",
                               subtitle=f"model {info.get('model', '?')}; atlas.html sorts and shows every row"),
                 store.out / "atlas.png")
    atomic_write(store.out / "atlas.html", lambda tmp: tmp.write_text(_html(index, kind)))
    return index


def _row_key(row: dict):
    from ..lvo.pipeline import Row

    return Row(row["unit"], row["timestep"], row["seed"])


def _html(index: dict[str, Any], kind: str) -> str:
    cells = []
    for e in index["units"]:
        if not e["rows"]:
            continue
        imgs = "".join(f'<img src="{html.escape(r["image"])}" title="t={r["timestep"]} seed={r["seed"]} '
                       f'activation={r["metrics"]["activation"]:.3f}">' for r in e["rows"])
        cells.append(f'<div class="u" data-score="{e["score"]}" data-unit="{e["unit"]}"><b>{kind} {e["unit"]}</b>'
                     f' <span>score {e["score"]:.3f}</span><br>{imgs}</div>')
    return ("<!doctype html><meta charset=utf-8><title>LVO atlas</title><style>body{font:13px sans-serif;"
            "background:#111;color:#ddd}.u{display:inline-block;margin:6px;padding:6px;background:#222}"
            "img{width:128px;height:128px;image-rendering:pixelated;margin:2px}</style>"
            f"<h1>LVO atlas — {index['finished_units']} of {index['total_units']} {kind}s at "
            f"{html.escape(str(index.get('hookpoint')))}</h1>"
            "<p>Sort: <button onclick=\"s('score')\">score</button> <button onclick=\"s('unit')\">unit</button></p>"
            f"<div id=g>{''.join(cells)}</div><script>function s(k){{const g=document.getElementById('g');"
            "[...g.children].sort((a,b)=>k==='unit'?a.dataset.unit-b.dataset.unit:b.dataset.score-a.dataset.score)"
            ".forEach(c=>g.appendChild(c))}</script>")
