"""Steering (a MODEL patch for any sampler) and Steering Init (the LVO prior by the reference protocol)."""

from __future__ import annotations

import torch

from ..lvo_core.analysis.steering import (
    REFERENCE_SEEDS,
    BlockSteer,
    StrengthSchedule,
    default_scale,
)
from ..lvo_core.errors import LVOError
from ..lvo_core.lvo.priors import PriorTable
from ..lvo_core.model.units import parse_seeds
from . import comfy_glue as glue
from .checks import check_text
from .comfy_glue import io
from .sockets import ACTIVITY, PRIOR, UNITS

CATEGORY = "LVO"
SEEDS_DEFAULT = ", ".join(map(str, REFERENCE_SEEDS))
# The hidden key of Steering Init's LATENT that carried the prior before the LVO_PRIOR socket; LVO Optimize still
# reads it so workflows saved then (Steering Init's LATENT wired into Optimize's latent) give the same pictures.
LEGACY_PRIOR_KEY = "lvo_prior"


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


def _steer_inputs() -> list:
    return [
        io.Combo.Input("mode", options=["add", "scale"],
                       tooltip="add: push along the feature's decoder direction (raw: add a constant to the "
                               "channel). scale: multiply the feature's code by the strength, SAE error preserved."),
        io.Float.Input("strength", default=0.0, min=-1e6, max=1e6, step=0.1,
                       tooltip="Fixed strength (or factor in scale mode). 0 = the unit's dataset max at each "
                               "timestep × scale (needs an activity analysis)."),
        io.Float.Input("scale", default=0.0, min=0.0, max=1e5, step=1.0,
                       tooltip="Multiplier of the dataset max. 0 = the reference's 500 (SAE) / 50 (raw)."),
        io.Combo.Input("timesteps", options=["active", "window"],
                       tooltip="active: steer where the unit's activity profile is > 0 (needs an analysis). "
                               "window: steer between start and end percent."),
        io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Start of the window as a fraction of sampling."),
        io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                       tooltip="End of the window as a fraction of sampling."),
    ]


class LVOSteering(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOSteering", display_name="LVO Steering", category=CATEGORY,
            description="Returns a copy of the model that pushes the hooked block towards the chosen units while "
                        "sampling; works with the stock KSampler and any sampler node. The input model is untouched.",
            inputs=[
                io.Model.Input("model", tooltip="The model to steer (it is cloned, never modified)."),
                UNITS.Input("units", tooltip="Units to push (all of them at once)."),
                *_steer_inputs(),
                io.Combo.Input("apply_to", options=["both", "cond"],
                               tooltip="Steer both CFG halves (as SAeUron) or only the conditional one."),
                ACTIVITY.Input("activity", optional=True,
                               tooltip="Activity analysis of these units: active timesteps and dataset maxima."),
            ],
            outputs=[io.Model.Output(display_name="model",
                                     tooltip="The steered model (a clone; the hook exists only while it runs).")])

    @classmethod
    def execute(cls, model, units, mode: str, strength: float, scale: float, timesteps: str, start_percent: float,
                end_percent: float, apply_to: str, activity=None) -> io.NodeOutput:
        schedule = _schedule(units, activity, strength, scale, timesteps, start_percent, end_percent)
        steer = BlockSteer(units.units, units.sae, units.channels, schedule, mode)
        return io.NodeOutput(glue.add_block_edit(model, glue.ldm_hookpoint(model, units), steer, apply_to))


class LVOSteeringInit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        samplers, schedulers = glue.sampler_names()
        return io.Schema(
            node_id="LVOSteeringInit", display_name="LVO Steering Init (prior)", category=CATEGORY,
            description="The LVO prior by the reference protocol: one generation per unit × seed with the empty "
                        "prompt, cfg 1, 50 steps, the block steered towards that row's unit (strength = dataset max "
                        "× 500 SAE / × 50 raw at active timesteps, or fixed). Uses ComfyUI's own sampling.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                UNITS.Input("units", tooltip="Units to make priors for."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning of the EMPTY prompt (CLIP Text Encode "
                                                              "with no text), as the reference protocol prescribes."),
                io.String.Input("seeds", default=SEEDS_DEFAULT, tooltip="One generation per seed and unit (the "
                                                                        "reference: 1024, 1111, 4359, 3248, 1026)."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Sampling steps (reference 50)."),
                io.Int.Input("width", default=512, min=64, max=4096, step=8, tooltip="Image width."),
                io.Int.Input("height", default=512, min=64, max=4096, step=8, tooltip="Image height."),
                io.Combo.Input("sampler_name", options=samplers, default="ddim", tooltip="Sampler."),
                io.Combo.Input("scheduler", options=schedulers, default="ddim_uniform", tooltip="Schedule."),
                *_steer_inputs(),
                ACTIVITY.Input("activity", optional=True,
                               tooltip="Activity analysis: active timesteps and dataset maxima."),
            ],
            outputs=[io.Latent.Output(display_name="latent", tooltip="The steered generations as a LATENT, one row "
                                                                     "per unit × seed (in that order), to preview "
                                                                     "with VAE Decode."),
                     PRIOR.Output(display_name="prior", tooltip="The same latents by (unit, seed): wire it to LVO "
                                                                "Optimize's prior input.")])

    @classmethod
    def validate_inputs(cls, seeds: str | None = None) -> bool | str:
        return check_text(seeds=seeds)

    @classmethod
    def execute(cls, model, units, empty_prompt, seeds: str, steps: int, width: int, height: int, sampler_name: str,
                scheduler: str, mode: str, strength: float, scale: float, timesteps: str, start_percent: float,
                end_percent: float, activity=None) -> io.NodeOutput:
        seed_list = parse_seeds(seeds)
        if not seed_list:
            raise LVOError("give at least one seed, e.g. '1024, 1111'")
        rows = [(u, s) for u in units.units for s in seed_list]
        schedule = _schedule(units, activity, strength, scale, timesteps, start_percent, end_percent)
        steer = BlockSteer(units.units, units.sae, units.channels, schedule, mode, row_units=[u for u, _ in rows])
        patched = glue.add_block_edit(model, glue.ldm_hookpoint(model, units), steer, "both")
        channels = patched.model.latent_format.latent_channels
        latent = torch.zeros(len(rows), channels, height // 8, width // 8)
        noise = glue.seeded_noise_like(latent, [s for _, s in rows])
        progress = glue.Progress(steps)
        samples = glue.sample(patched, noise, empty_prompt, empty_prompt, latent, steps, 1.0, sampler_name,
                              scheduler, seed_list[0], on_step=progress)
        notes = list(schedule.notes.values())
        prior = PriorTable(rows, glue.latent_in(model, samples), label="steering init", source="the prior",
                           fix="give Steering Init the same units and seeds as LVO Optimize", notes=notes)
        legacy = {"rows": rows, "hookpoint": units.hookpoint, "notes": notes}
        return io.NodeOutput({"samples": samples, LEGACY_PRIOR_KEY: legacy}, prior,
                             ui={"text": notes} if notes else None)


NODES = [LVOSteering, LVOSteeringInit]
