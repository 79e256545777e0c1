"""Forward hooks on one UNet block: capture its output, edit it, or stop the forward right after it.

Every hook is a context manager whose exit removes it, also on exceptions and interrupts — a ComfyUI model lives
on between prompts and must never keep a stray hook. Block outputs are handled as tokens ``[B, H·W, C]`` with
``(H, W)`` kept alongside (no square-image assumption), whatever the block returns: a tensor (LDM), a tuple
(diffusers blocks called with ``return_dict=False``) or an output object with ``.sample``.

DiT blocks already output tokens, in two streams: :func:`block_view` asks the block's layout (registered by its
model family) to pick the hookpoint's stream out of the block's container and put edits back in it. The image
tokens' grid — e.g. FLUX's packed ``(H/2, W/2)``, needed for heatmaps and to split a single block's sequence — is
read from the model's own inputs by a pre-hook on the model (:func:`token_grid`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import LVOError
from ..hookpoints import Hookpoint, check_sae_fits, layouts, resolve_hookpoint, unwrap_unet
from ..sae.model import SparseAutoencoder

RowSelector = Callable[[int], Any]


# ---------------------------------------------------------------------------------------------- tensor plumbing
def split_output(output: Any) -> tuple[Tensor, Callable[[Tensor], Any]]:
    """The block's main tensor and a function that puts a replacement back in the same container."""
    if isinstance(output, Tensor):
        return output, lambda new: new
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0], lambda new: type(output)([new, *output[1:]])
    sample = getattr(output, "sample", None)
    if isinstance(sample, Tensor):
        def rewrap(new: Tensor) -> Any:
            output.sample = new
            return output
        return sample, rewrap
    raise TypeError(f"cannot read a tensor from a block output of type {type(output).__name__}")


def block_value(point: Hookpoint, inputs: Any, output: Any) -> tuple[Tensor, Callable[[Tensor], Any]]:
    """What the hook reads at the block — its output, or its update ``output − input`` — and a function that turns
    an edited value back into the block's output (for an update: ``input + new``)."""
    x, rewrap = split_output(output)
    if point.reads == "output":
        return x, rewrap
    first = inputs[0] if isinstance(inputs, (tuple, list)) and inputs else None
    if not isinstance(first, Tensor) or first.shape != x.shape:
        raise LVOError(f"block '{point.diffusers_name}' is read as its update (output − input), but its input "
                       f"{'is missing' if first is None else f'has shape {tuple(first.shape)}'} and its output "
                       f"has shape {tuple(x.shape)}; only blocks whose output has the input's shape have an update")
    return x - first, lambda new: rewrap(first + new)


