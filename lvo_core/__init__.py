"""lvo_core — Latent Visualization by Optimization for diffusion models, without ComfyUI.

Everything the ComfyUI nodes do lives here and is importable and testable on its own. The subpackages follow the
pipeline a newcomer learns, and import only the ones before them:

1. :mod:`lvo_core.sae` — sparse autoencoders: the math and every file format;
2. :mod:`lvo_core.model` — model access: hooks, the backend seam, noise, sampling, loading;
3. :mod:`lvo_core.analysis` — activity over timesteps, dataset examples, steering, the sample bank, feature
   search, metrics and faithfulness;
4. :mod:`lvo_core.lvo` — objectives, regularizers, the optimizer, :func:`lvo_core.lvo.pipeline.visualize` and the
   recipes;
5. :mod:`lvo_core.runs` — the run record (save, resume, fingerprint), reports, plots and atlases;
6. :mod:`lvo_core.toy` — the toy world with known concepts and a judge, its demo and ablation.

:mod:`lvo_core.commands` holds the bodies of the CLI's commands; :mod:`lvo_core.cli` only parses arguments.
"""

__version__ = "0.1.0"

from .errors import (
    ActivityError,
    HookpointError,
    LVOError,
    SAEFormatError,
    SAEMismatchError,
    TimestepError,
    UnitError,
    UnsafeFileError,
)

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
