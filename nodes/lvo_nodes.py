"""LVO Optimize (the method itself) and Feature Grid (an atlas of results with labels)."""

from __future__ import annotations

import json

import numpy as np
import torch

from ..lvo_core.errors import LVOError
from ..lvo_core.optimize import auto_precision, preset as make_preset
from ..lvo_core.pipeline import visualize
from ..lvo_core.plots import image_grid
from ..lvo_core.sampling import seeded_noise
from ..lvo_core.units import parse_units
from . import comfy_glue as glue
from .steering_nodes import SEEDS_DEFAULT

CATEGORY = "LVO"


def _timesteps(text: str):
    text = text.strip()
    return "peaks" if text in ("", "peaks") else parse_units(text)


def prior_function(model, latent: dict, shape):
    """How the LATENT input starts each row: priors from Steering Init by (unit, seed); an all-zero latent (Empty
    Latent Image) means seeded N(0, I); any other latent is used as is (one row for all, or one per seed)."""
    samples = latent["samples"]
    info = latent.get("lvo_prior")
    if info is not None:
        table = {(int(u), int(s)): glue.latent_in(model, samples[i:i + 1])[0] for i, (u, s) in enumerate(info["rows"])}

        def from_table(units, seeds):
            missing = [(u, s) for u, s in zip(units, seeds) if (u, s) not in table]
            if missing:
                raise LVOError(f"the prior latent has no row for unit {missing[0][0]} and seed {missing[0][1]}; "
                               f"give Steering Init the same units and seeds as LVO Optimize")
            return torch.stack([table[(u, s)] for u, s in zip(units, seeds)])
        from_table.label = "steering init"
        return from_table
    if not samples.abs().any():
        return lambda units, seeds: seeded_noise(seeds, shape)

    def given(units, seeds):
        z = glue.latent_in(model, samples)
        return z[[0 if len(z) == 1 else i % len(z) for i in range(len(units))]]
    given.label = "latent input"
    return given


