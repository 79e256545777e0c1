"""comfyui-lvo: ComfyUI entry point.

With ComfyUI's V3 API (``comfy_api``, ComfyUI 0.3.4x and later) the pack exports only ``comfy_entrypoint``: a
package that defines ``NODE_CLASS_MAPPINGS`` is loaded as V1 and its entry point ignored. An older ComfyUI gets the
same nodes as ``NODE_CLASS_MAPPINGS``. ``WEB_DIRECTORY`` is read either way. All logic lives in ``lvo_core``
(importable without ComfyUI); ``nodes`` holds the adapters.
"""

WEB_DIRECTORY = "./web"
try:  # outside ComfyUI (pytest importing the checkout's folder as a package) there is nothing to register;
    # comfy.samplers, not bare comfy: any folder named comfy/ beside the checkout imports as a namespace package
    import comfy.samplers  # noqa: F401  (ComfyUI has imported it before it loads custom nodes)

    IN_COMFYUI = True
except ImportError:
    IN_COMFYUI = False
if __package__ and IN_COMFYUI:  # and pytest imports this file alone when the clone's folder name has a hyphen
    from .nodes import V3, node_mappings, setup_comfyui

    if V3:
        from .nodes import comfy_entrypoint
    else:
        NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_mappings()
    setup_comfyui()
