"""LVO Optimize (the method itself) and Feature Grid (an atlas of results with labels)."""

from __future__ import annotations

import json

import numpy as np
import torch

from ..lvo_core.errors import LVOError
from ..lvo_core.lvo.optimize import preset as make_preset
from ..lvo_core.lvo.optimize import resolve_precision
from ..lvo_core.lvo.pipeline import AFTER_STEPS
from ..lvo_core.lvo.priors import PriorTable
from ..lvo_core.lvo.recipes import RunSpec, build_run, custom_recipe
from ..lvo_core.model.sampling import seeded_noise
from ..lvo_core.model.units import parse_seeds
from ..lvo_core.runs.plots import image_grid, ratio_or_activation
from ..lvo_core.runs.record import sheet_frame
from . import comfy_glue as glue
from .comfy_glue import io
from .sockets import ACTIVITY, PRIOR, UNITS
from .checks import check_text, row_timesteps
from .steering_nodes import LEGACY_PRIOR_KEY, SEEDS_DEFAULT

CATEGORY = "LVO"
NO_START = ("LVO Optimize needs a start: wire Steering Init's prior into 'prior', or an Empty Latent Image (random "
            "start) into 'latent'")


def prior_function(model, latent: dict | None, shape, prior: PriorTable | None = None):
    """How each row starts: the LVO_PRIOR of Steering Init by (unit, seed); a Steering Init LATENT wired in before
    that socket existed (its hidden rows) the same way; an all-zero latent (Empty Latent Image) means seeded
    N(0, I); any other latent is used as is (one row for all, or one per seed)."""
    if prior is not None:
        return prior
    if latent is None:
        raise LVOError(NO_START)
    samples = latent["samples"]
    info = latent.get(LEGACY_PRIOR_KEY)
    if info is not None:
        return PriorTable(info["rows"], glue.latent_in(model, samples), label="steering init", source="the prior",
                          fix="give Steering Init the same units and seeds as LVO Optimize",
                          notes=info.get("notes", ()))
    if not samples.abs().any():
        return lambda units, seeds: seeded_noise(seeds, shape)

    def given(units, seeds):
        z = glue.latent_in(model, samples)
        return z[[0 if len(z) == 1 else i % len(z) for i in range(len(units))]]
    given.label = "latent input"
    return given


def start_shape(model, latent: dict | None, prior: PriorTable | None) -> tuple[int, ...]:
    """The latent shape ``(C, H, W)`` a run starts from: the prior's rows, else the LATENT input's."""
    if prior is not None:
        return tuple(prior.latents.shape[1:])
    if latent is None:
        raise LVOError(NO_START)
    return tuple(glue.latent_in(model, latent["samples"][:1]).shape[1:])


def run_output(model, units, vis, progress, extra_mb: float, **fields) -> io.NodeOutput:
    """LATENT, IMAGE and the metrics JSON of a visualization (also shown as the node's table). On an interrupt the
    finished part is saved and shown, then the prompt ends as interrupted: ComfyUI drops what such a prompt
    computed."""
    metrics = [{**m, "label": units.label(m["unit"])} for m in vis.metrics]
    report = {"hookpoint": units.hookpoint, "kind": units.kind, **fields, "complete": vis.complete,
              "interrupted": vis.interrupted or progress.interrupt_seen, "seconds": round(vis.seconds, 2),
              "extra_memory_mb": extra_mb, "metrics": metrics}
    text = json.dumps(report)
    ui = {"lvo_metrics": [text]}
    if report["interrupted"]:
        ui["images"] = glue.save_partial(vis.images, text) if vis.images is not None else []
        glue.end_interrupted(ui)
    return io.NodeOutput({"samples": glue.latent_out(model, vis.latents)}, vis.images, text, ui=ui)


