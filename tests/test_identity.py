"""Identity digests are how saved banks, analyses and run records find the model and SAE they belong to: a refactor
that changes one byte of them orphans every saved file. These hex strings were computed before the four hashers
became one (lvo_core/identity.py) and must never move."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from lvo_core.analysis.activity import sae_fingerprint
from lvo_core.analysis.bank import model_fingerprint
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_unet, tiny_vae
from lvo_core.runs.record import sae_digest, weights_digest
from lvo_core.sae.model import SparseAutoencoder


def hand_built() -> tuple[torch.nn.Module, SparseAutoencoder]:
    """A model with float32 and bf16 weights, a long row (strided sampling) and an integer buffer, and a small SAE,
    from a seeded generator only (no builder another change could alter)."""
    g = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(4, 600), torch.nn.LayerNorm(600),
                                torch.nn.Linear(600, 3).to(torch.bfloat16))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g).to(p.dtype))
    model.register_buffer("steps", torch.arange(5))
    sae = SparseAutoencoder(W_enc=torch.randn(12, 6, generator=g), b_enc=torch.randn(12, generator=g),
                            W_dec=torch.randn(12, 6, generator=g), b_dec=torch.randn(6, generator=g),
                            pre_bias=torch.zeros(6), activation="topk", k=3, hookpoint="up_blocks.1",
                            source_format="saelens")
    return model, sae


def test_digests_of_a_hand_built_model_and_sae_are_pinned():
    model, sae = hand_built()
    backend = SimpleNamespace(denoiser=model, schedule=SimpleNamespace(signature=lambda: b"alphas:0.5,0.25"))
    assert model_fingerprint(backend) == "61900c531ef317b8"
    assert weights_digest(model) == "8e4eeb4435826f3dce7adff5c013281b6966723cbed5ef323b56a092b1d1dced"
    assert sae_digest(sae) == "393ba55438222ae8ad9c14771f17797e5ffafb1d54f30e7b41f8b0c169cdebbe"
    assert sae_fingerprint(sae) == "0da12b9b1d2e9c20"
    half = sae.to(dtype=torch.bfloat16)
    assert sae_digest(half) == "d7a1e188116ba543078c661044fe6ca656ca2f6f448fb73afb2dc4fad98b80d8"
    assert sae_fingerprint(half) == "0bd3871843d770a9"


def test_digests_of_the_tiny_model_and_sae_are_pinned():
    unet, sae = tiny_unet(), random_sae()
    backend = DiffusersBackend(unet, "up_blocks.1.attentions.1", scheduler=sd15_scheduler(), decoder=tiny_vae(),
                               encode_prompt=CharPromptEncoder())
    assert model_fingerprint(backend) == "55f8c18ab2c26e9c"
    assert weights_digest(unet) == "bccdafb9973bb0ccd56521f6ecf4fed0b8566e054ebccaf8723cce0ade5e5d46"
    assert sae_digest(sae) == "ec4fa74adf5ab6efe1b022e73c7093334e484b4c57164f5f44192a1b7d266143"
    assert sae_fingerprint(sae) == "f2356a6040f6b614"