def to_tokens(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """``[B, C, H, W]`` → ``[B, H·W, C]`` and ``(H, W)``."""
    if x.ndim != 4:
        raise LVOError(f"expected a [B, C, H, W] block output, got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c), (h, w)


def from_tokens(tokens: Tensor, hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`to_tokens`."""
    b, n, c = tokens.shape
    h, w = hw
    return tokens.reshape(b, h, w, c).permute(0, 3, 1, 2)


@dataclass(frozen=True)
class TokenGrid:
    """The image tokens' grid ``hw`` (packed latent rows × columns) and the text length of one DiT call."""

    hw: tuple[int, int]
    text_len: int = 0

    @property
    def image_len(self) -> int:
        return self.hw[0] * self.hw[1]


def grid_from_call(args: Sequence[Any], kwargs: dict[str, Any]) -> TokenGrid | None:
    """The token grid of a FLUX forward call: from ``img_ids`` (diffusers: rows in column 1, columns in column 2)
    or from the spatial latent ``x`` ``[B, C, H, W]`` (ComfyUI's Flux, which pads to its 2×2 patches)."""
    ids = kwargs.get("img_ids")
    if isinstance(ids, Tensor):
        ids = ids[0] if ids.ndim == 3 else ids
        text = kwargs.get("encoder_hidden_states")
        return TokenGrid((int(ids[:, 1].max()) + 1, int(ids[:, 2].max()) + 1),
                         int(text.shape[1]) if isinstance(text, Tensor) else 0)
    x = args[0] if args else kwargs.get("x")
    if isinstance(x, Tensor) and x.ndim == 4:
        context = args[2] if len(args) > 2 else kwargs.get("context")
        return TokenGrid(((x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2),
                         int(context.shape[1]) if isinstance(context, Tensor) else 0)
    return None


def block_view(point: Hookpoint, output: Any, grid: TokenGrid | None = None, inputs: Any = ()) \
        -> tuple[Tensor, tuple[int, int], Callable[[Tensor], Any]]:
    """The hooked stream of a block's output (or, for a UNet block read as its update, output − input) as tokens
    ``[B, N, C]``, its grid, and a function that puts edited tokens back into the same container (UNet blocks:
    ``[B, C, H, W]`` ↔ tokens; DiT blocks: their layout's :meth:`~lvo_core.hookpoints.Layout.stream_view`)."""
    if point.stream is None:
        x, rewrap = block_value(point, inputs, output)
        tokens, hw = to_tokens(x)
        return tokens, hw, lambda new: rewrap(from_tokens(new, hw).contiguous(memory_format=torch.contiguous_format))
    if point.reads != "output":
        raise LVOError(f"block '{point.diffusers_name}' is a DiT block: it is read as its output stream only "
                       f"(update reading is for UNet blocks, as sdxl-unbox's SDXL SAEs use it)")
    layout = next((layout for layout in layouts() if point.layout in layout.point_layouts), None)
    if layout is None:
        raise LVOError(f"no registered layout makes hookpoints of layout '{point.layout}'")
    return layout.stream_view(point, output, grid)


@contextmanager
def token_grid(model: nn.Module, point: Hookpoint) -> Iterator[list[TokenGrid | None]]:
    """For a DiT hookpoint, record each forward call's :class:`TokenGrid` (in ``cell[0]``) by a pre-hook on the
    model, removed on exit; for a UNet hookpoint nothing is hooked."""
    cell: list[TokenGrid | None] = [None]
    if point.stream is None:
        yield cell
        return

    def pre_hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        cell[0] = grid_from_call(args, kwargs)

    handle = unwrap_unet(model).register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield cell
    finally:
        handle.remove()


def cfg_rows(which: str) -> RowSelector | None:
    """Row selector for a diffusers CFG batch laid out ``[uncond; cond]``: ``cond``, ``uncond`` or ``all``."""
    if which == "all":
        return None
    if which == "cond":
        return lambda batch: slice(batch // 2, batch)
    if which == "uncond":
        return lambda batch: slice(0, batch // 2)
    raise LVOError(f"rows must be 'all', 'cond' or 'uncond', got '{which}'")


@contextmanager
def forward_hook(module: nn.Module, fn: Callable[[nn.Module, Any, Any], Any]) -> Iterator[None]:
    """Register ``fn`` as a forward hook for the duration of the block; always removed."""
    handle = module.register_forward_hook(fn)
    try:
        yield
    finally:
        handle.remove()


def _resolve(model: nn.Module, hookpoint: str | Hookpoint) -> Hookpoint:
    return hookpoint if isinstance(hookpoint, Hookpoint) else resolve_hookpoint(model, hookpoint)


# ---------------------------------------------------------------------------------------------- capture
@dataclass
class Capture:
    """What a :func:`capture` hook recorded: one entry per forward call of the block.

    ``tokens`` holds raw block outputs as ``[B, H·W, C]``; ``codes`` holds SAE values ``[B, H·W, U]`` when an SAE
    was given (dense ReLU pre-activations of ``features`` by default, the sparse code with ``sparse=True``).
    """

    hookpoint: Hookpoint
    hw: tuple[int, int] | None = None
    tokens: list[Tensor] = field(default_factory=list)
    codes: list[Tensor] = field(default_factory=list)

    def last(self) -> Tensor:
        return (self.codes or self.tokens)[-1]

    def clear(self) -> None:
        self.tokens.clear()
        self.codes.clear()


@contextmanager
def capture(model: nn.Module, hookpoint: str | Hookpoint, *, sae: SparseAutoencoder | None = None,
            features: Sequence[int] | None = None, sparse: bool = False, rows: str | RowSelector | None = None,
            keep_tokens: bool = True, detach: bool = True) -> Iterator[Capture]:
    """Record the block's output on every forward call while the context is open.

    ``rows`` keeps part of the batch (``"cond"`` for the conditional half of a ``[uncond; cond]`` CFG batch, or a
    callable ``batch_size -> index``). With ``detach=False`` the records stay in the autograd graph.
    """
    point = _resolve(model, hookpoint)
    if sae is not None:
        check_sae_fits(sae.d_in, point, model)
        point = point.reading(sae.input_kind)
        features = sae.check_features(features) if features is not None else None
    select = cfg_rows(rows) if isinstance(rows, str) else rows
    record = Capture(point)

    def hook(_module: nn.Module, inputs: Any, output: Any) -> None:
        tokens, record.hw, _ = block_view(point, output, grid[0], inputs)
        if select is not None:
            tokens = tokens[select(tokens.shape[0])]
        if detach:
            tokens = tokens.detach()
        if keep_tokens:
            record.tokens.append(tokens)
        if sae is not None:
            values = sae.encode(tokens) if sparse else sae.dense_acts(tokens, features)
            if sparse and features is not None:
                values = values[..., features]
            record.codes.append(values)

    with token_grid(model, point) as grid, forward_hook(point.module, hook):
        yield record


# ---------------------------------------------------------------------------------------------- edits
class TokenEdit:
    """An edit of a block's tokens ``[B, H·W, C]``; ``enabled`` lets a sampling loop switch it per step."""

    enabled: bool = True

    def __call__(self, tokens: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def _per_row(value: float | Tensor, like: Tensor) -> Tensor:
    """A scalar or per-row strength as ``[B, 1, 1]`` (broadcast over tokens and channels)."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)


@dataclass
class AddDirection(TokenEdit):
    """Add ``strength × direction`` to every token (steering along an SAE decoder direction)."""

    direction: Tensor
    strength: float | Tensor = 1.0
    enabled: bool = True

    def __call__(self, tokens: Tensor) -> Tensor:
        d = self.direction.to(tokens.dtype).to(tokens.device)
        d = d.reshape(-1, 1, d.shape[-1]) if d.ndim == 2 else d
        return tokens + _per_row(self.strength, tokens) * d


@dataclass
class AddChannel(TokenEdit):
    """Add a constant to one raw channel at every position (the raw-layer steering of the reference)."""

    channel: int
    value: float | Tensor = 1.0
    enabled: bool = True

    def __call__(self, tokens: Tensor) -> Tensor:
        out = tokens.clone()
        out[..., self.channel] = out[..., self.channel] + _per_row(self.value, tokens)[..., 0]
        return out


@dataclass
class EditFeature(TokenEdit):
    """Scale or clamp SAE features' codes and write the change back with the SAE's error preserved:
    ``x + (x̂(edited z) − x̂(z))``, so a no-op edit returns ``x`` exactly and the reconstruction error is untouched.

    ``feature`` is one index for all rows or one per row; ``scale`` a scalar or one per row.
    """

    sae: SparseAutoencoder
    feature: int | Sequence[int]
    scale: float | Tensor = 1.0
    clamp: float | None = None
    enabled: bool = True

    def __call__(self, tokens: Tensor) -> Tensor:
        x = tokens.to(self.sae.dtype)
        _, stats = self.sae.normalize_input(x)
        z = self.sae.encode(x)
        feats = [self.feature] * len(z) if isinstance(self.feature, int) else list(self.feature)
        index = torch.tensor(feats, device=z.device).reshape(-1, 1, 1).expand(-1, z.shape[1], 1)
        current = z.gather(-1, index)
        target = (torch.full_like(current, float(self.clamp)) if self.clamp is not None
                  else current * _per_row(self.scale, z))
        edited = z.scatter(-1, index, target)
        delta = self.sae.decode(edited, stats) - self.sae.decode(z, stats)
        return (x + delta).to(tokens.dtype)


@dataclass
class ReplaceWithDirection(TokenEdit):
    """Replace every token by a direction (``[C]`` or per row ``[B, C]``) scaled to the tokens' mean norm: the
    "feature icon" of a unit — what the rest of the network makes of that direction alone."""

    direction: Tensor
    enabled: bool = True

    def __call__(self, tokens: Tensor) -> Tensor:
        d = self.direction.to(tokens)
        d = d.expand(tokens.shape[0], -1) if d.ndim == 1 else d
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        norm = tokens.norm(dim=-1).mean(dim=1)
        return (d * norm[:, None])[:, None, :].expand_as(tokens).contiguous()


@contextmanager
def edit(model: nn.Module, hookpoint: str | Hookpoint, edit_fn: TokenEdit | Callable[[Tensor], Tensor],
         rows: str | RowSelector | None = None) -> Iterator[Hookpoint]:
    """Replace the block's output by ``edit_fn(tokens)`` while the context is open (only ``rows`` if given)."""
    point = _resolve(model, hookpoint)
    sae = getattr(edit_fn, "sae", None)
    if sae is not None:
        check_sae_fits(sae.d_in, point, model)
        point = point.reading(sae.input_kind)
    select = cfg_rows(rows) if isinstance(rows, str) else rows

    def hook(_module: nn.Module, inputs: Any, output: Any) -> Any:
        if not getattr(edit_fn, "enabled", True):
            return None
        tokens, _, rewrap = block_view(point, output, grid[0], inputs)
        if select is None:
            new = edit_fn(tokens)
        else:
            index = select(tokens.shape[0])
            new = tokens.clone()
            new[index] = edit_fn(tokens[index])
        return rewrap(new)

    with token_grid(model, point) as grid, forward_hook(point.module, hook):
        yield point


# ---------------------------------------------------------------------------------------------- early exit
class StopForward(Exception):
    """Raised by :func:`run_to_block`'s hook to end the forward pass right after the hooked block."""

    def __init__(self, output: Any, inputs: Any = ()):
        super().__init__("forward stopped after the hooked block")
        self.output, self.inputs = output, inputs


def _run_until(model: nn.Module, point: Hookpoint, args: tuple, kwargs: dict,
               call: Callable[..., Any] | None) -> tuple[Any, Any]:
    """Run the forward and return the block's raw ``(inputs, output)``, stopping right after the block."""

    def hook(_module: nn.Module, inputs: Any, output: Any) -> None:
        raise StopForward(output, inputs)

    try:
        with forward_hook(point.module, hook):
            if call is None:
                model(*args, **kwargs)
            else:
                call(model, *args, **kwargs)
    except StopForward as stop:
        return stop.inputs, stop.output
    raise RuntimeError(f"the forward pass never reached block '{point.diffusers_name}'")


def run_to_block(model: nn.Module, hookpoint: str | Hookpoint, *args: Any,
                 call: Callable[..., Any] | None = None, **kwargs: Any) -> Tensor:
    """Call ``model(*args, **kwargs)`` — or ``call(model, *args, **kwargs)`` — but stop right after the block and
    return what the hookpoint reads there (its output, or its update) ``[B, C, H, W]``.

    Nothing after the block is computed; the returned tensor stays in the autograd graph, so gradients flow from
    it back to the model's inputs.
    """
    point = _resolve(model, hookpoint)
    inputs, output = _run_until(model, point, args, kwargs, call)
    return block_value(point, inputs, output)[0]


def run_to_block_tokens(model: nn.Module, hookpoint: str | Hookpoint, *args: Any,
                        call: Callable[..., Any] | None = None, grid: TokenGrid | None = None,
                        **kwargs: Any) -> tuple[Tensor, tuple[int, int]]:
    """:func:`run_to_block` for any block, UNet or DiT: the hooked stream as tokens ``[B, N, C]`` and its grid.
    ``grid`` (a DiT call's token grid) is read from the model's inputs when not given."""
    point = _resolve(model, hookpoint)
    if grid is None:
        with token_grid(model, point) as cell:
            inputs, output = _run_until(model, point, args, kwargs, call)
        grid = cell[0]
    else:
        inputs, output = _run_until(model, point, args, kwargs, call)
    tokens, hw, _ = block_view(point, output, grid, inputs)
    return tokens, hw


def hook_count(model: nn.Module) -> int:
    """Number of forward (pre-)hooks left anywhere in ``model``; 0 after every context of this module closed."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
