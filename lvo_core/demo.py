"""The embedded default run — the whole LVO pipeline on a model that ships with the code, on any CPU in seconds:
time-step activity analysis, ranked dataset examples with heatmaps, steering priors, and LVO for a few SAE
features beside the raw-channel baseline, with metrics.

Until trained toy weights ship, the embedded model is a tiny *random* SD-shaped UNet with a random SAE on
``up_blocks.1.attentions.1``: the statistics, peaks and heatmaps are real computations on it, but its images are
noise, and nothing about them means anything.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .activity import ActivityAnalysis, analyze_activity
from .backend import DiffusersBackend, vae_decoder
from .examples import generate_with_maps, overlay, rank_examples
from .metrics import display_images
from .optimize import preset
from .pipeline import Visualization, visualize
from .plots import activity_chart, image_grid
from .report import contact_sheet, save_json, save_png
from .sae.model import SparseAutoencoder
from .steering import steer
from .tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_unet, tiny_vae

HOOKPOINT = "up_blocks.1.attentions.1"
PROMPTS = ["red circle", "blue square", "green triangle", "yellow ring", "red stripes", "blue circle",
           "green square", "white ring"]


def most_varying(analysis: ActivityAnalysis, count: int) -> list[int]:
    """The units whose activity changes most over the timesteps (they make the most informative chart)."""
    variation = analysis.frequency.std(0) + 1e-3 * analysis.frequency.mean(0)
    return [int(analysis.units[u]) for u in np.argsort(-variation, kind="stable")[:count]]


def run_lvo(unet, vae, encode, sae: SparseAutoencoder | None, analysis: ActivityAnalysis, units: list[int],
            seeds: list[int], steps: int, prior_steps: int, out: Path, name: str) -> Visualization:
    """LVO from steering priors at {0} ∪ activity peaks; writes a contact sheet labelled with ratio to dataset max."""
    backend = DiffusersBackend(unet, HOOKPOINT, scheduler=sd15_scheduler(), decoder=vae, encode_prompt=encode)
    empty = encode([""])

    def prior(us: list[int], ss: list[int]):
        return steer(unet, sd15_scheduler(), HOOKPOINT, us, ss, empty, sae=sae, analysis=analysis, steps=prior_steps)

    vis = visualize(backend, units, sae=sae, analysis=analysis, seeds=seeds, prior=prior,
                    config=preset("sae" if sae is not None else "raw", steps=steps), batch_size=32)
    labels = [f"{r.unit} t{r.timestep} x{m['ratio']:.2f}" if m["ratio"] is not None else f"{r.unit} t{r.timestep}"
              for r, m in zip(vis.rows, vis.metrics)]
    save_png(contact_sheet(list(vis.images.numpy()), [r.unit for r in vis.rows], labels), out / f"{name}.png")
    return vis


def run_demo(out: str | Path = "lvo_runs/demo", steps: int = 20, guidance: float = 3.0, num_units: int = 4,
             seed: int = 0, lvo_steps: int = 50) -> dict:
    """Analyze the embedded model, pick the SAE features whose activity varies most over time, and write a chart,
    ranked dataset examples with heatmaps, and a summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    start = time.perf_counter()
    unet, vae, encode = tiny_unet(seed=seed), tiny_vae(seed=seed), CharPromptEncoder(seed=seed)
    sae = random_sae(d_in=32, d_sae=128, k=4, seed=seed)
    seeds = list(range(1000, 1000 + len(PROMPTS)))
    analysis = analyze_activity(unet, sd15_scheduler(), HOOKPOINT, PROMPTS, encode, sae=sae, seeds=seeds,
                                steps=steps, guidance=guidance, top_n=20, keep_examples=4)
    analysis.save(out / "activity.safetensors")
    units = most_varying(analysis, num_units)
    activity_chart(analysis, units).save(out / "activity.png")
    summary = {"hookpoint": HOOKPOINT, "sae": sae.summary(), "prompts": PROMPTS, "seeds": seeds, "steps": steps,
               "guidance": guidance, "units": {}}
    for unit in units:
        peaks = analysis.peaks(unit)
        t = peaks[0] if peaks else 500
        latents, maps, used_t = generate_with_maps(unet, sd15_scheduler(), HOOKPOINT, PROMPTS, encode, unit, t,
                                                   sae=sae, seeds=seeds, steps=steps, guidance=guidance)
        ranked = rank_examples(maps, k=4, prompts=PROMPTS, timestep=used_t)
        with torch.no_grad():
            images = display_images(vae_decoder(vae)(latents[[e.index for e in ranked]])).numpy()
        vmax = max(float(ranked[0].heatmap.max()), 1e-8)
        tiles = [overlay(img, e.heatmap, vmax=vmax) for img, e in zip(images, ranked)]
        save_png(image_grid(tiles, [f"{e.prompt} {e.score:.2f}" for e in ranked], cell=128), out / f"examples_{unit}.png")
        summary["units"][str(unit)] = {
            "peaks": peaks, "active_timesteps": int(len(analysis.active_timesteps(unit))),
            "dataset_max_at_peak": round(analysis.max_at(unit, t), 5), "examples_at": used_t,
            "top_examples": [{"prompt": e.prompt, "score": round(e.score, 5)} for e in ranked]}
    raw_analysis = analyze_activity(unet, sd15_scheduler(), HOOKPOINT, PROMPTS, encode, seeds=seeds, steps=steps,
                                    guidance=guidance, top_n=8, keep_examples=4)
    channels = most_varying(raw_analysis, 2)
    lvo_seeds = [1024, 1111]
    features = run_lvo(unet, vae, encode, sae, analysis, units, lvo_seeds, lvo_steps, steps, out, "lvo_features")
    raw = run_lvo(unet, vae, encode, None, raw_analysis, channels, lvo_seeds, lvo_steps, steps, out, "lvo_channels")
    summary["lvo"] = {"steps": lvo_steps, "seeds": lvo_seeds, "features": features.metrics, "channels": raw.metrics}
    summary["seconds"] = round(time.perf_counter() - start, 2)
    save_json(summary, out / "summary.json")
    return summary
