"""The V3 schema fields of late-2026 ComfyUI, set from tables here so every node (and any node added later) gets
them, and passed only to a core that knows them.

- ``search_aliases`` (``Schema`` field): words the node search also matches. Every pack node
  gets :data:`PACK_ALIASES`, so "sae", "feature", "neuron", "dream" or "interpretability" list the whole pack.
- ``advanced`` (``Input`` argument): inputs a first-time user should not touch; newer frontends fold them away.
  ComfyUI 0.3.64's ``Input`` has no such argument but sends its ``extra_dict`` with the input's options, which is
  where the newer core puts the flag too.
- Node Replacement (``ComfyAPI().node_replacement.register(io.NodeReplace(...))``): how a saved workflow's old node
  becomes a new one when a node's inputs change. :data:`REPLACEMENTS` is empty: since the nodes moved to V3 no
  node has renamed or dropped an input (checked in git history); add an entry the day one does.

Which field a core knows is probed on the schema classes themselves, never guessed from a version number.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

PACK_ALIASES = ("sae", "sparse autoencoder", "feature", "neuron", "unit", "interpretability", "dream",
                "deep dream", "visualization", "lvo")
NODE_ALIASES: dict[str, tuple[str, ...]] = {
    "LVOSAELoader": ("load sae", "dictionary"),
    "LVOFeatureHook": ("hook", "channel", "activation"),
    "LVOActivityAnalysis": ("activation", "timestep", "analysis"),
    "LVODatasetExamples": ("top images", "examples", "dataset"),
    "LVOSteering": ("steer", "amplify", "suppress"),
    "LVOSteeringInit": ("prior", "init"),
    "LVOOptimize": ("optimize", "feature visualization", "maximize"),
    "LVOFeatureGrid": ("grid", "atlas", "contact sheet"),
    "LVOSampleBank": ("bank", "pool", "samples"),
    "LVOFaithful": ("faithful", "polish"),
    "LVOFeatureSearch": ("search", "find features", "explain image"),
    "LVOFeaturePage": ("explain feature", "report", "card"),
    "LVOLabelSearch": ("label", "word", "text search", "find feature", "what is feature"),
}
ADVANCED: dict[str, tuple[str, ...]] = {
    "LVOSAELoader": ("k",),
    "LVOFeatureHook": ("hookpoint",),
    "LVOActivityAnalysis": ("negative", "sampler_name", "scheduler", "top_n"),
    "LVODatasetExamples": ("seed",),
    "LVOSteering": ("scale", "timesteps", "start_percent", "end_percent", "apply_to"),
    "LVOSteeringInit": ("sampler_name", "scheduler", "scale", "timesteps", "start_percent", "end_percent"),
    "LVOOptimize": ("lr", "objective", "robustness", "noise", "batch_size", "precision", "preview_every"),
    "LVOSampleBank": ("seed",),
    "LVOFaithful": ("selection_t", "precision"),
    "LVOFeatureSearch": ("hookpoint", "timestep", "rank_by"),
    "LVOFeaturePage": ("bank_t", "bins"),
    "LVOLabelSearch": ("hookpoint",),
}
# (old id, new id, input mapping [{"new_id", "old_id"} | {"new_id", "set_value"}], outputs [{"new_idx", "old_idx"}])
REPLACEMENTS: list[tuple[str, str, list[dict], list[dict]]] = []


def aliases(node_id: str) -> list[str]:
    return [*PACK_ALIASES, *NODE_ALIASES.get(node_id, ())]


def _schema_knows(schema: Any, name: str) -> bool:
    return dataclasses.is_dataclass(schema) and name in {f.name for f in dataclasses.fields(schema)}


def mark_advanced(item: Any) -> None:
    """Flag one input as advanced the way this core's ``Input`` can carry it."""
    if hasattr(item, "advanced"):  # comfy_api after 0.3.64, and the tests' stand-in
        item.advanced = True
    elif isinstance(getattr(item, "extra_dict", None), dict):  # 0.3.64: merged into the input's options
        item.extra_dict["advanced"] = True


def apply(schema: Any) -> Any:
    """``schema`` with this module's aliases and advanced flags (what the host's schema classes support)."""
    if _schema_knows(schema, "search_aliases"):
        schema.search_aliases = aliases(schema.node_id)
    flagged = set(ADVANCED.get(schema.node_id, ()))
    for item in schema.inputs or []:
        if item.id in flagged:
            mark_advanced(item)
    return schema


def with_fields(cls: type) -> type:
    """``cls`` whose schema carries the fields above; same id, name and module, so nothing else changes."""

    class WithFields(cls):
        @classmethod
        def define_schema(klass):
            return apply(cls.define_schema())

    WithFields.__name__ = WithFields.__qualname__ = cls.__name__
    WithFields.__module__ = cls.__module__
    return WithFields


async def register_replacements(api: Any = None, node_replace: Any = None) -> int:
    """Register :data:`REPLACEMENTS` with a core that has the Node Replacement API (``comfy_api.latest``:
    ``ComfyAPI().node_replacement`` and ``io.NodeReplace``); on older cores do nothing. Returns how many."""
    if not REPLACEMENTS:
        return 0
    if api is None or node_replace is None:
        try:
            from comfy_api.latest import ComfyAPI
            from comfy_api.latest import io as latest_io
        except ImportError:
            return 0
        api, node_replace = ComfyAPI(), getattr(latest_io, "NodeReplace", None)
    registry = getattr(api, "node_replacement", None)
    if node_replace is None or registry is None:
        logging.info("[comfyui-lvo] this ComfyUI has no Node Replacement API; old node ids are not mapped")
        return 0
    for old, new, inputs, outputs in REPLACEMENTS:
        await registry.register(node_replace(new_node_id=new, old_node_id=old, input_mapping=inputs or None,
                                             output_mapping=outputs or None))
    return len(REPLACEMENTS)
