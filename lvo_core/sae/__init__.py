"""Sparse autoencoders: one in-memory type (:class:`SparseAutoencoder`) and loaders for every common layout."""

from .formats import (convert_to_safetensors, describe, detect_format, list_sae_hookpoints, load_sae,
                      read_safetensors, save_sae)
from .model import SparseAutoencoder

__all__ = ["SparseAutoencoder", "load_sae", "save_sae", "detect_format", "describe", "list_sae_hookpoints",
           "convert_to_safetensors", "read_safetensors"]
