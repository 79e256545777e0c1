"""Steering (a MODEL patch for any sampler) and Steering Init (the LVO prior by the reference protocol)."""

from __future__ import annotations

import torch

from ..lvo_core.errors import LVOError
from ..lvo_core.steering import REFERENCE_SEEDS, BlockSteer, StrengthSchedule, default_scale
from ..lvo_core.units import parse_units
from . import comfy_glue as glue

CATEGORY = "LVO"
SEEDS_DEFAULT = ", ".join(map(str, REFERENCE_SEEDS))


def _schedule(spec, activity, strength: float, scale: float, timesteps: str, start: float, end: float):
    if activity is not None:
        activity.check_matches(spec.hookpoint, spec.sae)
    if timesteps == "active" and activity is None:
        raise LVOError("timesteps 'active' needs an activity analysis: connect LVO Activity Analysis, or use "
                       "'window' with start/end percent")
    if strength == 0 and activity is None:
        raise LVOError("strength 0 means 'dataset max × scale', which needs an activity analysis; connect one or "
                       "set a fixed strength")
    return StrengthSchedule(spec.units, analysis=activity, scale=scale or default_scale(spec.sae),
                            strength=strength or None, window=(start, end), gate=timesteps)


def _steer_inputs() -> dict:
    return {
        "mode": (["add", "scale"], {"tooltip": "add: push along the feature's decoder direction (raw: add a "
                                    "constant to the channel). scale: multiply the feature's code by the strength, "
                                    "SAE error preserved."}),
        "strength": ("FLOAT", {"default": 0.0, "min": -1e6, "max": 1e6, "step": 0.1, "tooltip": "Fixed strength "
                               "(or factor in scale mode). 0 = the unit's dataset max at each timestep × scale "
                               "(needs an activity analysis)."}),
        "scale": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e5, "step": 1.0, "tooltip": "Multiplier of the "
                            "dataset max. 0 = the reference's 500 (SAE) / 50 (raw)."}),
        "timesteps": (["active", "window"], {"tooltip": "active: steer where the unit's activity profile is > 0 "
                                             "(needs an analysis). window: steer between start and end percent."}),
        "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "Start of the window as a fraction of sampling."}),
        "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "End of the window as a fraction of sampling."}),
    }


class LVOSteering:
    NODE_ID = "LVOSteering"
    DISPLAY_NAME = "LVO Steering"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Returns a copy of the model that pushes the hooked block towards the chosen units while "
                   "sampling; works with the stock KSampler and any sampler node. The input model is untouched.")
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The steered model (a clone; the hook exists only while it runs).",)
    FUNCTION = "patch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The model to steer (it is cloned, never modified)."}),
            "units": ("LVO_UNITS", {"tooltip": "Units to push (all of them at once)."}),
            **_steer_inputs(),
            "apply_to": (["both", "cond"], {"tooltip": "Steer both CFG halves (as SAeUron) or only the "
                                            "conditional one."}),
        }, "optional": {
            "activity": ("LVO_ACTIVITY", {"tooltip": "Activity analysis of these units: active timesteps and "
                                          "dataset maxima."}),
        }}

    def patch(self, model, units, mode, strength, scale, timesteps, start_percent, end_percent, apply_to,
              activity=None):
        schedule = _schedule(units, activity, strength, scale, timesteps, start_percent, end_percent)
        steer = BlockSteer(units.units, units.sae, units.channels, schedule, mode)
        return (glue.add_block_edit(model, glue.ldm_module_path(model, units.hookpoint), steer, apply_to),)


class LVOSteeringInit:
    NODE_ID = "LVOSteeringInit"
    DISPLAY_NAME = "LVO Steering Init (prior)"
    CATEGORY = CATEGORY
    DESCRIPTION = ("The LVO prior by the reference protocol: one generation per unit × seed with the empty prompt, "
                   "cfg 1, 50 steps, the block steered towards that row's unit (strength = dataset max × 500 SAE / "
                   "× 50 raw at active timesteps, or fixed). Uses ComfyUI's own sampling.")
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("prior",)
    OUTPUT_TOOLTIPS = ("Latents, one row per unit × seed (in that order), remembered for LVO Optimize.",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        import comfy.samplers

        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model."}),
            "units": ("LVO_UNITS", {"tooltip": "Units to make priors for."}),
            "empty_prompt": ("CONDITIONING", {"tooltip": "Conditioning of the EMPTY prompt (CLIP Text Encode with "
                                              "no text), as the reference protocol prescribes."}),
            "seeds": ("STRING", {"default": SEEDS_DEFAULT, "tooltip": "One generation per seed and unit (the "
                                 "reference: 1024, 1111, 4359, 3248, 1026)."}),
            "steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip": "Sampling steps (reference 50)."}),
            "width": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8, "tooltip": "Image width."}),
            "height": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8, "tooltip": "Image height."}),
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"default": "ddim", "tooltip": "Sampler."}),
            "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "ddim_uniform", "tooltip": "Schedule."}),
            **_steer_inputs(),
        }, "optional": {
            "activity": ("LVO_ACTIVITY", {"tooltip": "Activity analysis: active timesteps and dataset maxima."}),
        }}

    def generate(self, model, units, empty_prompt, seeds, steps, width, height, sampler_name, scheduler, mode,
                 strength, scale, timesteps, start_percent, end_percent, activity=None):
        seed_list = parse_units(seeds)
        if not seed_list:
            raise LVOError("give at least one seed, e.g. '1024, 1111'")
        rows = [(u, s) for u in units.units for s in seed_list]
        schedule = _schedule(units, activity, strength, scale, timesteps, start_percent, end_percent)
        steer = BlockSteer(units.units, units.sae, units.channels, schedule, mode, row_units=[u for u, _ in rows])
        patched = glue.add_block_edit(model, glue.ldm_module_path(model, units.hookpoint), steer, "both")
        channels = patched.model.latent_format.latent_channels
        latent = torch.zeros(len(rows), channels, height // 8, width // 8)
        noise = glue.seeded_noise_like(latent, [s for _, s in rows])
        progress = glue.Progress(steps)
        samples = glue.sample(patched, noise, empty_prompt, empty_prompt, latent, steps, 1.0, sampler_name,
                              scheduler, seed_list[0], on_step=progress)
        return ({"samples": samples, "lvo_prior": {"rows": rows, "hookpoint": units.hookpoint}},)


NODES = [LVOSteering, LVOSteeringInit]
