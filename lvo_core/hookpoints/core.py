"""Hookpoint names: resolve a block by its diffusers name (``up_blocks.1.attentions.1``) or its LDM/ComfyUI name
(``output_blocks.4.1``), list what can be hooked, and the registry of block *layouts* that does both per family.

The two UNet namings (shared by SD1.x/2.x and SDXL, kept here) are matched without a hand-written table. For an
LDM-layout UNet the correspondence is read off diffusers' own checkpoint converter (``convert_ldm_unet_checkpoint``),
run on the model's parameter *names* only; for a diffusers UNet we compute the inverse with the converter's index
arithmetic and check it by running the converter on the result: every block must map back to itself, or we refuse.
Other architectures bring their own :class:`Layout` and register it with :func:`register_layout` (FLUX's is in
:mod:`.flux`; a model family registers its layout with the family).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Callable, Iterable

from torch import Tensor, nn

from ..errors import HookpointError, SAEMismatchError

_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "unet.", "transformer.", "model.")
READS = ("output", "update")  # what a hook reads at a block: its output, or output − input
_ALIAS = re.compile(r"^(down|mid|up)\.(\d+)(?:\.(\d+))?$")  # sdxl-unbox short names: down.2.1, mid.0, up.0.1
_DIFFUSERS_BLOCK = re.compile(r"^(down_blocks\.\d+\.(?:resnets|attentions|downsamplers)\.\d+|"
                              r"up_blocks\.\d+\.(?:resnets|attentions|upsamplers)\.\d+|"
                              r"mid_block\.(?:resnets|attentions)\.\d+)(?:\.(.+))?$")
_LDM_BLOCK = re.compile(r"^((?:input_blocks|output_blocks)\.\d+\.\d+|middle_block\.\d+)(?:\.(.+))?$")
_RESNET_RENAMES = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                   ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))


def strip_prefix(name: str) -> str:
    """Drop the wrappers a hookpoint may carry (``unet.``, ``diffusion_model.``, ``model.diffusion_model.``)."""
    name = name.strip()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def expand_alias(name: str) -> str:
    """Expand sdxl-unbox style short names (``up.0.1`` → ``up_blocks.0.attentions.1``, ``mid.0``)."""
    m = _ALIAS.match(name)
    if not m:
        return name
    kind, a, b = m.groups()
    if kind == "mid":
        return f"mid_block.attentions.{a}"
    if b is None:
        return name
    return f"{'down_blocks' if kind == 'down' else 'up_blocks'}.{a}.attentions.{b}"


def unwrap_unet(model: nn.Module) -> nn.Module:
    """The bare UNet inside common wrappers (a ComfyUI BaseModel's ``diffusion_model``, a pipeline's ``unet``)."""
    for attr in ("diffusion_model", "unet"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return unwrap_unet(inner)
    return model


def layout_of(unet: nn.Module) -> str:
    """``diffusers`` or ``ldm``: which of the two UNet namings a UNet's modules carry."""
    if not UNET_LAYOUT.owns(unet):
        raise HookpointError(f"{type(unet).__name__} is not a UNet (down_blocks/up_blocks or input_blocks/...)")
    return "diffusers" if hasattr(unet, "down_blocks") else "ldm"


# ------------------------------------------------------------------------------------------- name correspondence
def _ldm_to_diffusers_keys(ldm_keys: Iterable[str], layers_per_block: int) -> dict[str, str]:
    """{diffusers key: LDM key} as diffusers' converter maps them (only names are passed through it)."""
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    probe = {"model.diffusion_model." + key: key for key in ldm_keys}
    config: dict = {"layers_per_block": layers_per_block}
    if any(key.startswith("label_emb.") for key in probe.values()):
        config["addition_embed_type"] = "text_time"  # SDXL: the converter maps label_emb only when told
    converted = convert_ldm_unet_checkpoint(probe, config)
    return {d: l for d, l in converted.items() if isinstance(l, str)}


