"""lvo_core — Latent Visualization by Optimization for diffusion UNets, without ComfyUI.

Everything the ComfyUI nodes do lives here and is importable and testable on its own: SAE loading
(:mod:`lvo_core.sae`), hookpoint naming (:mod:`lvo_core.hookpoints`), block hooks (:mod:`lvo_core.hooks`),
time-step activity analysis (:mod:`lvo_core.activity`), dataset examples (:mod:`lvo_core.examples`), and the LVO
engine: noise (:mod:`lvo_core.noise`), objectives, regularizers (:mod:`lvo_core.transforms`), steering priors
(:mod:`lvo_core.steering`), the optimizer (:mod:`lvo_core.optimize`), metrics and :func:`lvo_core.pipeline.visualize`;
the run record (:mod:`lvo_core.runs`: save, resume, fingerprint) and the commands behind the CLI
(:mod:`lvo_core.commands`).
"""

__version__ = "0.1.0"

from .errors import (ActivityError, HookpointError, LVOError, SAEFormatError, SAEMismatchError, TimestepError,
                     UnitError, UnsafeFileError)

__all__ = ["__version__", "LVOError", "SAEFormatError", "UnsafeFileError", "HookpointError", "SAEMismatchError",
           "UnitError", "ActivityError", "TimestepError", "Hookpoint", "list_hookpoints", "resolve_hookpoint",
           "SparseAutoencoder", "load_sae", "save_sae"]


def __getattr__(name: str):
    """The torch-backed names load on first use, so ``import lvo_core`` (and the CLI's first line) is instant."""
    if name in ("Hookpoint", "list_hookpoints", "resolve_hookpoint"):
        from . import hookpoints

        return getattr(hookpoints, name)
    if name in ("SparseAutoencoder", "load_sae", "save_sae"):
        from . import sae

        return getattr(sae, name)
    raise AttributeError(f"module 'lvo_core' has no attribute '{name}'")
