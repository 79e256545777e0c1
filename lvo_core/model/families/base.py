"""The family registry: :class:`ModelFamily` (what LVO needs to know about one architecture) and the lookups every
stage uses instead of branching on an architecture; the family modules import it and register themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ...errors import LVOError
from ...hookpoints import Layout, register_layout, unregister_layout, unwrap_unet


class ModelFamily:
    """What LVO needs to know about one architecture. Subclasses override what differs; ``None`` where a family
    has no such thing (no tiny model, no folder loader of its own: the UNet loader of ``loading`` then serves)."""

    name = "family"
    tiny_name: str | None = None  # the --model name of its tiny random model
    layout: Layout | None = None  # its block layout when the UNet layout is not it
    folder_name = "unet"  # the subfolder its denoiser is saved in
    prompt_kinds: dict[str, Callable[[dict], nn.Module]] = {}  # lvo_prompt_encoder.json kinds it builds
    reference: dict[str, tuple[Callable[[], nn.Module], tuple[str, ...], torch.dtype]] = {}  # memory estimates

    def owns(self, model: nn.Module) -> bool:
        """Whether the bare module ``model`` is of this family."""
        raise NotImplementedError

    def owns_folder(self, path: Path) -> bool:
        """Whether the diffusers folder ``path`` holds a model this family loads itself."""
        return False

    def load_folder(self, path: Path, device: torch.device, dtype: torch.dtype) -> Any:
        raise LVOError(f"the {self.name} family has no folder loader")

    def folder_prompt_encoder(self, folder: Path, device: torch.device) -> tuple[bool, Any]:
        """``(True, encoder or None)`` when this family decides how ``folder`` encodes prompts, else ``(False, _)``."""
        return False, None

    def encoder_spec(self, encoder: Any) -> dict | None:
        """The lvo_prompt_encoder.json fields of one of its built-in encoders, else None."""
        return None

    def default_hookpoint(self, model: nn.Module) -> str:
        raise NotImplementedError

    def latent_shape(self, model: nn.Module) -> tuple[int, int, int]:
        raise NotImplementedError

    def backend(self, model: Any, hookpoint: str, reads: str = "output") -> Any:
        """A backend over a loaded model (``denoiser``, ``scheduler``, ``decoder``, ``require_prompts()``)."""
        raise NotImplementedError

    def tiny(self, device: torch.device, dtype: torch.dtype) -> Any:
        raise LVOError(f"the {self.name} family has no tiny model")

    def tiny_sae(self) -> Any:
        raise LVOError(f"the {self.name} family has no tiny SAE")


_FAMILIES: list[ModelFamily] = []


def register_family(family: ModelFamily) -> ModelFamily:
    """Make ``family`` (and its layout) known to every lookup; it is tried before those registered earlier."""
    if family not in _FAMILIES:
        _FAMILIES.insert(0, family)
    if family.layout is not None:
        register_layout(family.layout)
    return family


def unregister_family(family: ModelFamily) -> None:
    if family in _FAMILIES:
        _FAMILIES.remove(family)
    if family.layout is not None:
        unregister_layout(family.layout)


def families() -> list[ModelFamily]:
    """Every registered family, newest first."""
    return list(_FAMILIES)


def family_of(model: nn.Module) -> ModelFamily:
    """The family of a loaded model (wrappers such as a ComfyUI BaseModel's ``diffusion_model`` removed)."""
    bare = unwrap_unet(model)
    for family in families():
        if family.owns(bare):
            return family
    raise LVOError(f"{type(bare).__name__} is of no model family LVO knows "
                   f"({', '.join(f.name for f in families())})")


def tiny_family(name: str) -> ModelFamily | None:
    """The family whose tiny random model is called ``name``, else None."""
    return next((f for f in families() if f.tiny_name == name), None)


def tiny_names() -> tuple[str, ...]:
    return tuple(f.tiny_name for f in reversed(families()) if f.tiny_name)


def folder_family(path: Path) -> ModelFamily | None:
    """The family that loads the diffusers folder ``path`` itself, else None (the UNet loader's)."""
    return next((f for f in families() if f.owns_folder(path)), None)