def _diffusers_key_to_ldm(key: str, layers_per_block: int, attention_levels: set[int]) -> str | None:
    """The LDM name of one diffusers parameter name, by the converter's own index arithmetic (inverted)."""
    n = layers_per_block + 1
    m = _DIFFUSERS_BLOCK.match(key)
    if not m:
        from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

        tables = DIFFUSERS_TO_LDM_MAPPING["unet"]
        # SDXL's pooled/size embedding (``add_embedding`` ↔ ``label_emb``) sits in the converter's own table too
        return tables["layers"].get(key) or tables["addition_embed_type"].get(key)
    block, rest = m.group(1), m.group(2) or ""
    parts = block.split(".")
    if parts[0] == "mid_block":
        kind, j = parts[1], int(parts[2])
        ldm = f"middle_block.{2 * j if kind == 'resnets' else 1}"
    else:
        level, kind, j = int(parts[1]), parts[2], int(parts[3])
        if parts[0] == "down_blocks":
            if kind == "downsamplers":
                ldm, rest = f"input_blocks.{n * level + n}.0", rest.replace("conv", "op", 1)
            else:
                ldm = f"input_blocks.{n * level + j + 1}.{0 if kind == 'resnets' else 1}"
        elif kind == "upsamplers":
            ldm = f"output_blocks.{n * level + n - 1}.{2 if level in attention_levels else 1}"
        else:
            ldm = f"output_blocks.{n * level + j}.{0 if kind == 'resnets' else 1}"
    if kind == "resnets":
        for new, old in _RESNET_RENAMES:
            if rest.startswith(new + "."):
                rest = old + rest[len(new):]
                break
    return f"{ldm}.{rest}" if rest else ldm


def _infer_layers_per_block(ldm_keys: list[str], num_input_blocks: int) -> int:
    downsamplers = sorted(int(k.split(".")[1]) for k in ldm_keys if re.match(r"input_blocks\.\d+\.0\.op\.", k))
    return downsamplers[0] - 1 if downsamplers else num_input_blocks - 1


def _block(key: str, pattern: re.Pattern) -> str | None:
    m = pattern.match(key)
    return m.group(1) if m else None


@dataclass(frozen=True)
class NameMap:
    """Block-level correspondence between diffusers and LDM names for one model."""

    diffusers_to_ldm: dict[str, str]
    layers_per_block: int

    @property
    def ldm_to_diffusers(self) -> dict[str, str]:
        return {v: k for k, v in self.diffusers_to_ldm.items()}


