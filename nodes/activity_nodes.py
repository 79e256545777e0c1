"""Activity Analysis (when is a unit active over the timesteps) and Dataset Examples (which images, and where)."""

from __future__ import annotations

import json

import numpy as np
import torch

from ..lvo_core.analysis.activity import (
    ActivityAccumulator,
    sae_fingerprint,
    unit_activations,
)
from ..lvo_core.analysis.examples import maps_from_latents, overlay, rank_examples
from ..lvo_core.analysis.selection import first_peak
from ..lvo_core.errors import ActivityError, LVOError
from ..lvo_core.runs.pictures import heatmap_grid
from ..lvo_core.runs.plots import activity_chart
from . import comfy_glue as glue
from .comfy_glue import io
from .sockets import ACTIVITY, UNITS

CATEGORY = "LVO"


def _to_image(pil) -> torch.Tensor:
    return torch.from_numpy(np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0)[None]


def activity_payload(analysis, units) -> dict:
    """What the web extension draws: each unit's profile on a 0…1000 grid (step 10), peaks and dataset max."""
    grid = list(range(0, 1001, 10))
    return {"hookpoint": analysis.hookpoint, "kind": analysis.unit_kind, "top_n": analysis.top_n,
            "generations": analysis.num_generations,
            "units": [{"unit": int(u), "profile": [round(float(v), 4) for v in analysis.profile(u)[grid]],
                       "peaks": analysis.peaks(u),
                       "max": [round(float(analysis.max_at(u, t)), 4) for t in grid]} for u in units]}


