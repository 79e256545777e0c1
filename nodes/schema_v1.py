"""The part of ComfyUI's V3 schema (``comfy_api.v0_0_2.io``) this pack uses, for hosts without ``comfy_api``.

The nodes are written once, against the V3 API. Inside a ComfyUI that has ``comfy_api`` they are real
``io.ComfyNode`` classes; in an older ComfyUI (and in the tests, which run without ComfyUI) this module stands in
for ``io``: the same constructors, and every node class also carries the V1 attributes (``INPUT_TYPES``,
``RETURN_TYPES``, ``FUNCTION``, …) that ComfyUI's V1 loader reads. Only what the pack's nodes use is here.
"""

from __future__ import annotations

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
        """The V1 ``INPUT_TYPES`` entry: ``(type, {tooltip, default, min, …})``."""
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


class _V1Attributes(type):
    """V1 attributes computed from the schema when ComfyUI (or a test) reads them from the class."""

    RETURN_TYPES = property(lambda cls: tuple(o.io_type for o in cls.GET_SCHEMA().outputs))
    RETURN_NAMES = property(lambda cls: tuple(o.display_name or o.io_type for o in cls.GET_SCHEMA().outputs))
    OUTPUT_TOOLTIPS = property(lambda cls: tuple(o.tooltip or "" for o in cls.GET_SCHEMA().outputs))
    CATEGORY = property(lambda cls: cls.GET_SCHEMA().category)
    DESCRIPTION = property(lambda cls: cls.GET_SCHEMA().description)
    OUTPUT_NODE = property(lambda cls: cls.GET_SCHEMA().is_output_node)


class ComfyNode(metaclass=_V1Attributes):
    """Base of every node: ``define_schema`` and ``execute`` as in V3, plus V1's entry points."""

    FUNCTION = "run_v1"
    RETURN_TYPES = property(lambda self: type(self).RETURN_TYPES)  # V1 also reads them from the instance
    RETURN_NAMES = property(lambda self: type(self).RETURN_NAMES)
    OUTPUT_NODE = property(lambda self: type(self).OUTPUT_NODE)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "validate_inputs" in cls.__dict__:  # V1 calls it by this name, on an instance
            cls.VALIDATE_INPUTS = cls.validate_inputs

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
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:  # noqa: N802 - the V1 name
        schema = cls.define_schema()
        return {"required": {i.id: i.v1() for i in schema.inputs if not i.optional},
                "optional": {i.id: i.v1() for i in schema.inputs if i.optional}}

    def run_v1(self, **kwargs: Any) -> dict:
        out = type(self).execute(**kwargs)
        return {"ui": out.ui, "result": out.args} if out.ui is not None else {"result": out.args}


class ComfyExtension:
    """V3's extension object: the list of node classes."""

    async def get_node_list(self) -> list[type[ComfyNode]]:
        raise NotImplementedError
