"""comfyui-lvo: ComfyUI entry point.

ComfyUI imports this folder as a package and reads ``NODE_CLASS_MAPPINGS``, ``NODE_DISPLAY_NAME_MAPPINGS`` and
``WEB_DIRECTORY``. All logic lives in ``lvo_core`` (importable without ComfyUI); ``nodes`` holds the adapters.
"""

from .nodes import node_mappings

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings()
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
