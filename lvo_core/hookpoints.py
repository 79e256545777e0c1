"""Hookpoint names: resolve a block by its diffusers name (``up_blocks.1.attentions.1``) or its LDM/ComfyUI name
(``output_blocks.4.1``) on either kind of UNet, and list what can be hooked.

The correspondence between the two namings is not kept in a hand-written table. For an LDM-layout UNet it is read
off diffusers' own checkpoint converter (``convert_ldm_unet_checkpoint``), run on the model's parameter *names*
only. For a diffusers UNet we compute the inverse with the same index arithmetic the converter uses and check it by
running the converter on the result: every block must map back to itself, or we refuse to guess.

FLUX-shaped DiTs (diffusers' ``transformer_blocks.N`` / ``single_transformer_blocks.N``, ComfyUI's and BFL's
``double_blocks.N`` / ``single_blocks.N``) get their correspondence the same way, from diffusers'
``convert_flux_transformer_checkpoint_to_diffusers``: it is run on a probe whose every tensor is tagged with the
block its name belongs to, so each converted name says which original block it came from. A DiT block has two
token streams; a hookpoint reads the image stream unless asked for ``stream="text"`` (or a ``:text`` suffix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterable

import torch
from torch import Tensor, nn

from .errors import HookpointError, SAEMismatchError

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
    """``diffusers`` / ``ldm`` (UNets), ``flux`` (diffusers FLUX) or ``flux-ldm`` (ComfyUI/BFL FLUX)."""
    flux = flux_layout(unet)
    if flux is not None:
        return flux
    if hasattr(unet, "down_blocks") and hasattr(unet, "up_blocks"):
        return "diffusers"
    if hasattr(unet, "input_blocks") and hasattr(unet, "output_blocks"):
        return "ldm"
    raise HookpointError(f"{type(unet).__name__} is neither a diffusers UNet (down_blocks/up_blocks), an "
                         f"LDM-layout UNet (input_blocks/output_blocks) nor a FLUX transformer "
                         f"(transformer_blocks/single_transformer_blocks or double_blocks/single_blocks); cannot hook it")


def flux_layout(model: nn.Module) -> str | None:
    """``flux`` for a diffusers FluxTransformer2DModel, ``flux-ldm`` for ComfyUI's Flux, else None."""
    if hasattr(model, "transformer_blocks") and hasattr(model, "single_transformer_blocks"):
        return "flux"
    if hasattr(model, "double_blocks") and hasattr(model, "single_blocks"):
        return "flux-ldm"
    return None


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
    flux = _flux_name(base)
    if flux is not None:
        block, stream = flux
        index = int(block.rsplit(".", 1)[1])
        counts = (index + 1, 1) if block.split(".")[0] in ("transformer_blocks", "double_blocks") else (1, index + 1)
        pairs = _flux_block_map(*counts)
        other = pairs.get(block) or {v: k for k, v in pairs.items()}.get(block)
        suffix = ":text" if stream == "text" else ""
        return list(dict.fromkeys([block + suffix, other + suffix]))
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
    layout: str = "unet"  # whose output container the block returns: "unet", "flux" (diffusers), "flux-ldm"
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
    if flux_layout(unet) is not None:
        return _flux_hookpoints(unet)
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
    valid ones. On a FLUX transformer ``stream`` (or a ``:image``/``:text`` suffix) picks the token stream.
    """
    unet = unwrap_unet(model)
    if flux_layout(unet) is not None:
        return _resolve_flux(unet, name, stream)
    if stream is not None or ":" in name:
        raise HookpointError(f"'{name}': token streams exist only on DiT (FLUX) blocks; a UNet block has one output")
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

# ------------------------------------------------------------------------------------------- FLUX-shaped DiTs
STREAMS = ("image", "text")
_FLUX_BLOCK = re.compile(r"^((?:transformer_blocks|single_transformer_blocks|double_blocks|single_blocks)\.\d+)"
                         r"(?::(\w+))?$")
_FLUX_PROBE_LEN = 3 * 3072 + 4 * 3072  # the converter splits single-block weights by FLUX.1's fixed sizes


class _TaggedProbe(dict):
    """A stand-in checkpoint for diffusers' FLUX converter: any name it pops yields a tensor tagged with the
    block that name belongs to (views of one element, so the probe costs nothing), and the names are recorded."""

    def __init__(self, num_double: int, num_single: int, guidance: bool):
        super().__init__({f"double_blocks.{i}.": None for i in range(num_double)})
        self.update({f"single_blocks.{i}.": None for i in range(num_single)})
        if guidance:
            self["guidance_in."] = None
        self.blocks: list[str] = []
        self.popped: list[str] = []

    def pop(self, key, *default):
        self.popped.append(key)
        m = re.match(r"^((?:double_blocks|single_blocks)\.\d+)\.", key)
        tag = -1
        if m:
            if m.group(1) not in self.blocks:
                self.blocks.append(m.group(1))
            tag = self.blocks.index(m.group(1))
        return torch.full((1,), tag, dtype=torch.int32).expand(_FLUX_PROBE_LEN)


@lru_cache(maxsize=16)
def _flux_conversion(num_double: int, num_single: int, guidance: bool = False) -> tuple[dict[str, str], tuple]:
    """({diffusers block: ComfyUI/BFL block}, converted parameter names) as diffusers' converter maps them."""
    from diffusers.loaders.single_file_utils import (
        convert_flux_transformer_checkpoint_to_diffusers,
    )

    probe = _TaggedProbe(num_double, num_single, guidance)
    converted = convert_flux_transformer_checkpoint_to_diffusers(probe)
    pairs: dict[str, str] = {}
    for key, value in converted.items():
        tag = int(value.reshape(-1)[0])
        block = re.match(r"^((?:transformer_blocks|single_transformer_blocks)\.\d+)\.", key)
        if tag >= 0 and block and pairs.setdefault(block.group(1), probe.blocks[tag]) != probe.blocks[tag]:
            raise HookpointError(f"diffusers' FLUX converter maps {block.group(1)} from two blocks")
    return pairs, tuple(converted)


