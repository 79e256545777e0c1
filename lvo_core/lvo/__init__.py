"""LVO proper: optimize a diffusion latent so one unit fires, then decode it.

Objectives (a small algebra over captured activations), image-space transforms and regularizer terms, the Adam
loop with its gradient transforms, the high-level :func:`~lvo_core.lvo.pipeline.visualize`, and the recipes
(paper, faithful) that name every choice besides the unit and the seed. Builds on :mod:`lvo_core.analysis`.
"""
