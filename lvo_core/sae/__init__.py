"""Sparse autoencoders: the first stage, and the only one that knows nothing of diffusion models.

One in-memory type (:class:`SparseAutoencoder`: encode, decode, the error term, per-feature directions) and loaders
for every common layout — sparsify (SAeUron), SAELens, dictionary_learning, openai-style (sdxl-unbox) and our own
safetensors — each checked against the library that writes it (``tests/test_sae_parity.py``). Formats are told
apart without unpickling anything; pickled weights load with ``weights_only=True`` and convert to safetensors. Imports only the shared helpers and hookpoint naming.
"""

from .formats import (
                      convert_to_safetensors,
                      describe,
                      detect_format,
                      list_sae_hookpoints,
                      load_sae,
                      read_safetensors,
                      save_sae,
)
from .model import SparseAutoencoder

__all__ = ["SparseAutoencoder", "load_sae", "save_sae", "detect_format", "describe", "list_sae_hookpoints",
           "convert_to_safetensors", "read_safetensors"]
