"""The run record: one folder per LVO run, written as it goes, so an interrupted or killed run resumes to the very
result an uninterrupted one gives. The CLI's ``visualize``, the atlas and Python callers all use it.

Layout of a run folder: ``<stem>.png`` per row; ``rows/<stem>.safetensors`` (optimized and starting latent) and
``rows/<stem>.json`` (the *marker*: metrics, history, whether the row ran to the end, and the run's fingerprint);
and the summary ``contact_sheet.png``, ``latents.safetensors`` and ``result.json``, rewritten at the end of every
run and every resume.

What makes resuming safe:

- a row counts as finished only when its marker names this run's fingerprint *and* says ``complete`` (an
  interrupted or NaN-stopped row is redone); the marker is removed before a row's files are rewritten and written
  last, atomically, so a marker always describes the files beside it;
- the fingerprint hashes every setting except the few in :data:`NOT_IN_FINGERPRINT` (where and in which pieces a
  run goes), with file inputs hashed by content — a new setting is covered without anyone listing it;
- batches are cut from the whole plan (:func:`lvo_core.lvo.pipeline.visualize`) and an unfinished batch is redone
  whole, so resumed rows are computed in the very batches of an uninterrupted run: equal to the bit on CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import LVOError
from ..fileio import check_file_target, ensure_folder
from ..identity import digest, file_digest
from .plots import WORDS, ratio_or_activation
from .report import contact_sheet, save_json, save_png, save_tensors, versions

if TYPE_CHECKING:
    from ..lvo.pipeline import Row, Visualization
    from ..model.backend import Backend

# Settings that say where and in which pieces a run goes, never what a row computes. Row keys (unit, timestep,
# seed) name rows instead; the batch size only regroups rows (an out-of-memory error already halves it mid-run);
# the device counts by its type, so ranks on cuda:0…cuda:7 share one fingerprint.
# bank_size: a bank recipe's fingerprint holds the bank's identity (model, sampler settings, the size it uses);
# other recipes use no bank.
NOT_IN_FINGERPRINT = frozenset({"out", "resume", "from_json", "func", "command", "chunk_size", "batch_size",
                                "units", "seeds", "timesteps", "bank_size"})

_digests: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, or of a folder's relative file names and bytes (sorted); memoized per process by
    (path, size, mtime) so a multi-GB checkpoint is read once."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode() + b"\0" + content_digest(f).encode())
        return h.hexdigest()
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = file_digest(path)
    return _digests[key]


def _canonical(value: Any) -> Any:
    """JSON-able form of a setting; a path (or a string naming an existing file or folder) becomes its content."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value and os.path.exists(value)):
        return {"content": content_digest(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, torch.device):
        return value.type
    if hasattr(value, "to_dict"):
        return _canonical(value.to_dict())
    return value


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of every setting of a run except :data:`NOT_IN_FINGERPRINT` (matched on the last dotted part
    of a key, so ``run.out`` is left out too), file inputs by content."""
    data = {k: (torch.device(v).type if k.rsplit(".", 1)[-1] == "device" and v else v)
            for k, v in settings.items() if k.rsplit(".", 1)[-1] not in NOT_IN_FINGERPRINT}
    text = json.dumps(_canonical(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers, for callers that hold a model but no file naming it."""
    return digest(module.state_dict().items())


def sae_digest(sae: Any) -> str:
    """SHA-256 of every tensor and setting of an SAE (all of it, unlike the analysis check's quick fingerprint)."""
    from dataclasses import fields

    return digest((f.name, getattr(sae, f.name)) for f in fields(sae) if f.name != "meta")


def analysis_digest(analysis: Any) -> str | None:
    """Content hash of an activity analysis (its arrays and metadata)."""
    if analysis is None:
        return None
    h = hashlib.sha256()
    for key, value in sorted(vars(analysis).items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray)
                 else json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()


def sheet_frame(info: Mapping[str, Any], kind: str, metrics: Sequence[dict]) -> dict[str, Any]:
    """Title, subtitle and legend of a run's contact sheet: which recipe, model and block, and what its numbers
    are — the ratio to the dataset max when an activity analysis gave one, else the raw activation."""
    recipe = info.get("recipe")
    name = recipe.get("name") if isinstance(recipe, Mapping) else recipe
    how = f" (recipe: {name})" if name else f" ({info['name']})" if isinstance(info.get("name"), str) \
        else f" (start: {info['prior']})" if isinstance(info.get("prior"), str) else ""
    where = f" at {info['hookpoint']}" if info.get("hookpoint") else ""
    named = isinstance(info.get("model"), str) and not re.fullmatch(r"[0-9a-f]{16,}", info["model"])  # not a digest
    model = f"model {info['model']}; " if named else ""
    title = f"LVO visualizations{how}: {kind}s{where}"
    subtitle = f"{model}one line per {kind}, one image per timestep t and seed"
    legend = [WORDS["activation"]]
    if any(m.get("ratio") is not None for m in metrics):
        legend.append(WORDS["ratio"])
    if any(m.get("ratio") is None for m in metrics):
        legend.append("a caption with an activation and no ratio: no activity analysis gave this unit a dataset "
                      "max (give --analysis)")
    return {"title": title, "subtitle": subtitle, "legend": legend}


class RunRecord:
    """The rows of one run in a folder (see the module docstring); ``kind`` is ``feature`` or ``channel``."""

    def __init__(self, out: str | os.PathLike, fingerprint: str, kind: str = "feature"):
        self.out, self.kind, self.fingerprint = Path(out), kind, fingerprint
        self.rows_dir = self.out / "rows"
        ensure_folder(self.out)
        ensure_folder(self.rows_dir)

    def stem(self, row: "Row") -> str:
        return f"{self.kind}{row.unit}_t{row.timestep}_seed{row.seed}"

    def save_batch(self, rows: Sequence["Row"], result: Any, metrics: Sequence[dict], images: Any) -> None:
        """Save a batch as :func:`~lvo_core.lvo.pipeline.visualize` hands it over (``on_batch``)."""
        for j, (row, m) in enumerate(zip(rows, metrics)):
            history = {k: v[:, j] for k, v in result.history.items()}
            self.save_row(row, result.latents[j], result.init_latents[j], m, history, result.complete,
                          None if images is None else images[j])

    def save_row(self, row: "Row", latent: torch.Tensor, init_latent: torch.Tensor, metrics: dict,
                 history: Mapping[str, np.ndarray], complete: bool, image: Any = None) -> None:
        stem = self.stem(row)
        marker = self.rows_dir / f"{stem}.json"
        marker.unlink(missing_ok=True)  # from here until the new marker lands, the row reads as not done
        files = [f"{stem}.safetensors"]
        if image is not None:
            save_png(image, self.out / f"{stem}.png")
            files.append(f"../{stem}.png")
        save_tensors({"latent": latent.clone(), "init_latent": init_latent.clone()},
                     self.rows_dir / f"{stem}.safetensors")
        save_json({"row": row.__dict__, "fingerprint": self.fingerprint, "metrics": metrics,
                   "history": {k: np.asarray(v).round(6).tolist() for k, v in history.items()},
                   "complete": bool(complete), "files": files, "stem": stem}, marker)

    def rows(self) -> dict["Row", dict]:
        """``{Row: marker}`` for every row saved with this fingerprint, finished or not."""
        from ..lvo.pipeline import Row

        found = {}
        for marker in sorted(self.rows_dir.glob("*.json")):
            try:
                info = json.loads(marker.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if info.get("fingerprint") == self.fingerprint and all((self.rows_dir / f).is_file()
                                                                   for f in info.get("files", [])):
                found[Row(**info["row"])] = info
        return found

    def finished(self) -> dict["Row", dict]:
        """The rows a resume skips: saved with this fingerprint and run to the end."""
        return {row: info for row, info in self.rows().items() if info.get("complete")}

    def forget(self, rows: Iterable["Row"]) -> None:
        """Drop the markers of ``rows`` (a fresh, non-resumed run must not report an earlier run's rows)."""
        for row in rows:
            (self.rows_dir / f"{self.stem(row)}.json").unlink(missing_ok=True)

    def image(self, info: dict) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(self.out / f"{info['stem']}.png"), dtype=np.float32) / 255

    def tensors(self, info: dict) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.rows_dir / f"{info['stem']}.safetensors")

    def mark_unfinished(self, plan: Sequence["Row"], info: Mapping[str, Any]) -> None:
        """Before a run changes anything in the folder: ``result.json`` says ``complete: false`` under this run's
        fingerprint and the summary files of an earlier run go, so a run killed midway never leaves a folder that
        claims the earlier settings over new images."""
        save_json({**info, "fingerprint": self.fingerprint, "versions": versions(), "complete": False,
                   "running": True, "rows": [], "metrics": [], "images": [], "contact_sheet": None, "latents": None,
                   "unfinished_rows": [r.__dict__ for r in plan]}, self.out / "result.json")
        for name in ("latents.safetensors", "contact_sheet.png"):
            path = check_file_target(self.out / name)
            path.unlink(missing_ok=True)

    def write_result(self, plan: Sequence["Row"], info: Mapping[str, Any]) -> dict[str, Any]:
        """Contact sheet, ``latents.safetensors`` and ``result.json`` over the rows of ``plan`` on record, in plan
        order; ``info`` (arguments, config, versions, …) goes into the JSON as is."""
        saved = self.rows()
        ordered = [(r, saved[r]) for r in plan if r in saved]
        if not ordered:
            raise LVOError(f"no visualization of this run is saved in {self.out} yet; run it without --resume")
        with_images = all((self.out / f"{i['stem']}.png").is_file() for _, i in ordered)
        if with_images:
            labels = [f"t {r.timestep}, seed {r.seed}: {ratio_or_activation(i['metrics'])}"
                      f"{'' if i['complete'] else ' (unfinished)'}" for r, i in ordered]
            save_png(contact_sheet([self.image(i) for _, i in ordered], [r.unit for r, _ in ordered], labels,
                                   kind=self.kind, **sheet_frame(info, self.kind, [i["metrics"] for _, i in ordered])),
                     self.out / "contact_sheet.png")
        tensors = [self.tensors(i) for _, i in ordered]
        save_tensors({"latents": torch.stack([t["latent"] for t in tensors]),
                      "init_latents": torch.stack([t["init_latent"] for t in tensors])}, self.out / "latents.safetensors",
                     {"rows": json.dumps([r.__dict__ for r, _ in ordered])})
        keys = list(ordered[0][1]["history"])
        result = {**info, "fingerprint": self.fingerprint, "versions": versions(),
                  "rows": [r.__dict__ for r, _ in ordered], "metrics": [i["metrics"] for _, i in ordered],
                  "history": {k: [i["history"][k] for _, i in ordered] for k in keys},
                  "images": [f"{i['stem']}.png" for _, i in ordered] if with_images else [],
                  "contact_sheet": "contact_sheet.png" if with_images else None, "latents": "latents.safetensors",
                  "unfinished_rows": [r.__dict__ for r in plan if r not in saved or not saved[r]["complete"]]}
        result["complete"] = not result["unfinished_rows"]
        save_json(result, self.out / "result.json")
        return result


