"""Hookpoint names across the diffusers and LDM/ComfyUI layouts, checked against diffusers' own converter."""

from __future__ import annotations

import pytest
import torch
from conftest import ldm_view, random_sae
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

from lvo_core.errors import HookpointError, SAEMismatchError
from lvo_core.hookpoints import (
    check_sae_fits,
    equivalent_names,
    list_hookpoints,
    name_map,
    resolve_hookpoint,
)
from lvo_core.model.families.sd import ldm_state_dict


def test_sd15_names_match_the_design_table(sd15_unet):
    m = name_map(sd15_unet).diffusers_to_ldm
    assert m["up_blocks.1.attentions.1"] == "output_blocks.4.1"
    assert m["up_blocks.1.attentions.2"] == "output_blocks.5.1"
    assert m["down_blocks.1.attentions.0"] == "input_blocks.4.1"
    assert m["down_blocks.0.downsamplers.0"] == "input_blocks.3.0"
    assert m["mid_block.attentions.0"] == "middle_block.1"
    assert m["mid_block.resnets.1"] == "middle_block.2"
    assert m["up_blocks.0.upsamplers.0"] == "output_blocks.2.1"  # level without attention: upsampler at .1
    assert m["up_blocks.1.upsamplers.0"] == "output_blocks.5.2"  # level with attention: upsampler at .2
    assert len(m) == len(set(m.values()))


@pytest.mark.parametrize("fixture", ["sd15_unet", "sdxl_unet"])
def test_whole_state_dict_round_trips_through_diffusers_converter(request, fixture):
    """Rename every parameter to its LDM name and let diffusers' converter rename it back: it must be the identity,
    tensors included — the LDM checkpoint we derive is one diffusers itself would load."""
    unet = request.getfixturevalue(fixture)
    state = unet.state_dict()
    back = convert_ldm_unet_checkpoint(ldm_state_dict(unet), dict(unet.config))
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_resolution_on_both_layouts_gives_the_same_module(unet):
    view = ldm_view(unet)
    for name in ("up_blocks.1.attentions.1", "unet.up_blocks.1.attentions.1", "output_blocks.4.1",
                 "diffusion_model.output_blocks.4.1", "model.diffusion_model.output_blocks.4.1"):
        d, l = resolve_hookpoint(unet, name), resolve_hookpoint(view, name)
        assert d.module is l.module is unet.up_blocks[1].attentions[1]
        assert (d.diffusers_name, d.ldm_name, d.channels, d.kind) == ("up_blocks.1.attentions.1", "output_blocks.4.1",
                                                                       32, "attention")
        assert d.module_path == "up_blocks.1.attentions.1" and l.module_path == "output_blocks.4.1"


def test_ldm_view_maps_every_block(unet):
    d_points = {p.diffusers_name: p for p in list_hookpoints(unet)}
    l_points = {p.diffusers_name: p for p in list_hookpoints(ldm_view(unet))}
    assert set(d_points) == set(l_points)
    for name, p in d_points.items():
        assert l_points[name].ldm_name == p.ldm_name
        assert l_points[name].channels == p.channels


def test_deeper_path_inside_attention_block(unet):
    hp = resolve_hookpoint(ldm_view(unet), "up_blocks.1.attentions.1.transformer_blocks.0")
    assert hp.module is unet.up_blocks[1].attentions[1].transformer_blocks[0]
    assert hp.ldm_name == "output_blocks.4.1.transformer_blocks.0"


def test_list_hookpoints_in_forward_order_with_channels(sd15_unet):
    points = list_hookpoints(sd15_unet)
    names = [p.diffusers_name for p in points]
    assert names[:3] == ["down_blocks.0.resnets.0", "down_blocks.0.attentions.0", "down_blocks.0.resnets.1"]
    assert names.index("mid_block.resnets.0") < names.index("mid_block.attentions.0") < names.index(
        "mid_block.resnets.1") < names.index("up_blocks.0.resnets.0")
    channels = {p.diffusers_name: p.channels for p in points}
    assert channels["up_blocks.1.attentions.1"] == 64 and channels["up_blocks.3.attentions.2"] == 32
    assert len(names) == len(set(names)) == len(name_map(sd15_unet).diffusers_to_ldm)


def test_sdxl_aliases_and_names(sdxl_unet):
    assert resolve_hookpoint(sdxl_unet, "up.0.1").diffusers_name == "up_blocks.0.attentions.1"
    assert resolve_hookpoint(sdxl_unet, "mid.0").ldm_name == "middle_block.1"
    assert resolve_hookpoint(sdxl_unet, "down.2.1").ldm_name == "input_blocks.8.1"
    assert resolve_hookpoint(sdxl_unet, "up_blocks.0.attentions.1").ldm_name == "output_blocks.1.1"


def test_unknown_and_foreign_hookpoints_list_valid_ones(sd15_unet):
    with pytest.raises(HookpointError, match=r"unknown hookpoint 'foo'.*up_blocks\.1\.attentions\.1"):
        resolve_hookpoint(sd15_unet, "foo")
    # up_blocks.0 carries attention in SDXL but not in SD1.5
    with pytest.raises(HookpointError, match="another architecture"):
        resolve_hookpoint(sd15_unet, "up_blocks.0.attentions.1")
    with pytest.raises(HookpointError, match="neither a diffusers UNet"):
        resolve_hookpoint(torch.nn.Linear(2, 2), "up_blocks.1.attentions.1")


def test_equivalent_names_without_a_model():
    assert set(equivalent_names("unet.up_blocks.1.attentions.1")) == {"up_blocks.1.attentions.1", "output_blocks.4.1"}
    assert "up_blocks.1.attentions.2" in equivalent_names("diffusion_model.output_blocks.5.1")
    assert "mid_block.attentions.0" in equivalent_names("middle_block.1")
    assert "down_blocks.2.attentions.1" in equivalent_names("input_blocks.8.1")


def test_sae_width_mismatch_names_numbers_block_and_fits(sd15_unet):
    hp = resolve_hookpoint(sd15_unet, "up_blocks.1.attentions.1")
    check_sae_fits(64, hp)
    with pytest.raises(SAEMismatchError) as err:
        check_sae_fits(random_sae(d_in=32).d_in, hp, sd15_unet)
    msg = str(err.value)
    assert "reads 32 channels" in msg and "'up_blocks.1.attentions.1' (output_blocks.4.1) outputs 64" in msg
    assert "up_blocks.3.attentions.1" in msg  # a block that does have 32 channels
    with pytest.raises(SAEMismatchError, match="No block of this model has 1280 channels"):
        check_sae_fits(1280, hp, sd15_unet)