class LVOOptimize:
    NODE_ID = "LVOOptimize"
    DISPLAY_NAME = "LVO Optimize"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Latent Visualization by Optimization: optimizes latents so that each unit fires maximally at "
                   "each chosen timestep (schedule-matched noise, augmentations, penalties, preconditioned Adam), "
                   "decodes them and reports metrics. Runs on a trainable copy of the UNet blocks up to the hook; "
                   "the shared model is untouched. Interrupt keeps what is done: the finished images and metrics "
                   "are shown in the node and saved to output/lvo_interrupted/.")
    RETURN_TYPES = ("LATENT", "IMAGE", "STRING")
    RETURN_NAMES = ("latent", "images", "metrics")
    OUTPUT_TOOLTIPS = ("Optimized latents, one per unit × timestep × seed.", "Decoded visualizations.",
                       "Metrics per image as JSON: activation reached, prior activation, dataset max and ratio, "
                       "selectivity, rank.")
    FUNCTION = "optimize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model (SD1.x/SD2.x UNet)."}),
            "vae": ("VAE", {"tooltip": "Decodes the optimized latents."}),
            "units": ("LVO_UNITS", {"tooltip": "Units to visualize."}),
            "empty_prompt": ("CONDITIONING", {"tooltip": "Conditioning of the EMPTY prompt (CLIP Text Encode with "
                                              "no text): LVO runs the UNet unconditioned, as the paper."}),
            "latent": ("LATENT", {"tooltip": "Start: a Steering Init prior (reference), an Empty Latent Image "
                                  "(random N(0, I) per seed), or any latent."}),
            "timesteps": ("STRING", {"default": "peaks", "tooltip": "'peaks' = {0} ∪ each unit's activity peaks "
                                     "(needs an activity analysis), or timesteps like '0, 500'."}),
            "preset": (["auto", "sae", "raw"], {"tooltip": "Reference settings: 'sae' (moment penalty) or 'raw' "
                                                "(TV penalty, gradient blur); auto picks by unit kind."}),
            "steps": ("INT", {"default": 100, "min": 1, "max": 10000, "tooltip": "Optimization steps (100)."}),
            "lr": ("FLOAT", {"default": 0.05, "min": 1e-5, "max": 10.0, "step": 0.005, "tooltip": "Learning "
                             "rate (0.05)."}),
            "seeds": ("STRING", {"default": SEEDS_DEFAULT, "tooltip": "One run per seed (noise and, for empty "
                                 "latents, the start)."}),
            "objective": (["dense", "pre", "sparse"], {"tooltip": "SAE value to maximize: dense ReLU "
                                                       "pre-activation (paper), pre-ReLU, or the sparse code."}),
            "robustness": (["L1", "L0", "L2", "L3"], {"tooltip": "Jitter/rotation/zoom level (L1 = reference)."}),
            "noise": ("BOOLEAN", {"default": True, "tooltip": "Schedule-matched noise injection (ablation: off)."}),
            "batch_size": ("INT", {"default": 0, "min": 0, "max": 512, "tooltip": "Rows optimized together; 0 = "
                               "automatic (fits free memory). Out-of-memory halves it and goes on."}),
            "precision": (["auto", "fp32", "bf16", "fp16"], {"tooltip": "UNet precision (autocast; the latent "
                                                             "stays fp32). auto: bf16 on CUDA, fp32 on CPU."}),
            "preview_every": ("INT", {"default": 10, "min": 0, "max": 10000, "tooltip": "Live preview every N "
                                      "steps (0 = off)."}),
        }, "optional": {
            "activity": ("LVO_ACTIVITY", {"tooltip": "Activity analysis: peak timesteps and dataset maxima for "
                                          "the ratio metric."}),
        }}

    def optimize(self, model, vae, units, empty_prompt, latent, timesteps, preset, steps, lr, seeds, objective,
                 robustness, noise, batch_size, precision, preview_every, activity=None):
        seed_list = parse_units(seeds)
        if not seed_list:
            raise LVOError("give at least one seed, e.g. '1024, 1111'")
        kind = units.kind if preset == "auto" else preset
        config = make_preset(kind, robustness=robustness, steps=steps, lr=lr, noise=noise,
                             preview_every=preview_every, check_every=10,
                             precision=auto_precision(glue.compute_device(model)) if precision == "auto" else precision)
        shape = tuple(glue.latent_in(model, latent["samples"][:1]).shape[1:])
        backend = glue.backend(model, units, vae, empty_prompt, shape)
        progress = glue.Progress(len(units.units) * len(seed_list) * steps, keep_partial=True)

        def on_preview(rows, step, images):
            progress(progress.bar.current, progress.bar.total, images)

        try:
            vis = visualize(backend, list(units.units), sae=units.sae, analysis=activity,
                            timesteps=_timesteps(timesteps), seeds=seed_list, prior=prior_function(model, latent, shape),
                            config=config, value=objective, batch_size=batch_size or "auto", on_progress=progress,
                            on_preview=on_preview, should_stop=progress.should_stop)
            extra_mb = round(backend.copy_bytes / 2 ** 20, 1)
        finally:
            backend.release()
        metrics = [{**m, "label": units.label(m["unit"])} for m in vis.metrics]
        report = {"hookpoint": units.hookpoint, "kind": units.kind, "config": vis.config.to_dict(),
                  "complete": vis.complete, "interrupted": vis.interrupted or progress.interrupt_seen,
                  "stopped": vis.stopped, "seconds": round(vis.seconds, 2), "extra_memory_mb": extra_mb,
                  "metrics": metrics}
        text = json.dumps(report)
        ui = {"lvo_metrics": [text]}
        if progress.interrupt_seen:  # the host drops return values of interrupted prompts: keep them on disk
            ui["images"] = glue.save_partial(vis.images, text) if vis.images is not None else []
            glue.end_interrupted(ui)
        latent_out = {"samples": glue.latent_out(model, vis.latents)}
        return {"ui": ui, "result": (latent_out, vis.images, text)}


class LVOFeatureGrid:
    NODE_ID = "LVOFeatureGrid"
    DISPLAY_NAME = "LVO Feature Grid"
    CATEGORY = CATEGORY
    DESCRIPTION = "Lays visualizations side by side, one line per unit, each labelled with unit, timestep and ratio."
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("grid",)
    OUTPUT_TOOLTIPS = ("The labelled atlas image.",)
    FUNCTION = "grid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Visualizations (e.g. from LVO Optimize)."}),
            "cell": ("INT", {"default": 192, "min": 32, "max": 1024, "tooltip": "Size of each tile in pixels."}),
        }, "optional": {
            "metrics": ("STRING", {"forceInput": True, "tooltip": "LVO Optimize's metrics, for labels and one "
                                   "line per unit."}),
        }}

    def grid(self, images, cell, metrics=None):
        from ..lvo_core.report import contact_sheet

        arrays = list(images.cpu().numpy())
        if metrics:
            rows = json.loads(metrics)["metrics"]
            if len(rows) != len(arrays):
                raise LVOError(f"{len(arrays)} images but {len(rows)} metric rows; connect the images and metrics "
                               f"of the same LVO Optimize node")
            labels = [f"{m['unit']} t{m['timestep']} " + (f"x{m['ratio']:.2f}" if m.get("ratio") is not None
                                                          else f"a{m['activation']:.2f}") for m in rows]
            sheet = contact_sheet(arrays, [m["unit"] for m in rows], labels, cell=cell)
        else:
            sheet = image_grid(arrays, None, columns=min(len(arrays), 8), cell=cell)
        return (torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)[None],)


NODES = [LVOOptimize, LVOFeatureGrid]
