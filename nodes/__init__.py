"""ComfyUI adapters over :mod:`lvo_core`: one table declares every node the pack registers.

Each node module contributes ``NODES``: a list of node classes with a ``NODE_ID`` and ``DISPLAY_NAME``. Nodes are
thin: validate, convert ComfyUI types, call one ``lvo_core`` function. The ComfyUI-facing node set is built in
the node-pack milestone; until then the table is empty and the pack loads cleanly with no nodes.
"""

from __future__ import annotations

NODE_MODULES: tuple = ()


def node_mappings() -> tuple[dict[str, type], dict[str, str]]:
    """``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` from every node module's ``NODES`` list."""
    classes: dict[str, type] = {}
    names: dict[str, str] = {}
    for module in NODE_MODULES:
        for cls in module.NODES:
            if cls.NODE_ID in classes:
                raise RuntimeError(f"node id {cls.NODE_ID} is registered twice")
            classes[cls.NODE_ID] = cls
            names[cls.NODE_ID] = cls.DISPLAY_NAME
    return classes, names
