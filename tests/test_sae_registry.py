"""Adding an SAE format is one module that registers an SAEFormat: detection, loading, roots of one folder per
hookpoint and the "expected one of" message all pick it up, with no other file touched."""

from __future__ import annotations

import json

import pytest
import torch

from lvo_core.errors import SAEFormatError
from lvo_core.sae import describe, detect_format, list_sae_hookpoints, load_sae
from lvo_core.sae.formats import FORMATS, SAEFormat, register
from lvo_core.sae.model import SparseAutoencoder


def _load_toy(folder, k=None, dtype=None):
    """A made-up layout: every tensor as a JSON list in toy.json."""
    data = json.loads((folder / "toy.json").read_text())
    t = {key: torch.tensor(value) for key, value in data["tensors"].items()}
    return SparseAutoencoder(W_enc=t["enc"], b_enc=t["b"], W_dec=t["dec"], b_dec=t["bias"], pre_bias=t["bias"],
                             activation="topk", k=k or data["k"], hookpoint=data["hook"], source_format="toy")


@pytest.fixture
def toy_format():
    fmt = register(SAEFormat("toy", "folder", "toy.json (toy)", 50, matches=lambda names: "toy.json" in names,
                             load=_load_toy, files=("toy.json",)))
    yield fmt
    FORMATS.pop(fmt.name)


def write_toy(folder, hook, seed):
    g = torch.Generator().manual_seed(seed)
    tensors = {"enc": torch.randn(8, 4, generator=g), "b": torch.randn(8, generator=g),
               "dec": torch.randn(8, 4, generator=g), "bias": torch.randn(4, generator=g)}
    folder.mkdir(parents=True)
    (folder / "toy.json").write_text(json.dumps({"k": 2, "hook": hook,
                                                 "tensors": {k: v.tolist() for k, v in tensors.items()}}))
    return tensors


def test_a_registered_format_is_detected_loaded_and_listed(toy_format, tmp_path):
    tensors = write_toy(tmp_path / "one", "up_blocks.1.attentions.1", seed=1)
    assert detect_format(tmp_path / "one") == detect_format(tmp_path / "one" / "toy.json") == "toy"
    sae = load_sae(tmp_path / "one" / "toy.json", k=3)
    assert sae.k == 3 and sae.source_format == "toy" and torch.equal(sae.W_enc, tensors["enc"])
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    h = (x - tensors["bias"]) @ tensors["enc"].T + tensors["b"]
    torch.testing.assert_close(sae.pre_acts(x), h)
    assert describe(tmp_path / "one")["d_sae"] == 8
    with pytest.raises(SAEFormatError, match=r"config.json \+ state_dict.pth \(openai-style\), toy.json \(toy\), or"):
        detect_format(tmp_path)  # a folder of toy folders is no root format: the message lists the new layout


def test_a_registered_root_format_chooses_by_hookpoint(toy_format, tmp_path):
    write_toy(tmp_path / "root" / "a", "up_blocks.1.attentions.0", seed=1)
    tensors = write_toy(tmp_path / "root" / "b", "up_blocks.1.attentions.1", seed=2)
    root = register(SAEFormat("toy-multi", "root", "toy", 50, member=lambda child: (
        (json.loads((child / "toy.json").read_text())["hook"], child) if (child / "toy.json").is_file() else None)))
    try:
        assert detect_format(tmp_path / "root") == "toy-multi"
        assert list_sae_hookpoints(tmp_path / "root") == ["up_blocks.1.attentions.0", "up_blocks.1.attentions.1"]
        sae = load_sae(tmp_path / "root", hookpoint="output_blocks.4.1")  # the LDM name of the same block
        assert torch.equal(sae.W_dec, tensors["dec"])
    finally:
        FORMATS.pop(root.name)


def test_a_name_is_registered_once(toy_format):
    with pytest.raises(SAEFormatError, match="registered twice"):
        register(toy_format)
