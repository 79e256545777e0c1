"""Model access: everything LVO needs to know about a denoiser, and nothing about what it is used for.

Hooks (on hookpoints named in either convention by :mod:`lvo_core.hookpoints`) that capture or edit a block's
activations and always remove themselves, the backend seam every later stage talks to (run up to a block at a
timestep, noise a latent as the scheduler would, decode), samplers, model loading from local files, and the tiny
random SD-shaped models the tests and benchmarks build. Imports only :mod:`lvo_core.sae` and the shared helpers.
"""
