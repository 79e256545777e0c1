"""Feature search by hand on the tiny model, through the CLI and the node, and measured on the toy world where each
image's concepts are known."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from comfy_standins import empty_cond, run

from lvo_core.analysis.activity import unit_activations
from lvo_core.analysis.bank import BankSettings, build_bank
from lvo_core.analysis.feature_search import (
    SEARCH_STEP_OFFSET,
    search_features,
    unit_list,
)
from lvo_core.errors import LVOError
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.noise import add_noise, step_noise
from lvo_core.model.sampling import seeded_noise
from lvo_core.model.tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_vae

HP = "up_blocks.1.attentions.1"


@pytest.fixture(scope="module")
def backend(unet):
    return DiffusersBackend(unet, HP, scheduler=sd15_scheduler(), decoder=tiny_vae(), encode_prompt=CharPromptEncoder())


def test_search_ranks_by_hand(backend, sae):
    z = seeded_noise([3, 4], (4, 16, 16))
    found = search_features(backend, sae, z, top=5, draws=2)
    t = torch.full((2,), 200)
    total = 0
    for d in range(2):
        x = add_noise(z, t, backend.schedule.alphas.float(), step_noise(range(2), SEARCH_STEP_OFFSET + d, (4, 16, 16)))
        with torch.no_grad():
            total = total + unit_activations(backend.block_tokens(x, t, backend.empty_context(2))[0], sae)
    means = total / 2
    for b in range(2):
        expected = sorted(range(sae.d_sae), key=lambda u: (-float(means[b, u]), u))[:5]
        assert [h.unit for h in found[b]] == expected
        assert found[b][0].activation == pytest.approx(float(means[b, expected[0]]), rel=1e-5)
        assert found[b][0].heatmap.shape == (16, 16) and found[b][0].heatmap.mean() == pytest.approx(
            found[b][0].activation, rel=1e-4)
    bank = build_bank(backend, BankSettings(size=4, steps=2, draws=2), sae=sae, timesteps=[200])
    lifted = search_features(backend, sae, z, top=3, draws=2, bank=bank)[0]
    pool = bank.table(200, sae).float().mean(0)
    expected = sorted(range(sae.d_sae), key=lambda u: (-float(means[0, u] / pool[u].clamp_min(1e-6)), u))[:3]
    assert [h.unit for h in lifted] == expected and len(lifted[0].bank_examples) == 4
    assert unit_list(lifted) == ", ".join(map(str, expected))
    with pytest.raises(LVOError, match="give a sample bank"):
        search_features(backend, sae, z, by="lift")
    with pytest.raises(LVOError, match="give an activity analysis"):
        search_features(backend, sae, z, by="ratio")
    with pytest.raises(LVOError, match=r"\[B, C, H, W\]"):
        search_features(backend, sae, z[0])


def test_search_command_and_node(tmp_path, capsys, fake_comfy, pack):
    from PIL import Image

    from lvo_core.cli import main

    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    assert main(["search", "--image", str(tmp_path / "grey.png"), "--prompt", "red ring", "--steps", "2", "--top",
                 "3", "--out", str(tmp_path / "s")]) == 0
    report = json.loads((tmp_path / "s" / "search.json").read_text())
    assert [i["name"] for i in report["images"]] == ["grey.png", "red ring"]
    assert all(len(i["hits"]) == 3 for i in report["images"]) and (tmp_path / "s" / "search.png").is_file()
    assert "feed the units to LVO: --units" in capsys.readouterr().out
    assert main(["search", "--top", "3"]) == 2 and "--image FILE, --prompt" in capsys.readouterr().err
    vae = tiny_vae()
    fake_vae = types.SimpleNamespace(encode=lambda images: vae.encode(images.movedim(-1, 1) * 2 - 1).latent_dist.mean)
    sae = random_sae(d_in=32)
    units, heatmaps, text, sheet = run(pack, "LVOFeatureSearch", fake_comfy.patcher, fake_vae, sae,
                                       torch.rand(2, 32, 32, 3), empty_cond(), "", 200, 4, "auto").args
    hits = json.loads(text)["images"]
    assert units.units == tuple(h["unit"] for h in hits[0]["hits"]) and units.kind == "sae"
    assert heatmaps.shape == (2 * 5, 32, 32, 3) and len(hits) == 2
    assert sheet.shape[0] == 1 and sheet.shape[2] >= 5 * 96  # one labelled picture: the image and 4 hits per row
    with pytest.raises(Exception, match="give a sample bank"):
        run(pack, "LVOFeatureSearch", fake_comfy.patcher, fake_vae, sae, torch.rand(1, 32, 32, 3), empty_cond(), "",
            200, 4, "lift")


from lvo_core.toy import WEIGHTS  # noqa: E402


@pytest.mark.skipif(not (WEIGHTS / "unet" / "config.json").is_file(), reason="toy weights not trained")
def test_search_finds_the_images_concepts_on_the_toy_world():
    """On 40 fresh labelled images the top hit (by lift over the bank) is a feature whose dominant concept is on
    the image far more often than the top hit by raw activation (measured 92.5 % vs 40 %)."""
    from lvo_core.toy.concepts import AXES, prepare_study, purity_data

    study = prepare_study(2, 1, 1000, 5)
    bank = study.ensure_bank()
    data = purity_data(40, seed=99)
    latents = study.world.encode_images(data.images)
    shares = {}
    for by in ("lift", "activation"):
        found = search_features(study.world.backend, study.world.sae, latents, top=3, by=by, bank=bank)
        hits = []
        for i, image_hits in enumerate(found):
            truth = {axis: AXES[axis][data.labels[axis][i]] for axis in AXES}
            axis, value, share = study.purity.concept(image_hits[0].unit)
            hits.append(truth[axis] == value and share >= 0.5)
        shares[by] = float(np.mean(hits))
    assert shares["lift"] >= 0.85 and shares["lift"] > shares["activation"] + 0.3, shares