def _block_map(pairs: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for d_key, l_key in pairs.items():
        d_block, l_block = _block(d_key, _DIFFUSERS_BLOCK), _block(l_key, _LDM_BLOCK)
        if d_block and l_block:
            out.setdefault(d_block, l_block)
    return out


def name_map(unet: nn.Module) -> NameMap:
    """The diffusers ↔ LDM block correspondence for ``unet`` (diffusers or LDM layout), derived as described above."""
    unet = unwrap_unet(unet)
    keys = tuple(unet.state_dict(keep_vars=True).keys())
    if layout_of(unet) == "ldm":
        lpb = _infer_layers_per_block(list(keys), len(unet.input_blocks))
        return NameMap(_block_map(_ldm_to_diffusers_keys(keys, lpb)), lpb)
    lpb = int(unet.config.layers_per_block if hasattr(unet, "config") else len(unet.down_blocks[0].resnets))
    attention_levels = {i for i, b in enumerate(unet.up_blocks) if getattr(b, "attentions", None)}
    return NameMap(_diffusers_name_map(keys, lpb, frozenset(attention_levels)), lpb)


@lru_cache(maxsize=16)
def _diffusers_name_map(keys: tuple[str, ...], lpb: int, attention_levels: frozenset[int]) -> dict[str, str]:
    ldm = {k: _diffusers_key_to_ldm(k, lpb, set(attention_levels)) for k in keys}
    back = _ldm_to_diffusers_keys([v for v in ldm.values() if v], lpb)
    wrong = [k for k, v in ldm.items() if v and back.get(k) != v]
    if wrong:
        raise HookpointError(f"cannot derive LDM names for this UNet: diffusers' converter disagrees on {wrong[:3]}")
    return _block_map({k: v for k, v in ldm.items() if v})


def equivalent_names(name: str, layers_per_block: int = 2) -> list[str]:
    """Spellings of the same block without a model at hand (SD1.x/SD2.x/SDXL all use 2 layers per block).

    Used to match SAE folder names (``unet.up_blocks.1.attentions.1``) against any user spelling of a hookpoint.
    Only attention and resnet blocks, whose LDM index does not depend on the level's other blocks, are mapped.
    """
    base = expand_alias(strip_prefix(name))
    names = [base]
    for layout in layouts()[:-1]:
        spelled = layout.spellings(base)
        if spelled is not None:
            return spelled
    m = _DIFFUSERS_BLOCK.match(base)
    if m and "samplers" not in m.group(1):
        names.append(_diffusers_key_to_ldm(base, layers_per_block, set()) or base)
    lm = _LDM_BLOCK.match(base)
    if lm:
        parts = lm.group(1).split(".")
        n = layers_per_block + 1
        if parts[0] == "output_blocks" and parts[2] in ("0", "1"):
            i = int(parts[1])
            kind = "resnets" if parts[2] == "0" else "attentions"
            names.append(f"up_blocks.{i // n}.{kind}.{i % n}")
        elif parts[0] == "input_blocks" and parts[2] == "1":
            i = int(parts[1]) - 1
            names.append(f"down_blocks.{i // n}.attentions.{i % n}")
        elif parts[0] == "middle_block":
            names.append({"0": "mid_block.resnets.0", "1": "mid_block.attentions.0", "2": "mid_block.resnets.1"}
                         .get(parts[1], base))
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Hookpoint:
    """A resolved block: its names in both conventions, the module to hook, its output channel count, and what
    is read there — the block's ``output``, or its ``update`` (output − input, what sdxl-unbox's SAEs read)."""

    diffusers_name: str
    ldm_name: str
    module_path: str
    module: nn.Module
    channels: int
    kind: str
    stream: str | None = None  # DiT blocks: "image" or "text"; None for a UNet block's single output
    layout: str = "unet"  # whose output container the block returns: a name in some Layout's point_layouts
    reads: str = "output"

    def __post_init__(self):
        if self.reads not in READS:
            raise HookpointError(f"a block is read as one of {', '.join(READS)}, not '{self.reads}'")

    @property
    def name(self) -> str:
        return self.diffusers_name

    def reading(self, reads: str) -> "Hookpoint":
        """The same block read as ``reads`` (``output`` or ``update``)."""
        return self if reads == self.reads else replace(self, reads=reads)


def _kind(diffusers_name: str) -> str:
    for word, kind in (("attentions", "attention"), ("resnets", "resnet"), ("downsamplers", "downsampler"),
                       ("upsamplers", "upsampler")):
        if f".{word}." in f".{diffusers_name}.":
            return kind
    return "block"


def output_channels(module: nn.Module) -> int:
    """Channels of a block's output, read from its structure (no forward pass needed)."""
    for attr in ("out_channels", "in_channels", "channels"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    last = [p for p in module.parameters() if p.ndim >= 1]
    if not last:
        raise HookpointError(f"cannot tell the output channels of {type(module).__name__}")
    return int(last[-1].shape[0])


def _get(unet: nn.Module, path: str) -> nn.Module | None:
    try:
        return unet.get_submodule(path)
    except AttributeError:
        return None


def list_hookpoints(model: nn.Module) -> list[Hookpoint]:
    """Every hookable block of ``model`` (resnets, attentions, samplers) in forward order, with its channels."""
    unet = unwrap_unet(model)
    return layout_for(unet).hookpoints(unet)


def _unet_hookpoints(unet: nn.Module) -> list[Hookpoint]:
    nmap = name_map(unet)
    layout = layout_of(unet)
    points = []
    for d_name, l_name in nmap.diffusers_to_ldm.items():
        path = d_name if layout == "diffusers" else l_name
        module = _get(unet, path)
        if module is not None:
            points.append(Hookpoint(d_name, l_name, path, module, output_channels(module), _kind(d_name)))
    points.sort(key=lambda p: _forward_order(p.diffusers_name))
    return points


def _forward_order(diffusers_name: str) -> tuple[int, int, int, int]:
    """Sort key that follows the UNet's forward pass: down levels, middle, up levels; resnet j before attention j."""
    parts = diffusers_name.split(".")
    section = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}[parts[0]]
    if section == 1:
        level, kind, j = 0, parts[1], int(parts[2])
    else:
        level, kind, j = int(parts[1]), parts[2], int(parts[3])
    rank = {"resnets": 0, "attentions": 1, "downsamplers": 2, "upsamplers": 2}[kind]
    if section == 1:
        return section, level, j + (1 if kind == "resnets" and j else 0), rank
    return section, level, j if rank < 2 else 1 << 10, rank


def resolve_hookpoint(model: nn.Module, name: str, stream: str | None = None) -> Hookpoint:
    """Find the block ``name`` (either naming, optional ``unet.``/``diffusion_model.`` prefix) in ``model``.

    Deeper paths inside an attention block (``up_blocks.1.attentions.1.transformer_blocks.0``) resolve too, since
    attention internals share their names across layouts. Unknown names raise :class:`HookpointError` listing the
    valid ones. On a DiT ``stream`` (or an ``:image``/``:text`` suffix) picks the token stream.
    """
    unet = unwrap_unet(model)
    return layout_for(unet).resolve(unet, name, stream)


def _resolve_unet(unet: nn.Module, name: str, stream: str | None) -> Hookpoint:
    if stream is not None or ":" in name:
        raise HookpointError(f"'{name}': token streams exist only on DiT blocks; a UNet block has one output")
    layout = layout_of(unet)
    wanted = expand_alias(strip_prefix(name))
    nmap = name_map(unet)
    to_ldm, to_diffusers = nmap.diffusers_to_ldm, nmap.ldm_to_diffusers
    m_d, m_l = _DIFFUSERS_BLOCK.match(wanted), _LDM_BLOCK.match(wanted)
    block, rest = None, None
    if m_d and m_d.group(1) in to_ldm:
        block, rest = m_d.group(1), m_d.group(2)
    elif m_l and m_l.group(1) in to_diffusers:
        block, rest = to_diffusers[m_l.group(1)], m_l.group(2)
    if block is not None:
        path = block if layout == "diffusers" else to_ldm[block]
        if rest:
            if _kind(block) != "attention" and layout == "ldm":
                raise HookpointError(f"'{name}': only attention blocks can be hooked below block level across "
                                     f"namings; hook '{block}' or use the model's own names")
            path = f"{path}.{rest}"
        module = _get(unet, path)
        if module is not None:
            return Hookpoint(block if not rest else f"{block}.{rest}",
                             to_ldm[block] if not rest else f"{to_ldm[block]}.{rest}",
                             path, module, output_channels(module), _kind(block))
    valid = [p.diffusers_name for p in list_hookpoints(unet) if p.kind == "attention"]
    hint = ""
    if m_d or m_l:
        hint = (" The name has the right form but this model has no such block — is it a hookpoint of another "
                "architecture (e.g. an SDXL name on an SD1.5 model)?")
    read_as = f" (read as '{wanted}')" if wanted != name.strip() else ""
    raise HookpointError(f"unknown hookpoint '{name}'{read_as}.{hint} Attention blocks of this model: "
                         f"{', '.join(valid)} (LDM names such as 'output_blocks.4.1' work too; "
                         f"`python -m lvo_core info` lists all)")

# ------------------------------------------------------------------------------------------- layout registry
class Layout:
    """How one family of models names, orders and outputs its hookable blocks, registered with
    :func:`register_layout` by the family module that knows the architecture: ``owns(model)`` (a bare module),
    ``hookpoints(model)`` in forward order, ``resolve(model, name, stream)`` (any spelling it knows, else a
    :class:`HookpointError` listing valid ones), ``forward_order(name)`` (a sort key), ``spellings(name)`` (every
    spelling without a model, None when the name is not this layout's: SAE folders and analyses are matched by
    these), ``stream_view(point, output, grid)`` (a DiT block's hooked token stream, its grid and a function putting
    edited tokens back)."""

    describe = "a block layout"  # for error messages: what the model has that this layout recognises
    point_layouts: tuple[str, ...] = ()  # the ``Hookpoint.layout`` values of the points it makes
    tail: tuple[str, ...] = ()  # modules that run after every block (never copied into a trainable copy)

    def owns(self, model: nn.Module) -> bool:
        raise NotImplementedError

    def hookpoints(self, model: nn.Module) -> list[Hookpoint]:
        raise NotImplementedError

    def resolve(self, model: nn.Module, name: str, stream: str | None) -> Hookpoint:
        raise NotImplementedError

    def forward_order(self, diffusers_name: str) -> tuple:
        raise NotImplementedError

    def spellings(self, name: str) -> list[str] | None:
        return None

    def stream_view(self, point: Hookpoint, output: Any, grid: Any) -> tuple[Tensor, tuple[int, int], Callable]:
        raise HookpointError(f"block '{point.diffusers_name}' has no token streams")


class _UNetLayout(Layout):
    """The UNet layout SD1.x/2.x and SDXL share, in diffusers' or LDM/ComfyUI naming."""

    describe = "a diffusers UNet (down_blocks/up_blocks), an LDM-layout UNet (input_blocks/output_blocks)"
    point_layouts = ("unet",)
    tail = ("conv_norm_out", "conv_act", "conv_out", "out")

    hookpoints, resolve, forward_order = (staticmethod(_unet_hookpoints), staticmethod(_resolve_unet),
                                          staticmethod(_forward_order))

    def owns(self, model: nn.Module) -> bool:
        return (hasattr(model, "down_blocks") and hasattr(model, "up_blocks")) or \
            (hasattr(model, "input_blocks") and hasattr(model, "output_blocks"))


UNET_LAYOUT = _UNetLayout()
_LAYOUTS: list[Layout] = []  # registered layouts, newest first; the UNet layout is always the last resort


def register_layout(layout: Layout) -> Layout:
    """Make ``layout`` known to every lookup (newest first, so a specific layout wins over a general one)."""
    if layout not in _LAYOUTS:
        _LAYOUTS.insert(0, layout)
    return layout


def unregister_layout(layout: Layout) -> None:
    if layout in _LAYOUTS:
        _LAYOUTS.remove(layout)


def layouts() -> list[Layout]:
    """Every known layout, most specific first."""
    return [*_LAYOUTS, UNET_LAYOUT]


def layout_for(model: nn.Module) -> Layout:
    """The layout of ``model`` (wrappers removed), or :class:`HookpointError` naming the layouts LVO knows."""
    model = unwrap_unet(model)
    for layout in layouts():
        if layout.owns(model):
            return layout
    known = [UNET_LAYOUT.describe, *(layout.describe for layout in _LAYOUTS)]
    raise HookpointError(f"{type(model).__name__} is neither {', '.join(known[:-1])} nor {known[-1]}; cannot hook it")


def check_sae_reads(sae_input_kind: str, hookpoint: Hookpoint) -> None:
    """Raise :class:`SAEMismatchError` when an SAE trained on a block's update meets a hookpoint read as its
    output (or the reverse): its features would be computed on the wrong signal without any other symptom."""
    if sae_input_kind != hookpoint.reads:
        raise SAEMismatchError(f"the SAE reads the block's {sae_input_kind} but block '{hookpoint.diffusers_name}' "
                               f"is read as its {hookpoint.reads}; build the backend with reads='{sae_input_kind}' "
                               f"(the CLI and nodes do this from the SAE)")


def check_sae_fits(sae_d_in: int, hookpoint: Hookpoint, model: nn.Module | None = None) -> None:
    """Raise :class:`SAEMismatchError` when an SAE's input width differs from the block's channels."""
    if sae_d_in == hookpoint.channels:
        return
    fits = ""
    if model is not None:
        same = [p.diffusers_name for p in list_hookpoints(model) if p.channels == sae_d_in]
        fits = (f" Blocks of this model with {sae_d_in} channels: {', '.join(same)}." if same
                else f" No block of this model has {sae_d_in} channels: the SAE was trained on another model.")
    raise SAEMismatchError(f"the SAE reads {sae_d_in} channels but block '{hookpoint.diffusers_name}' "
                           f"({hookpoint.ldm_name}) outputs {hookpoint.channels}.{fits}")

