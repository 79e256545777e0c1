"""Analysis: what a unit does before anyone optimizes for it.

Time-step activity profiles and dataset examples from a prompt set, feature steering (priors and interventions),
the sample bank of model-generated images ranked per unit, selection of a timestep and a starting latent from it,
feature search over an image, and the metrics and faithfulness checks every visualization reports. Builds on
:mod:`lvo_core.model` and :mod:`lvo_core.sae`; never imports the optimizer.
"""