def _flux_block_map(num_double: int, num_single: int, guidance: bool = False) -> dict[str, str]:
    return _flux_conversion(num_double, num_single, guidance)[0]


def _flux_counts(model: nn.Module) -> tuple[int, int]:
    if flux_layout(model) == "flux":
        return len(model.transformer_blocks), len(model.single_transformer_blocks)
    return len(model.double_blocks), len(model.single_blocks)


def flux_name_map(model: nn.Module) -> dict[str, str]:
    """{diffusers block: ComfyUI block} for a FLUX transformer of either layout. On a diffusers model the converted
    parameter names are checked against the model's own, so a DiT that merely looks like FLUX is refused."""
    layout = flux_layout(model)
    double, single = _flux_counts(model)
    guidance = any(k.startswith(("time_text_embed.guidance_embedder.", "guidance_in.")) for k, _ in
                   model.named_parameters())
    pairs, converted = _flux_conversion(double, single, guidance)
    if layout == "flux":
        own = {k for k, _ in model.named_parameters()}
        missing = sorted(k for k in converted if re.match(r"^(single_)?transformer_blocks\.", k) and k not in own)
        if missing:
            raise HookpointError(f"{type(model).__name__} has FLUX's block names but not its parameters (e.g. "
                                 f"{missing[0]}); cannot map its blocks to ComfyUI names")
    return pairs


def flux_inner_dim(model: nn.Module) -> int:
    """Width of both token streams (3072 for FLUX.1)."""
    for attr in ("inner_dim", "hidden_size"):
        value = getattr(model, attr, None)
        if isinstance(value, int):
            return value
    raise HookpointError(f"cannot tell the width of {type(model).__name__}'s token streams")


def _flux_name(name: str) -> tuple[str, str | None] | None:
    m = _FLUX_BLOCK.match(name)
    return (m.group(1), m.group(2)) if m else None


def _flux_point(model: nn.Module, block: str, stream: str, pairs: dict[str, str]) -> Hookpoint:
    layout = flux_layout(model)
    other = pairs[block]
    path = block if layout == "flux" else other
    suffix = ":text" if stream == "text" else ""
    kind = "double" if block.startswith("transformer_blocks") else "single"
    return Hookpoint(block + suffix, other + suffix, path, model.get_submodule(path), flux_inner_dim(model), kind,
                     stream, layout)


def _flux_hookpoints(model: nn.Module) -> list[Hookpoint]:
    pairs = flux_name_map(model)
    points = [_flux_point(model, block, "image", pairs) for block in pairs]
    points.sort(key=lambda p: flux_forward_order(p.diffusers_name))
    return points


def flux_forward_order(diffusers_name: str) -> tuple[int, int]:
    """Sort key following the forward pass: double-stream blocks, then single-stream blocks."""
    block = diffusers_name.split(":")[0]
    return (0 if block.startswith("transformer_blocks") else 1, int(block.rsplit(".", 1)[1]))


def _resolve_flux(model: nn.Module, name: str, stream: str | None) -> Hookpoint:
    wanted = strip_prefix(name)
    parsed = _flux_name(wanted)
    pairs = flux_name_map(model)
    if parsed is not None:
        block, suffix = parsed
        if suffix is not None and stream is not None and suffix != stream:
            raise HookpointError(f"'{name}' names the {suffix} stream but stream='{stream}' was asked for")
        chosen = stream or suffix or "image"
        if chosen not in STREAMS:
            raise HookpointError(f"unknown token stream '{chosen}' in '{name}': a FLUX block has the streams "
                                 f"{', '.join(STREAMS)}")
        if block not in pairs:
            block = {v: k for k, v in pairs.items()}.get(block, block)
        if block in pairs:
            return _flux_point(model, block, chosen, pairs)
    double, single = _flux_counts(model)
    hint = (" FLUX hooks whole blocks; the sdxl-unbox FLUX SAE reads 'transformer_blocks.18'."
            if parsed is None else f" This model has {double} double-stream and {single} single-stream blocks.")
    raise HookpointError(f"unknown hookpoint '{name}' on a FLUX transformer.{hint} Valid: transformer_blocks.0…"
                         f"{double - 1} (ComfyUI: double_blocks.N), single_transformer_blocks.0…{single - 1} "
                         f"(single_blocks.N), optionally with ':text' for the text stream")


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


def ldm_state_dict(unet: nn.Module, prefix: str = "model.diffusion_model.") -> dict[str, Tensor]:
    """A diffusers UNet's weights under LDM names (what single-file SD checkpoints and ComfyUI use); diffusers'
    own converter maps it back exactly (tested), so ``from_single_file`` loads the result."""
    unet = unwrap_unet(unet)
    if layout_of(unet) != "diffusers":
        raise HookpointError("ldm_state_dict needs a diffusers UNet")
    lpb = int(unet.config.layers_per_block)
    levels = {i for i, b in enumerate(unet.up_blocks) if getattr(b, "attentions", None)}
    out = {}
    for key, value in unet.state_dict().items():
        ldm = _diffusers_key_to_ldm(key, lpb, levels)
        if ldm is None:
            raise HookpointError(f"no LDM name for parameter '{key}'")
        out[prefix + ldm] = value.contiguous()
    return out
