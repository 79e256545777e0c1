"""The toy world: synthetic images with known concepts, a linear latent codec and a tiny prompt encoder — the
ground truth against which LVO's visualizations can be measured (training script and trained weights to follow)."""
