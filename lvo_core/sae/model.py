"""One in-memory sparse autoencoder that every checkpoint format loads into.

All formats reduce to the same algebra once their quirks are folded in at load time:

    x'   = normalize(x) − pre_bias                      (pre_bias is b_dec for sparsify, 0 for some SAELens SAEs)
    h    = x' · W_encᵀ + b_enc                          (the *pre-activation*, one value per latent)
    z    = nonlinearity(h)                              (TopK, group-max, ReLU, JumpReLU or gated ReLU)
    x̂    = denormalize(z · W_dec + b_dec)

Weights are stored row-major per latent (``W_enc`` and ``W_dec`` are both ``[d_sae, d_in]``) so that the rows of a
handful of features can be sliced without touching the rest — LVO only ever needs the encoder rows of the units it
optimizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import SAEFormatError, UnitError

ACTIVATIONS = ("topk", "groupmax", "relu", "jumprelu", "gated")
INPUT_NORMS = ("none", "standardize", "rescale")


@dataclass
class SparseAutoencoder:
    """A sparse autoencoder over one block's channels (``d_in``) with ``d_sae`` latents.

    ``activation`` selects the nonlinearity: ``topk`` keeps the k largest ReLU'd pre-activations per token (sparsify,
    SAeUron, openai-style, SAELens topk), ``groupmax`` keeps the maximum of each of k contiguous groups, ``relu`` is a
    plain ReLU (SAELens standard, dictionary_learning AutoEncoder), ``jumprelu`` zeroes values at or below a
    per-latent ``threshold``, and ``gated`` multiplies a Heaviside gate on ``h`` by a ReLU magnitude path with its
    own weights ``W_mag``/``b_mag``. ``input_norm`` is ``standardize`` for SAEs trained on per-token standardized
    inputs (sparsify's ``input_unit_norm``), ``rescale`` for SAELens' ``constant_norm_rescale``.
    """

    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    pre_bias: Tensor
    activation: str = "topk"
    k: int | None = None
    threshold: Tensor | None = None
    W_mag: Tensor | None = None
    b_mag: Tensor | None = None
    input_norm: str = "none"
    hookpoint: str | None = None
    source_format: str = "memory"
    input_kind: str = "output"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ shape and identity
    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def num_latents(self) -> int:
        return self.d_sae

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    def validate(self) -> None:
        """Check that every tensor agrees with ``d_in``/``d_sae`` and that the settings are known."""
        if self.W_enc.ndim != 2:
            raise SAEFormatError(f"encoder weight must be 2-D [d_sae, d_in], got shape {tuple(self.W_enc.shape)}")
        d_sae, d_in = self.W_enc.shape
        expect = {
            "b_enc": (d_sae,),
            "W_dec": (d_sae, d_in),
            "b_dec": (d_in,),
            "pre_bias": (d_in,),
            "threshold": (d_sae,),
            "W_mag": (d_sae, d_in),
            "b_mag": (d_sae,),
        }
        for name, shape in expect.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise SAEFormatError(
                    f"SAE tensor '{name}' has shape {tuple(value.shape)} but d_sae={d_sae}, d_in={d_in} "
                    f"require {shape}; the checkpoint's tensors disagree with each other or with its config"
                )
        if self.activation not in ACTIVATIONS:
            raise SAEFormatError(f"unknown SAE activation '{self.activation}'; known: {', '.join(ACTIVATIONS)}")
        if self.input_norm not in INPUT_NORMS:
            raise SAEFormatError(f"unknown SAE input normalisation '{self.input_norm}'; known: {INPUT_NORMS}")
        if self.activation in ("topk", "groupmax"):
            if not isinstance(self.k, int) or not 0 < self.k <= d_sae:
                raise SAEFormatError(f"a {self.activation} SAE needs 0 < k <= d_sae={d_sae}, got k={self.k}")
            if self.activation == "groupmax" and d_sae % self.k:
                raise SAEFormatError(f"groupmax needs d_sae={d_sae} divisible by k={self.k}")
        if self.activation == "jumprelu" and self.threshold is None:
            raise SAEFormatError("a jumprelu SAE needs a per-latent 'threshold' tensor")
        if self.activation == "gated" and (self.W_mag is None or self.b_mag is None):
            raise SAEFormatError("a gated SAE needs magnitude weights 'W_mag' and 'b_mag'")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                raise SAEFormatError(f"SAE tensor '{f.name}' contains NaN or inf values; the checkpoint is corrupt")

    def check_features(self, features: Sequence[int]) -> list[int]:
        """Return ``features`` as a list of ints, raising a clear error for an empty, out-of-range or repeated list."""
        feats = [int(f) for f in features]
        if not feats:
            raise UnitError("no SAE features given; pass at least one feature index")
        bad = [f for f in feats if not 0 <= f < self.d_sae]
        if bad:
            raise UnitError(f"SAE feature index {bad[0]} is out of range: this SAE has {self.d_sae} latents "
                            f"(valid indices 0..{self.d_sae - 1})")
        if len(set(feats)) != len(feats):
            dup = next(f for f in feats if feats.count(f) > 1)
            raise UnitError(f"SAE feature {dup} is listed twice; give each feature once")
        return feats

    # ------------------------------------------------------------------ moves
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "SparseAutoencoder":
        """A copy on ``device`` with floating tensors cast to ``dtype`` (None keeps each)."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            moved[f.name] = value
        return replace(self, **moved)

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor field by name (for saving and hashing)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Tensor)}

    # ------------------------------------------------------------------ math
    def normalize_input(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """Apply the input normalisation the SAE was trained with; returns the stats needed to undo it.

        ``standardize`` divides by ``std + 1e-5`` but the stats hold ``std`` alone: every library that standardizes
        (SAELens ``layer_norm``, SAeUron ``input_unit_norm``, OpenAI's ``LN``) multiplies back by the bare ``std``,
        so the round trip is deliberately not an exact inverse (it matters for small-scale activations).
        """
        if self.input_norm == "standardize":
            mean = x.mean(dim=-1, keepdim=True)
            centered = x - mean
            std = centered.std(dim=-1, keepdim=True)
            return centered / (std + 1e-5), (mean, std)
        if self.input_norm == "rescale":
            scale = x.norm(dim=-1, keepdim=True) / (self.d_in ** 0.5)
            return x / scale, (torch.zeros_like(scale), scale)
        return x, None

    @staticmethod
    def denormalize_output(x_hat: Tensor, stats: tuple[Tensor, Tensor] | None) -> Tensor:
        if stats is None:
            return x_hat
        shift, scale = stats
        return x_hat * scale + shift

    def pre_acts(self, x: Tensor, features: Sequence[int] | Tensor | None = None) -> Tensor:
        """Pre-activations ``h`` (before any nonlinearity) of all latents, or only of ``features``.

        For gated SAEs this is the magnitude path, whose ReLU is the value a feature takes when its gate is open.
        Slicing rows first keeps the cost proportional to the number of requested features.
        """
        x, (weight, bias) = self._encoder_input(x), self._value_encoder()
        if features is not None:
            idx = torch.as_tensor(features, device=weight.device, dtype=torch.long)
            weight, bias = weight.index_select(0, idx), bias.index_select(0, idx)
        return torch.nn.functional.linear(x, weight, bias)

    def row_pre_acts(self, x: Tensor, features: Sequence[int]) -> Tensor:
        """``[B, N]`` pre-activations of one feature per batch row (``x``: ``[B, N, d_in]``), as an optimized
        batch asks for them: row ``b`` reads only its own feature's encoder row."""
        x, (weight, bias) = self._encoder_input(x), self._value_encoder()
        rows = torch.tensor(list(features), device=weight.device)
        return torch.einsum("bnc,bc->bn", x, weight.index_select(0, rows)) + bias.index_select(0, rows)[:, None]

    def _encoder_input(self, x: Tensor) -> Tensor:
        """What the encoder multiplies: the input in the SAE's dtype, normalised, minus the input bias."""
        x, _ = self.normalize_input(x.to(self.dtype))
        return x - self.pre_bias

    def _value_encoder(self) -> tuple[Tensor, Tensor]:
        """Weight and bias of a latent's value: the magnitude path for gated SAEs (the gate only switches)."""
        return (self.W_mag, self.b_mag) if self.activation == "gated" else (self.W_enc, self.b_enc)

    def dense_acts(self, x: Tensor, features: Sequence[int] | Tensor | None = None) -> Tensor:
        """ReLU of the pre-activations: the paper's unit activation for SAE features (no TopK, no gating)."""
        return torch.relu(self.pre_acts(x, features))

    def encode(self, x: Tensor) -> Tensor:
        """The sparse code ``z`` (``[..., d_sae]``) exactly as the source format computes it."""
        h = self.pre_acts(x)
        if self.activation == "relu":
            return torch.relu(h)
        if self.activation == "jumprelu":
            return torch.relu(h) * (h > self.threshold)
        if self.activation == "gated":
            gate = torch.nn.functional.linear(self._encoder_input(x), self.W_enc, self.b_enc) > 0
            return torch.relu(h) * gate
        if self.activation == "topk":
            a = torch.relu(h)
            top = a.topk(self.k, dim=-1, sorted=False)
            return torch.zeros_like(a).scatter_(-1, top.indices, top.values)
        # groupmax: one winner per contiguous group of d_sae / k latents
        a = torch.relu(h)
        groups = a.unflatten(-1, (self.k, self.d_sae // self.k))
        best = groups.max(dim=-1, keepdim=True)
        return torch.zeros_like(groups).scatter_(-1, best.indices, best.values).flatten(-2)

    def decode(self, z: Tensor, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Reconstruction from a code; ``stats`` from :meth:`normalize_input` undoes input normalisation."""
        return self.denormalize_output(z.to(self.dtype) @ self.W_dec + self.b_dec, stats)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Encode then decode, undoing input normalisation with this input's own statistics."""
        _, stats = self.normalize_input(x.to(self.dtype))
        return self.decode(self.encode(x), stats)

    def direction(self, feature: int, normalize: bool = True) -> Tensor:
        """The decoder direction of ``feature`` (a unit-norm copy by default: SAELens decoders are not unit-norm)."""
        (feature,) = self.check_features([feature])
        row = self.W_dec[feature]
        return row / row.norm().clamp_min(1e-12) if normalize else row.clone()

    def decoder_norms(self) -> Tensor:
        return self.W_dec.norm(dim=-1)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description, for the CLI's ``info`` and for result files."""
        norms = self.decoder_norms().float()
        return {
            "format": self.source_format,
            "hookpoint": self.hookpoint,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "k": self.k,
            "activation": self.activation,
            "input_norm": self.input_norm,
            "input_kind": self.input_kind,
            "dtype": str(self.dtype).replace("torch.", ""),
            "decoder_norm_min": round(float(norms.min()), 6),
            "decoder_norm_max": round(float(norms.max()), 6),
        }
