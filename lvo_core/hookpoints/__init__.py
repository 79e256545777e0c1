"""Hookpoint names, shared by every stage: resolve a block by any spelling (diffusers, LDM/ComfyUI, sdxl-unbox
aliases, a DiT's two namings), list what can be hooked, check an SAE against a block.

:mod:`.core` holds what is generic — :class:`Hookpoint`, prefixes and aliases, the SAE checks, the UNet layout
that SD1.x/2.x and SDXL share, and the registry of block layouts; :mod:`.flux` is FLUX.1's layout, imported here
so that its spellings are known wherever names are matched (an SAE root, an analysis) before any model is loaded.
A model family with a layout of its own registers it with the family (:mod:`lvo_core.model.families`).
"""

from . import flux  # noqa: F401 - registers FLUX.1's block layout
from .core import (  # noqa: F401 - the naming stage's public names
    READS,
    UNET_LAYOUT,
    Hookpoint,
    Layout,
    NameMap,
    _diffusers_key_to_ldm,
    check_sae_fits,
    check_sae_reads,
    equivalent_names,
    expand_alias,
    layout_for,
    layout_of,
    layouts,
    list_hookpoints,
    name_map,
    output_channels,
    register_layout,
    resolve_hookpoint,
    strip_prefix,
    unregister_layout,
    unwrap_unet,
)
