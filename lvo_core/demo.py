"""The embedded default run: time-step activity analysis and ranked dataset examples on a model that ships with
the code, so one command shows the whole foundation working on any CPU in seconds.

Until trained toy weights ship, the embedded model is a tiny *random* SD-shaped UNet with a random SAE on
``up_blocks.1.attentions.1``: the statistics, peaks and heatmaps are real computations on it, but its images are
noise, and nothing about them means anything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .activity import analyze_activity
from .examples import generate_with_maps, overlay, rank_examples
from .plots import activity_chart, image_grid
from .tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_unet, tiny_vae

HOOKPOINT = "up_blocks.1.attentions.1"
PROMPTS = ["red circle", "blue square", "green triangle", "yellow ring", "red stripes", "blue circle",
           "green square", "white ring"]


def decode_images(vae, latents: torch.Tensor) -> np.ndarray:
    """Latents → ``[N, H, W, 3]`` floats in [0, 1], each image scaled to its own range (random VAEs are dim)."""
    with torch.no_grad():
        images = vae.decode(latents / vae.config.scaling_factor).sample.float()
    lo = images.amin(dim=(1, 2, 3), keepdim=True)
    hi = images.amax(dim=(1, 2, 3), keepdim=True)
    return ((images - lo) / (hi - lo).clamp_min(1e-8)).permute(0, 2, 3, 1).numpy()


def run_demo(out: str | Path = "lvo_runs/demo", steps: int = 20, guidance: float = 3.0, num_units: int = 4,
             seed: int = 0) -> dict:
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
    # the features whose activity changes most over the timesteps make the most informative chart
    variation = analysis.frequency.std(0) + 1e-3 * analysis.frequency.mean(0)
    units = [int(u) for u in np.argsort(-variation, kind="stable")[:num_units]]
    activity_chart(analysis, units).save(out / "activity.png")
    summary = {"hookpoint": HOOKPOINT, "sae": sae.summary(), "prompts": PROMPTS, "seeds": seeds, "steps": steps,
               "guidance": guidance, "units": {}}
    for unit in units:
        peaks = analysis.peaks(unit)
        t = peaks[0] if peaks else 500
        latents, maps, used_t = generate_with_maps(unet, sd15_scheduler(), HOOKPOINT, PROMPTS, encode, unit, t,
                                                   sae=sae, seeds=seeds, steps=steps, guidance=guidance)
        ranked = rank_examples(maps, k=4, prompts=PROMPTS, timestep=used_t)
        images = decode_images(vae, latents[[e.index for e in ranked]])
        vmax = max(float(ranked[0].heatmap.max()), 1e-8)
        tiles = [overlay(img, e.heatmap, vmax=vmax) for img, e in zip(images, ranked)]
        image_grid(tiles, [f"{e.prompt} {e.score:.2f}" for e in ranked], cell=128).save(out / f"examples_{unit}.png")
        summary["units"][str(unit)] = {
            "peaks": peaks, "active_timesteps": int(len(analysis.active_timesteps(unit))),
            "dataset_max_at_peak": round(analysis.max_at(unit, t), 5), "examples_at": used_t,
            "top_examples": [{"prompt": e.prompt, "score": round(e.score, 5)} for e in ranked]}
    summary["seconds"] = round(time.perf_counter() - start, 2)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
