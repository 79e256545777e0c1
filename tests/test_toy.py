"""The toy world's groundwork: labelled images, the linear codec, the prompt encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvo_core.errors import LVOError
from lvo_core.toy.codec import PatchPCACodec
from lvo_core.toy.text import NULL, VOCAB, ToyPromptEncoder, parse
from lvo_core.toy.world import COLORS, SHAPES, make_dataset, render, shape_mask


@pytest.fixture(scope="module")
def data():
    return make_dataset(600, seed=3)


def test_dataset_is_labelled_and_deterministic(data):
    again = make_dataset(600, seed=3)
    assert np.array_equal(data.images, again.images) and np.array_equal(data.shapes, again.shapes)
    assert data.images.shape == (600, 3, 32, 32) and -1 <= data.images.min() and data.images.max() <= 1
    assert set(data.shapes) == set(range(len(SHAPES))) and set(data.colors) == set(range(len(COLORS)))
    assert data.prompts()[0] == f"{list(COLORS)[data.colors[0]]} {SHAPES[data.shapes[0]]}"
    # the shape is drawn in its colour: the brightest pixels of a red image are red
    i = int(np.flatnonzero(data.colors == list(COLORS).index("red"))[0])
    rgb = (data.images[i] + 1) / 2
    top = rgb.reshape(3, -1)[:, rgb.sum(0).ravel().argsort()[-20:]].mean(1)
    assert top[0] > 0.8 and top[1] < 0.3 and top[2] < 0.3


def test_shapes_differ_by_hand():
    areas = {s: shape_mask(s, 16, 16, 10).sum() for s in SHAPES}
    assert areas["circle"] == pytest.approx(np.pi * 100, rel=0.03)
    assert areas["ring"] == pytest.approx(np.pi * 100 * (1 - 0.55 ** 2), rel=0.05)
    assert areas["square"] == pytest.approx((2 * 8.5) ** 2, rel=0.03)
    assert shape_mask("ring", 16, 16, 10)[16, 16] == 0 and shape_mask("circle", 16, 16, 10)[16, 16] == 1
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        shape_mask("hexagon", 16, 16, 10)
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        render("circle", "teal", 16, 16, 9, 0.1)


def test_codec_is_whitened_and_reconstructs(data, tmp_path):
    x = torch.from_numpy(data.images).float()
    codec = PatchPCACodec.fit(x, 8)
    z = codec.encode(x)
    assert z.shape == (600, 8, 8, 8)
    torch.testing.assert_close(z.std(dim=(0, 2, 3)), torch.ones(8), atol=2e-3, rtol=0)
    psnr = 10 * torch.log10(4 / ((codec.decode(z) - x) ** 2).mean())
    assert psnr > 22  # measured 24.6 dB on 2000 images
    torch.testing.assert_close(codec.encode(codec.decode(z)), z, atol=1e-4, rtol=1e-4)  # decoder = transpose
    back = PatchPCACodec.load(codec.save(tmp_path / "codec.safetensors"))
    torch.testing.assert_close(back(z), codec.decode(z))
    assert torch.equal(PatchPCACodec.fit(x, 8).components, codec.components)  # deterministic signs


def test_prompt_encoder():
    assert parse("red circle") == parse("circle red") == (VOCAB.index("red"), VOCAB.index("circle"))
    assert parse("") == (NULL, NULL) and parse("Blue") == (VOCAB.index("blue"), NULL)
    for bad in ("purple circle", "red blue", "circle circle"):
        with pytest.raises(LVOError, match="the toy world knows one colour"):
            parse(bad)
    enc = ToyPromptEncoder(dim=16)
    out = enc(["red circle", "", "square"])
    assert out.shape == (3, 2, 16)
    torch.testing.assert_close(out[1, 0], enc.embedding.weight[NULL] + enc.slot[0])


# ---------------------------------------------------------------------------------------------- the trained world
from lvo_core.toy import SAE_PATH, WEIGHTS  # noqa: E402

trained = pytest.mark.skipif(not (WEIGHTS / "unet" / "config.json").is_file(), reason="toy weights not trained")


@trained
def test_trained_world_loads_like_any_model():
    from lvo_core.hookpoints import check_sae_fits, resolve_hookpoint
    from lvo_core.sae import load_sae
    from lvo_core.toy import load_toy_model

    model = load_toy_model()
    point = resolve_hookpoint(model.denoiser, "output_blocks.4.1")
    sae = load_sae(SAE_PATH)
    check_sae_fits(sae.d_in, point, model.denoiser)
    assert (point.diffusers_name, point.channels, sae.d_sae, sae.k) == ("up_blocks.1.attentions.1", 48, 384, 8)
    assert model.decoder(torch.zeros(1, 8, 8, 8)).shape == (1, 3, 32, 32)
    record = json.loads((WEIGHTS / "record.json").read_text())
    assert record["args"]["seed"] == 0 and record["command"].startswith("python -m lvo_core.toy.train")
    assert sum(f.stat().st_size for f in WEIGHTS.rglob("*") if f.is_file()) < 8 * 2 ** 20


@trained
def test_trained_world_draws_what_it_is_asked_for():
    from lvo_core.toy.evaluate import generate, load_world
    from lvo_core.toy.judge import Judge

    unet, codec, encoder = load_world()
    judge = Judge.load(WEIGHTS / "judge.safetensors")
    prompts = ["red circle", "blue square", "green triangle", "yellow ring", "white cross"]
    reads = judge.read(generate(unet, codec, encoder, prompts, seeds=[11, 12, 13, 14, 15]))
    correct = sum(r == tuple(p.split()[::-1]) for r, p in zip(reads, prompts))
    assert correct >= 4, list(zip(prompts, reads))
    evaluation = json.loads((WEIGHTS / "evaluation.json").read_text())
    assert evaluation["samples"]["samples"] == 200 and evaluation["judge"]["no_concept_rejected"] > 0.9
