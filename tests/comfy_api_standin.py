"""A stand-in for ComfyUI's ``comfy_api.v0_0_2`` (``io`` and ``ComfyExtension``): the part of the V3 schema the
pack's nodes use, for tests that run without ComfyUI.

The real package is not installable from a package registry (it ships only inside ComfyUI's source, and importing
it needs PyAV and the rest of ComfyUI's requirements), so tests put :func:`api_modules` in ``sys.modules`` before
they import the pack. Like the real ``io.ComfyNode`` it also
derives ComfyUI's node-definition fields (``INPUT_TYPES``, ``RETURN_TYPES``, ``RETURN_NAMES``, …) from the schema:
ComfyUI sends those to the frontend as ``/object_info``, and the workflow tools check templates against them.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any


class Input:
    """One node input: a socket, or a widget when the type is INT/FLOAT/STRING/BOOLEAN/COMBO."""

    io_type = ""

    def __init__(self, id: str, display_name: str | None = None, optional: bool = False,  # noqa: A002 - V3 name
                 tooltip: str | None = None, advanced: bool | None = None, **options: Any):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.advanced = advanced
        self.options = {k: v for k, v in options.items() if v is not None}

    def v1(self) -> tuple:
        """The ``INPUT_TYPES`` entry (``/object_info``): ``(type, {tooltip, default, min, …})``."""
        opts = dict(self.options)
        choices = opts.pop("options", None)
        if opts.pop("force_input", False):
            opts["forceInput"] = True
        if self.tooltip:
            opts["tooltip"] = self.tooltip
        if self.advanced:
            opts["advanced"] = True
        return (list(choices) if self.io_type == "COMBO" else self.io_type, opts)


class Output:
    io_type = ""

    def __init__(self, id: str | None = None, display_name: str | None = None,  # noqa: A002 - V3 name
                 tooltip: str | None = None, is_output_list: bool = False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def Custom(io_type: str) -> type:  # noqa: N802 - the V3 name
    """A socket type: ``Custom("LVO_UNITS").Input(...)`` / ``.Output(...)``."""
    return type(io_type, (), {"io_type": io_type, "Input": type("Input", (Input,), {"io_type": io_type}),
                              "Output": type("Output", (Output,), {"io_type": io_type})})


Int, Float, String, Boolean, Combo = (Custom(t) for t in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"))
Image, Mask, Latent, Conditioning = (Custom(t) for t in ("IMAGE", "MASK", "LATENT", "CONDITIONING"))
Model, Vae, Clip = (Custom(t) for t in ("MODEL", "VAE", "CLIP"))


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    description: str = ""
    is_output_node: bool = False
    search_aliases: list[str] | None = None


class NodeOutput:
    """What ``execute`` returns: the output values and an optional ``ui`` dict for the frontend."""

    def __init__(self, *args: Any, ui: dict | None = None):
        self.args, self.ui = args, ui

    @property
    def result(self) -> tuple | None:
        return self.args or None

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class _NodeInfo(type):
    """ComfyUI's node-definition fields, computed from the schema when read from the class (as the real ``io``)."""

    RETURN_TYPES = property(lambda cls: tuple(o.io_type for o in cls.GET_SCHEMA().outputs))
    RETURN_NAMES = property(lambda cls: tuple(o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs))
    OUTPUT_TOOLTIPS = property(lambda cls: tuple(o.tooltip or "" for o in cls.GET_SCHEMA().outputs))
    CATEGORY = property(lambda cls: cls.GET_SCHEMA().category)
    DESCRIPTION = property(lambda cls: cls.GET_SCHEMA().description)
    OUTPUT_NODE = property(lambda cls: cls.GET_SCHEMA().is_output_node)


class ComfyNode(metaclass=_NodeInfo):
    """Base of every node: ``define_schema``, ``execute`` and ``validate_inputs`` as in V3."""

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 - the V3 name
        return cls.define_schema()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:  # noqa: N802 - the V3 class's /object_info field
        schema = cls.define_schema()
        return {"required": {i.id: i.v1() for i in schema.inputs if not i.optional},
                "optional": {i.id: i.v1() for i in schema.inputs if i.optional}}


class ComfyExtension:
    """V3's extension object: the list of node classes."""

    async def get_node_list(self) -> list[type[ComfyNode]]:
        raise NotImplementedError


def api_modules() -> dict[str, types.ModuleType]:
    """This module as ComfyUI's V3 API: the ``sys.modules`` entries ``comfy_api`` and ``comfy_api.v0_0_2``."""
    api = types.ModuleType("comfy_api")
    versioned = types.ModuleType("comfy_api.v0_0_2")
    versioned.io, versioned.ComfyExtension = sys.modules[__name__], ComfyExtension
    api.v0_0_2 = versioned
    return {"comfy_api": api, "comfy_api.v0_0_2": versioned}
