"""The pack's own socket types (V3 ``io.Custom``): what flows between LVO nodes and nowhere else."""

from __future__ import annotations

from .comfy_glue import io

SAE = io.Custom("LVO_SAE")
UNITS = io.Custom("LVO_UNITS")
ACTIVITY = io.Custom("LVO_ACTIVITY")
BANK = io.Custom("LVO_BANK")
LABELS = io.Custom("LVO_LABELS")
PRIOR = io.Custom("LVO_PRIOR")  # a lvo_core.lvo.priors.PriorTable: start latents by (unit, seed)