class LVOActivityAnalysis(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        samplers, schedulers = glue.sampler_names()
        return io.Schema(
            node_id="LVOActivityAnalysis", display_name="LVO Activity Analysis", category=CATEGORY,
            description="Generates one image per prompt and records, at every timestep, how often each unit is "
                        "among the top-N most active (its activity profile), its mean and dataset maximum. Peaks and "
                        "dataset maxima drive Steering, Steering Init and LVO Optimize.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                io.Clip.Input("clip", tooltip="Encodes the prompts."),
                io.Vae.Input("vae", tooltip="Decodes the generated images."),
                UNITS.Input("units", tooltip="Block and SAE to analyse; the chart shows these units."),
                io.String.Input("prompts", multiline=True, default="a photo of a cat\na red rose\na waterfall",
                                tooltip="One prompt per line."),
                io.String.Input("negative", default="", tooltip="Negative prompt for CFG."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Sampling steps (reference 50)."),
                io.Float.Input("cfg", default=7.5, min=1.0, max=30.0, step=0.5, tooltip="Guidance scale."),
                io.Combo.Input("sampler_name", options=samplers, default="ddim", tooltip="Sampler."),
                io.Combo.Input("scheduler", options=schedulers, default="ddim_uniform", tooltip="Schedule."),
                io.Int.Input("seed", default=0, min=0, max=2 ** 31 - 1,
                             tooltip="Seed of the first prompt; the next prompts count up."),
                io.Int.Input("width", default=512, min=64, max=4096, step=8, tooltip="Image width."),
                io.Int.Input("height", default=512, min=64, max=4096, step=8, tooltip="Image height."),
                io.Int.Input("top_n", default=20, min=1, max=100000,
                             tooltip="A unit is active when among the top N at a timestep (reference 20)."),
            ],
            outputs=[
                ACTIVITY.Output(display_name="activity",
                                tooltip="The analysis (profiles, peaks, dataset maxima, top examples)."),
                io.Image.Output(display_name="chart", tooltip="Activity of the selected units over timesteps, "
                                                              "peaks marked."),
                io.Image.Output(display_name="images", tooltip="The generated images (for Dataset Examples)."),
                io.String.Output(display_name="prompts", tooltip="The prompts, one per line."),
            ])

    @classmethod
    def execute(cls, model, clip, vae, units, prompts: str, negative: str, steps: int, cfg: float, sampler_name: str,
                scheduler: str, seed: int, width: int, height: int, top_n: int) -> io.NodeOutput:
        lines = [p.strip() for p in prompts.splitlines() if p.strip()]
        if not lines:
            raise ActivityError("no prompts: write one prompt per line")
        timesteps = glue.sampling_timesteps(model, scheduler, steps)
        count = units.sae.d_sae if units.sae is not None else units.channels
        acc = ActivityAccumulator(timesteps, range(count), top_n)
        steps_arr = np.asarray(timesteps)
        point = glue.ldm_hookpoint(model, units)
        neg = glue.encode_text(clip, negative)
        channels = model.model.latent_format.latent_channels
        latent = torch.zeros(1, channels, height // 8, width // 8)
        progress = glue.Progress(len(lines) * steps)
        images = []
        for gen, prompt in enumerate(lines):
            seen: set[int] = set()

            def record(tokens, t, _progress, gen=gen, seen=seen):
                step = int(np.argmin(np.abs(steps_arr - t)))
                if step not in seen:
                    seen.add(step)
                    acc.update(step, unit_activations(tokens, units.sae), [gen])
                return tokens

            patched = glue.add_block_edit(model, point, record, "cond")
            noise = glue.seeded_noise_like(latent, [seed + gen])
            samples = glue.sample(patched, noise, glue.encode_text(clip, prompt), neg, latent, steps, cfg,
                                  sampler_name, scheduler, seed + gen,
                                  on_step=lambda i, n, gen=gen: progress(gen * steps + i, len(lines) * steps))
            images.append(cls._decode(vae, samples))
        analysis = acc.result(unit_kind=units.kind, hookpoint=units.hookpoint,
                              sae_id=sae_fingerprint(units.sae) if units.sae is not None else None, prompts=lines,
                              seeds=[seed + i for i in range(len(lines))],
                              meta={"steps": steps, "guidance": cfg, "sampler": sampler_name, "scheduler": scheduler})
        chart = _to_image(activity_chart(analysis, list(units.units)))
        payload = json.dumps(activity_payload(analysis, units.units))
        return io.NodeOutput(analysis, chart, torch.cat(images), "\n".join(lines),
                             ui={"lvo_activity": [payload]})  # the web extension draws it in the node, interactively

    @staticmethod
    def _decode(vae, samples):
        decoded = vae.decode(samples)
        return decoded.reshape(-1, *decoded.shape[-3:])


class LVODatasetExamples(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVODatasetExamples", display_name="LVO Dataset Examples", category=CATEGORY,
            description="Ranks images by how strongly a unit fires on them at a timestep (images encoded by the VAE "
                        "and noised as the scheduler would) and overlays a heatmap of where it fires.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                io.Vae.Input("vae", tooltip="Encodes the images into latents."),
                io.Image.Input("images", tooltip="Candidate images (e.g. Activity Analysis's generations)."),
                UNITS.Input("units", tooltip="Block and SAE."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning for the UNet pass (empty prompt)."),
                io.Int.Input("unit", default=-1, min=-1, max=1 << 20,
                             tooltip="Which unit; -1 = the first of the selection."),
                io.Int.Input("timestep", default=-1, min=-1, max=999,
                             tooltip="Timestep; -1 = the unit's first activity peak (needs an analysis), else 500."),
                io.Int.Input("k", default=8, min=1, max=256, tooltip="How many examples to keep."),
                io.Int.Input("seed", default=0, min=0, max=2 ** 31 - 1, tooltip="Seed of the noise."),
                ACTIVITY.Input("activity", optional=True, tooltip="For the default timestep."),
                io.String.Input("prompts", optional=True, force_input=True,
                                tooltip="Labels, one per image (one per line)."),
            ],
            outputs=[
                io.Image.Output(display_name="examples", tooltip="The top images with heatmap overlays, best first."),
                io.Image.Output(display_name="grid", tooltip="The same as one labelled grid."),
                io.String.Output(display_name="ranking", tooltip="Ranking as JSON (index, score, prompt)."),
            ])

    @classmethod
    def execute(cls, model, vae, images, units, empty_prompt, unit: int, timestep: int, k: int, seed: int,
                activity=None, prompts: str | None = None) -> io.NodeOutput:
        if images.ndim != 4 or images.shape[-1] not in (3, 4):
            raise LVOError(f"expected an IMAGE batch [B, H, W, 3], got shape {tuple(images.shape)}")
        if images.shape[1] % 8 or images.shape[2] % 8 or min(images.shape[1:3]) < 64:
            raise LVOError(f"images of {images.shape[2]}×{images.shape[1]} px cannot be encoded: use sizes that are "
                           f"multiples of 8 and at least 64 px")
        unit = units.units[0] if unit < 0 else unit
        if unit not in units.units:
            raise LVOError(f"unit {unit} is not in the selection {list(units.units)}; add it in LVO Feature Hook")
        if timestep < 0:
            timestep, _ = first_peak(unit, activity)
        labels = [p for p in (prompts or "").splitlines() if p.strip()] or None
        if labels is not None and len(labels) != len(images):
            labels = None
        z = glue.latent_in(model, glue.encode_images(vae, images))
        backend = glue.backend(model, units, vae, empty_prompt, tuple(z.shape[1:]), trainable=False)
        maps = maps_from_latents(backend, z, unit, timestep, units.sae, seed)
        ranked = rank_examples(maps, k=min(k, len(images)), prompts=labels, timestep=timestep)
        vmax = max(float(ranked[0].heatmap.max()), 1e-8)
        pictures = [images[e.index, ..., :3].cpu().numpy() for e in ranked]
        tiles = [overlay(picture, e.heatmap, vmax=vmax) for picture, e in zip(pictures, ranked)]
        grid = heatmap_grid(pictures, [e.heatmap for e in ranked],
                            [f"#{i + 1}: image {e.index}" + (f" ({e.prompt})" if e.prompt else "")
                             + f", activation {e.score:.3g}" for i, e in enumerate(ranked)],
                            cell=max(int(images.shape[1]), 96),
                            title=f"Dataset examples of {units.label(unit)} at {units.hookpoint}, t = {timestep}",
                            subtitle=f"the {len(ranked)} of {len(images)} images it fires on most, best first",
                            legend=[f"activation: the unit's spatial mean over the image's positions, the image "
                                    f"encoded and noised to t = {timestep}"])
        ranking = json.dumps({"unit": unit, "timestep": timestep,
                              "examples": [{"index": e.index, "score": e.score, "prompt": e.prompt} for e in ranked]})
        return io.NodeOutput(torch.from_numpy(np.stack(tiles)).float(), _to_image(grid), ranking)


NODES = [LVOActivityAnalysis, LVODatasetExamples]