def load_result(out: str | os.PathLike) -> dict[str, Any]:
    """A run folder's ``result.json``, with a one-line error when it is missing or unreadable."""
    path = Path(out)
    path = path / "result.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise LVOError(f"{path} does not exist; give the result.json of an earlier run") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LVOError(f"{path} is not a readable result.json ({exc}); give the result.json of an earlier run") \
            from None


def visualize_settings(backend: "Backend", *, sae=None, analysis=None, config=None, prior: Any = "random",
                       value: str = "dense", display: str = "per_image", eval_samples: int = 4,
                       decode: bool = True) -> dict[str, Any]:
    """What a row of :func:`~lvo_core.lvo.pipeline.visualize` depends on, from the library's own objects (the model by
    its weights, the SAE and analysis by content, the full LVO config)."""
    from .. import __version__
    from ..lvo.optimize import PRESETS

    kind = "sae" if sae is not None else "raw"
    module = backend.denoiser
    return {"lvo_core": __version__, "hookpoint": backend.hookpoint.diffusers_name, "unit_kind": kind,
            "config": (config or PRESETS[kind]).to_dict(), "sae": None if sae is None else sae_digest(sae),
            "analysis": analysis_digest(analysis), "value": value, "display": display,
            "eval_samples": eval_samples, "decode": decode,
            "prior": prior if isinstance(prior, str) else getattr(prior, "label", "custom"),
            "model": weights_digest(module) if module is not None else None}


