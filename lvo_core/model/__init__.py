"""Model access: everything LVO needs to know about a denoiser, and nothing about what it is used for.

Hooks (on hookpoints named in either convention by :mod:`lvo_core.hookpoints`) that capture or edit a block's
activations and always remove themselves, the backend seam every later stage talks to (run up to a block at a
timestep, noise a latent as the scheduler would, sample, decode), the sampling loop, model loading from local files,
and the tiny random SD-shaped pieces the tests and benchmarks build. What differs between architectures (SD, SDXL,
FLUX) lives in :mod:`lvo_core.model.families`, one registered module per family; the generic modules never import
them. Imports only :mod:`lvo_core.sae` and the shared helpers.
"""

from . import families  # noqa: F401 - registers the built-in model families before any lookup
