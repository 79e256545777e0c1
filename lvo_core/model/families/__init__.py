"""Model families: one object per architecture (SD1.x/2.x, SDXL, FLUX.1), each in one module of this package.

A family knows how to recognise its models (a loaded module, a diffusers folder), its block layout (registered with
:func:`~lvo_core.hookpoints.register_layout`), its default hookpoint and latent shape, how to build a
:class:`~lvo_core.model.backend.Backend` over it, its tiny random builder with the random SAE that goes with it,
its full-size reference configs (for memory estimates) and its prompt-encoder kinds. Everything outside this package
asks the registry (:mod:`.base`) instead of branching on an architecture, so a new family is one new module that
calls :func:`register_family`; lookups prefer the most recently registered family (a specific one wins over a
general one). The built-in families are imported here, most general first.
"""

from . import sd  # noqa: F401, I001 - the built-in families register themselves, most general first
from . import sdxl  # noqa: F401
from . import flux  # noqa: F401
from .base import (  # noqa: F401 - the registry's public names
    ModelFamily,
    families,
    family_of,
    folder_family,
    register_family,
    tiny_family,
    tiny_names,
    unregister_family,
)