class RunInterrupted(KeyboardInterrupt):
    """An interrupt stopped a whole run (not just a batch); what finished is saved and a resume redoes the rest."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (how torchrun and schedulers stop a job) raises KeyboardInterrupt like Ctrl-C, so
    the partial batch is recorded as unfinished and files are closed; off the main thread, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def open_record(out: str | os.PathLike, backend: "Backend", settings: Mapping[str, Any] | None,
                visualize_kwargs: Mapping[str, Any]) -> tuple[RunRecord, dict[str, Any]]:
    """The record of a run of :func:`~lvo_core.lvo.pipeline.visualize` with these arguments, and the library-side
    settings its fingerprint covers (``settings`` join under ``run.``; a ``model`` entry replaces hashing the
    backend's weights)."""
    keys = ("sae", "analysis", "config", "prior", "value", "display", "eval_samples", "decode")
    lib = visualize_settings(backend, **{k: visualize_kwargs[k] for k in keys if k in visualize_kwargs})
    if settings and "model" in settings:
        lib.pop("model")
    merged = {**lib, **{f"run.{k}": v for k, v in (settings or {}).items()}}
    kind = "feature" if visualize_kwargs.get("sae") is not None else "channel"
    return RunRecord(out, fingerprint(merged), kind), lib


def run_visualize(out: str | os.PathLike, backend: "Backend", units: Sequence[int], *, resume: bool = True,
                  settings: Mapping[str, Any] | None = None, info: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> tuple["Visualization | None", dict[str, Any]]:
    """:func:`~lvo_core.lvo.pipeline.visualize` with every batch saved to ``out`` as it finishes; with ``resume``, rows
    an earlier run with the same fingerprint finished are not run again. ``settings`` (e.g. the CLI's arguments)
    join the fingerprint; without a ``model`` entry the backend's weights are hashed. Returns what ran now (None
    when everything was on record) and the written ``result.json``. An interrupt stops the run after saving the
    partial batch (not finished, so a resume redoes it); ``result["interrupted"]`` says so."""
    from ..analysis.steering import REFERENCE_SEEDS
    from ..lvo.pipeline import plan_rows, visualize

    record, lib = open_record(out, backend, settings, kwargs)
    plan = plan_rows(units, kwargs.get("seeds", REFERENCE_SEEDS), kwargs.get("timesteps", "peaks"),
                     kwargs.get("analysis"))
    previous = record.finished() if resume else {}
    if not set(plan) <= set(previous):
        record.mark_unfinished(plan, {**lib, **(info or {})})
    if not resume:
        record.forget(plan)
    vis = None

    def write(vis: "Visualization | None", interrupted: bool = False) -> dict[str, Any]:
        summary = {k: v for k, v in (vis.summary() if vis is not None else {}).items()
                   if k not in ("rows", "metrics", "history", "complete")}
        ran = set(vis.rows) if vis is not None else set()
        return record.write_result(plan, {**lib, **(info or {}), **summary,
                                          "interrupted": interrupted or bool(vis and vis.interrupted),
                                          "stopped": vis.stopped if vis else [],
                                          "resumed_rows": sum(r in previous and r not in ran for r in plan)})

    if not set(plan) <= set(previous):
        try:
            vis = visualize(backend, units, on_batch=record.save_batch, skip=list(previous), **kwargs)
        except KeyboardInterrupt as exc:  # outside the optimizer (prior, metrics, saving): keep what is saved
            if record.rows():
                write(None, interrupted=True)
            raise RunInterrupted(f"finished batches are saved in {out}") from exc
    result = write(vis)
    return vis, result


def save_visualization(vis: "Visualization", out: str | os.PathLike, settings: Mapping[str, Any] | None = None) \
        -> dict[str, Any]:
    """Write an in-memory :class:`~lvo_core.lvo.pipeline.Visualization` as a run folder (what ``Visualization.save``
    does); ``settings`` join its fingerprint and ``result.json``."""
    record = RunRecord(out, fingerprint({"summary": {k: v for k, v in vis.summary().items()
                                                     if k in ("unit_kind", "objective", "prior", "config")},
                                         **(settings or {})}), "feature" if vis.unit_kind == "sae" else "channel")
    for j, row in enumerate(vis.rows):
        record.save_row(row, vis.latents[j], vis.init_latents[j], vis.metrics[j],
                        {k: v[:, j] for k, v in vis.history.items()}, vis.complete,
                        None if vis.images is None else vis.images[j])
    summary = vis.summary()
    for key in ("rows", "metrics", "history", "complete"):
        summary.pop(key)
    return record.write_result(vis.rows, {**summary, **(settings or {})})


def results_table(result: Mapping[str, Any], kind: str) -> str:
    """The per-row table the CLI prints."""
    lines = [f"{kind:>8}  {'t':>4}  {'seed':>5}  {'activation':>10}  {'prior':>8}  {'ratio':>6}  {'rank':>5}"]
    for m in result["metrics"]:
        ratio = "—" if m["ratio"] is None else f"{m['ratio']:.2f}"
        lines.append(f"{m['unit']:>8}  {m['timestep']:>4}  {m['seed']:>5}  {m['activation']:>10.4f}  "
                     f"{m['prior_activation']:>8.4f}  {ratio:>6}  {m['rank']:>5}")
    return "\n".join(lines)

