"""SAE files come from strangers: random bytes and random valid-looking headers must only ever give clean errors."""

from __future__ import annotations

import json
import random
import struct

import pytest
import torch
from safetensors.torch import save_file

from lvo_core.errors import LVOError
from lvo_core.sae import load_sae

DTYPES = ["F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F64", "XX"]
NAMES = ["encoder.weight", "encoder.bias", "W_dec", "b_dec", "W_enc", "b_enc", "threshold", "W_skip", "junk"]


def random_header(rng: random.Random) -> bytes:
    """A safetensors-looking file: a JSON header of plausible tensors, offsets that may or may not add up."""
    header, offset = {}, 0
    for name in rng.sample(NAMES, rng.randint(0, len(NAMES))):
        shape = [rng.choice([0, 1, 2, 3, 6, 12]) for _ in range(rng.randint(0, 3))]
        size = rng.choice([0, 4, 24, 48, 288, 10 ** 9])
        header[name] = {"dtype": rng.choice(DTYPES), "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size if rng.random() < 0.8 else -3
    if rng.random() < 0.2:
        header["__metadata__"] = {"format": rng.choice(["pt", 3, None])}
    blob = json.dumps(header).encode()
    if rng.random() < 0.2:
        blob = blob[: rng.randint(0, len(blob))]
    length = len(blob) if rng.random() < 0.85 else rng.randint(0, 2 ** 40)
    return struct.pack("<Q", length) + blob + bytes(rng.randint(0, 600))


def random_cfg(rng: random.Random) -> dict:
    keys = {"k": [8, 0, -1, "x", None, 3.5, 10 ** 9], "d_in": [6, 0, "6", None, -1],
            "num_latents": [0, 12, "a", None], "expansion_factor": [2, 0, "z", None],
            "activation": ["topk", "groupmax", "relu", 7], "input_unit_norm": [True, "yes", None]}
    return {k: rng.choice(v) for k, v in keys.items() if rng.random() < 0.7}


def test_fuzz_sae_loader_only_raises_clean_errors(tmp_path):
    rng = random.Random(1234)
    unclean = []
    for case in range(240):
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        kind = case % 4
        weights = folder / "sae.safetensors"
        if kind == 0:
            weights.write_bytes(rng.randbytes(rng.randint(0, 300)))
        elif kind == 1:
            weights.write_bytes(random_header(rng))
        else:  # a real file, then damage: truncate, flip bytes, or lie in cfg.json
            tensors = {"encoder.weight": torch.randn(12, 6), "encoder.bias": torch.randn(12),
                       "W_dec": torch.randn(12, 6), "b_dec": torch.randn(6)}
            save_file(tensors, str(weights))
            data = bytearray(weights.read_bytes())
            if kind == 2:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                if rng.random() < 0.5:
                    data = data[: rng.randint(0, len(data))]
            weights.write_bytes(bytes(data))
        cfg = random_cfg(rng) if kind == 3 or rng.random() < 0.5 else {"k": 3, "d_in": 6}
        cfg_text = json.dumps(cfg) if rng.random() < 0.9 else rng.randbytes(40).decode("latin-1")
        (folder / "cfg.json").write_text(cfg_text)
        try:
            sae = load_sae(folder)
            sae.encode(torch.randn(2, sae.d_in).to(sae.dtype))
        except LVOError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point is to catch anything unclean
            unclean.append((case, kind, type(exc).__name__, str(exc)[:120]))
    assert unclean == []


@pytest.mark.parametrize("payload", [b"", b"\x00" * 8, struct.pack("<Q", 2 ** 63) + b"{}", b"PK\x03\x04rest",
                                     b"\x80\x04\x95", struct.pack("<Q", 2) + b"[]"])
def test_pathological_headers(tmp_path, payload):
    (tmp_path / "sae.safetensors").write_bytes(payload)
    (tmp_path / "cfg.json").write_text(json.dumps({"k": 2}))
    with pytest.raises(LVOError):
        load_sae(tmp_path)
