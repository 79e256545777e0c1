"""ComfyUI adapters over :mod:`lvo_core`: one table declares every node the pack registers.

Each node module contributes ``NODES``: node classes with a ``NODE_ID`` and ``DISPLAY_NAME``. Nodes are thin:
validate, convert ComfyUI types, call ``lvo_core``. ComfyUI itself is touched only in :mod:`.comfy_glue`.
"""

from __future__ import annotations

from . import activity_nodes, lvo_nodes, sae_nodes, steering_nodes

NODE_MODULES = (sae_nodes, activity_nodes, steering_nodes, lvo_nodes)


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


def setup_comfyui() -> bool:
    """Inside ComfyUI: register the models/sae folder and the server routes. Outside: do nothing, return False."""
    try:
        import folder_paths  # noqa: F401  (present only inside ComfyUI)
        import server  # noqa: F401
    except ImportError:
        return False
    from . import comfy_glue, routes

    comfy_glue.register_sae_folder()
    routes.register()
    return True
