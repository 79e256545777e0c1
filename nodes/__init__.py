"""ComfyUI adapters over :mod:`lvo_core`: V3-schema nodes, one module per topic, registered from one table.

Each node module lists its node classes in ``NODES``; each class is an ``io.ComfyNode`` with ``define_schema``
(id, display name, inputs and outputs with tooltips) and a classmethod ``execute`` that validates, converts ComfyUI
types and calls one ``lvo_core`` function. To add a node: write the class in a topic module (or a new module added
to :data:`NODE_MODULES`), append it to that module's ``NODES``, done. ComfyUI itself is touched only in
:mod:`.comfy_glue`, which also imports ComfyUI's V3 API (``comfy_api.v0_0_2``); the frontend's side of the ``ui``
dicts the nodes send is written down in :mod:`.ui_protocol`.
"""

from __future__ import annotations

import logging

from ..lvo_core.errors import LVOError
from . import (
    activity_nodes,
    bank_nodes,
    feature_nodes,
    label_nodes,
    lvo_nodes,
    sae_nodes,
    search_nodes,
    steering_nodes,
)
from .comfy_glue import ComfyExtension, install_hint, missing_requirements
from .v3_fields import register_replacements, with_fields

NODE_MODULES = (sae_nodes, activity_nodes, steering_nodes, lvo_nodes, bank_nodes, search_nodes, label_nodes,
                feature_nodes)

__all__ = ["comfy_entrypoint", "node_list", "setup_comfyui"]


def not_ready(cls: type, hint: str) -> type:
    """``cls`` with the same id and inputs (so workflows still load) whose description starts with ``hint`` and
    whose run stops with it: what a user sees on the node when the pack's requirements are missing."""

    class NotReady(cls):
        @classmethod
        def define_schema(klass):
            schema = cls.define_schema()
            schema.description = f"NOT READY — {hint}. {schema.description}"
            return schema

        @classmethod
        def execute(klass, **kwargs):
            raise LVOError(hint)

    NotReady.__name__ = NotReady.__qualname__ = cls.__name__
    return NotReady


def node_list() -> list[type]:
    """Every node class, in menu order; a node id registered twice is a bug. With requirements missing, every
    node says so (and the log says it once, at import)."""
    nodes = [with_fields(cls) for module in NODE_MODULES for cls in module.NODES]
    ids = [cls.__name__ for cls in nodes]  # each class is named as its node id (a test checks)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"node ids registered twice: {duplicates}")
    missing = missing_requirements()
    return [not_ready(cls, install_hint(missing)) for cls in nodes] if missing else nodes


def log_missing_requirements() -> None:
    missing = missing_requirements()
    if missing:
        logging.warning("[comfyui-lvo] %s", install_hint(missing))


class LVOExtension(ComfyExtension):
    """The pack as a V3 extension: ComfyUI asks it for its node list once, at start."""

    async def on_load(self) -> None:
        await register_replacements()

    async def get_node_list(self) -> list[type]:
        return node_list()


async def comfy_entrypoint() -> LVOExtension:
    """V3 entry point (ComfyUI calls it only when the package defines no ``NODE_CLASS_MAPPINGS``: the pack never
    does)."""
    return LVOExtension()


def setup_comfyui() -> bool:
    """Inside ComfyUI: register the models/sae folder and the server routes. Outside: do nothing, return False."""
    try:
        import folder_paths  # noqa: F401  (present only inside ComfyUI)
        import server  # noqa: F401
    except ImportError:
        return False
    from . import comfy_glue, routes

    log_missing_requirements()
    comfy_glue.register_sae_folder()
    routes.register()
    return True