class LVOOptimize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOOptimize", display_name="LVO Optimize", category=CATEGORY,
            description="Latent Visualization by Optimization: optimizes latents so that each unit fires maximally "
                        "at each chosen timestep (schedule-matched noise, augmentations, penalties, preconditioned "
                        "Adam), decodes them and reports metrics. Runs on a trainable copy of the UNet blocks up to "
                        "the hook; the shared model is untouched. Interrupt keeps what is done: the finished images "
                        "and metrics are shown in the node and saved to output/lvo_interrupted/.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD1.x/SD2.x UNet)."),
                io.Vae.Input("vae", tooltip="Decodes the optimized latents."),
                UNITS.Input("units", tooltip="Units to visualize."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning of the EMPTY prompt (CLIP Text Encode "
                                                              "with no text): LVO runs the UNet unconditioned, as "
                                                              "the paper."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Start when no prior is wired: an Empty Latent Image (random N(0, I) per "
                                        "seed) or any latent."),
                io.String.Input("timesteps", default="peaks", tooltip="'peaks' = {0} ∪ each unit's activity peaks "
                                                                      "(needs an activity analysis), or timesteps "
                                                                      "like '0, 500'."),
                io.Combo.Input("preset", options=["auto", "sae", "raw"],
                               tooltip="Reference settings: 'sae' (moment penalty) or 'raw' (TV penalty, gradient "
                                       "blur); auto picks by unit kind."),
                io.Int.Input("steps", default=100, min=1, max=10000, tooltip="Optimization steps (100)."),
                io.Float.Input("lr", default=0.05, min=1e-5, max=10.0, step=0.005, tooltip="Learning rate (0.05)."),
                io.String.Input("seeds", default=SEEDS_DEFAULT, tooltip="One run per seed (noise and, for empty "
                                                                        "latents, the start)."),
                io.Combo.Input("objective", options=["dense", "pre", "sparse"],
                               tooltip="SAE value to maximize: dense ReLU pre-activation (paper), pre-ReLU, or the "
                                       "sparse code."),
                io.Combo.Input("robustness", options=["L1", "L0", "L2", "L3"],
                               tooltip="Jitter/rotation/zoom level (L1 = reference)."),
                io.Boolean.Input("noise", default=True, tooltip="Schedule-matched noise injection (ablation: off)."),
                io.Int.Input("batch_size", default=0, min=0, max=512,
                             tooltip="Rows optimized together; 0 = automatic (fits free memory). Out-of-memory "
                                     "halves it and goes on."),
                io.Combo.Input("precision", options=["auto", "fp32", "bf16", "fp16"],
                               tooltip="UNet precision (autocast; the latent stays fp32). auto: bf16 on CUDA, fp32 "
                                       "on CPU."),
                io.Int.Input("preview_every", default=10, min=0, max=10000,
                             tooltip="Live preview every N steps (0 = off)."),
                ACTIVITY.Input("activity", optional=True,
                               tooltip="Activity analysis: peak timesteps and dataset maxima for the ratio metric."),
                PRIOR.Input("prior", optional=True,
                            tooltip="Start: Steering Init's prior (the reference protocol), one latent per unit × "
                                    "seed; wins over 'latent'."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="Optimized latents, one per unit × timestep × seed."),
                io.Image.Output(display_name="images", tooltip="Decoded visualizations."),
                io.String.Output(display_name="metrics", tooltip="Metrics per image as JSON: activation reached, "
                                                                 "prior activation, dataset max and ratio, "
                                                                 "selectivity, rank."),
            ])

    @classmethod
    def validate_inputs(cls, seeds: str | None = None, timesteps: str | None = None) -> bool | str:
        return check_text(seeds=seeds, timesteps=timesteps)

    @classmethod
    def execute(cls, model, vae, units, empty_prompt, timesteps: str, preset: str, steps: int, lr: float,
                seeds: str, objective: str, robustness: str, noise: bool, batch_size: int, precision: str,
                preview_every: int, latent: dict | None = None, activity=None, prior=None) -> io.NodeOutput:
        seed_list = parse_seeds(seeds)
        if not seed_list:
            raise LVOError("give at least one seed, e.g. '1024, 1111'")
        kind = units.kind if preset == "auto" else preset
        config = make_preset(kind, robustness=robustness, steps=steps, lr=lr, noise=noise,
                             preview_every=preview_every, check_every=10,
                             precision=resolve_precision(precision, glue.compute_device(model)))
        shape = start_shape(model, latent, prior)
        backend = glue.backend(model, units, vae, empty_prompt, shape)
        progress = glue.Progress(len(units.units) * len(seed_list) * (steps + AFTER_STEPS), keep_partial=True)

        def on_preview(rows, step, images):
            progress(progress.bar.current, progress.bar.total, images)

        prior = prior_function(model, latent, shape, prior)
        run = custom_recipe(config, prior="given", value=objective, timesteps=row_timesteps(timesteps),
                            raw=units.sae is None)
        spec = RunSpec(run, list(units.units), seed_list, sae=units.sae, analysis=activity, prior=prior)
        try:
            vis = build_run(backend, spec, batch_size=batch_size or "auto", on_progress=progress,
                            on_preview=on_preview, should_stop=progress.should_stop)
            extra_mb = round(backend.copy_bytes / 2 ** 20, 1)
        finally:
            backend.release()
        name = f"optimize from {getattr(prior, 'label', 'random start')}"  # how the Feature Page names this run
        return run_output(model, units, vis, progress, extra_mb, name=name, config=vis.config.to_dict(),
                          stopped=vis.stopped,
                          notes=list(getattr(prior, "notes", [])))


class LVOFeatureGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOFeatureGrid", display_name="LVO Feature Grid", category=CATEGORY,
            description="Lays visualizations side by side, one line per unit, each labelled with unit, timestep and "
                        "ratio.",
            inputs=[
                io.Image.Input("images", tooltip="Visualizations (e.g. from LVO Optimize)."),
                io.Int.Input("cell", default=192, min=32, max=1024, tooltip="Size of each tile in pixels."),
                io.String.Input("metrics", optional=True, force_input=True,
                                tooltip="LVO Optimize's metrics, for labels and one line per unit."),
            ],
            outputs=[io.Image.Output(display_name="grid", tooltip="The labelled atlas image.")])

    @classmethod
    def execute(cls, images, cell: int, metrics: str | None = None) -> io.NodeOutput:
        from ..lvo_core.runs.report import contact_sheet

        arrays = list(images.cpu().numpy())
        if metrics:
            rows = json.loads(metrics)["metrics"]
            if len(rows) != len(arrays):
                raise LVOError(f"{len(arrays)} images but {len(rows)} metric rows; connect the images and metrics "
                               f"of the same LVO Optimize node")
            info = json.loads(metrics)
            labels = [f"t {m['timestep']}" + (f", seed {m['seed']}" if "seed" in m else "")
                      + f": {ratio_or_activation(m)}" for m in rows]
            kind = "channel" if info.get("kind") == "raw" else "feature"
            sheet = contact_sheet(arrays, [m["unit"] for m in rows], labels, cell=cell, kind=kind,
                                  **sheet_frame(info, kind, rows))
        else:
            sheet = image_grid(arrays, None, columns=min(len(arrays), 8), cell=cell,
                               title=f"{len(arrays)} images", legend=["No metrics connected: connect LVO Optimize's "
                                                                      "metrics for per-unit lines and numbers."])
        return io.NodeOutput(torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)[None])


NODES = [LVOOptimize, LVOFeatureGrid]
