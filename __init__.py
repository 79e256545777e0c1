"""comfyui-lvo: ComfyUI entry point.

ComfyUI imports this folder as a package and reads ``NODE_CLASS_MAPPINGS``, ``NODE_DISPLAY_NAME_MAPPINGS`` and
``WEB_DIRECTORY``. All logic lives in ``lvo_core`` (importable without ComfyUI); ``nodes`` holds the adapters.
The pack uses ComfyUI's V1 node API, which every ComfyUI version supports.
"""

WEB_DIRECTORY = "./web"
if __package__:  # pytest imports this file on its own (no package) when the clone's folder name has a hyphen
    from .nodes import node_mappings, setup_comfyui

    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings()
    setup_comfyui()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
