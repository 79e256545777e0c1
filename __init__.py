"""comfyui-lvo: ComfyUI entry point.

The nodes are V3 nodes (``comfy_api.v0_0_2``, in every ComfyUI since 0.3.48; the pack asks for 0.3.64): the pack
exports only ``comfy_entrypoint``, because ComfyUI loads a package that defines ``NODE_CLASS_MAPPINGS`` as V1 and
ignores its entry point. A ComfyUI too old for V3 gets no nodes and one log line saying to update. ``WEB_DIRECTORY``
is read either way. All logic lives in ``lvo_core`` (importable without ComfyUI); ``nodes`` holds the adapters.
"""

import logging

WEB_DIRECTORY = "./web"
try:  # outside ComfyUI (pytest importing the checkout's folder as a package) there is nothing to register;
    # comfy.samplers, not bare comfy: any folder named comfy/ beside the checkout imports as a namespace package
    import comfy.samplers  # noqa: F401  (ComfyUI has imported it before it loads custom nodes)

    IN_COMFYUI = True
except ImportError:
    IN_COMFYUI = False
try:
    import comfy_api.v0_0_2  # noqa: F401  (the V3 node API the nodes are written against)

    HAS_V3 = True
except ImportError:
    HAS_V3 = False
if __package__ and IN_COMFYUI:  # and pytest imports this file alone when the clone's folder name has a hyphen
    if HAS_V3:
        from .nodes import comfy_entrypoint, setup_comfyui

        setup_comfyui()
    else:
        logging.error("[comfyui-lvo] this ComfyUI has no V3 node API (comfy_api.v0_0_2): update ComfyUI to 0.3.64 "
                      "or later; no LVO nodes are loaded")
