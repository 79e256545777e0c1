"""Runs and reports: what a visualization leaves on disk.

The run record (save, load, resume, fingerprint, result JSON), contact sheets and charts with labelled axes and
captions, and atlases over many units. Used alike by the CLI, the nodes and the toy-world ablation; builds on
:mod:`lvo_core.lvo`.
"""
