"""Every loader against the source format's own math, written out by hand on small tensors in the file's layout."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from lvo_core.errors import SAEFormatError, UnitError, UnsafeFileError
from lvo_core.sae import (
    convert_to_safetensors,
    detect_format,
    list_sae_hookpoints,
    load_sae,
    save_sae,
)
from lvo_core.sae.model import SparseAutoencoder

D_IN, D_SAE, K = 6, 12, 3


def rnd(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def x():
    return rnd(2, 5, D_IN, seed=99)


def topk_ref(a, k):
    """Per-token TopK written with sort, independent of the implementation's topk+scatter."""
    out = torch.zeros_like(a)
    vals, idx = a.sort(dim=-1, descending=True)
    return out.scatter(-1, idx[..., :k], vals[..., :k])


def write_sparsify(folder, *, cfg_extra=None, dtype=torch.float32, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    t = {"encoder.weight": rnd(D_SAE, D_IN, seed=seed), "encoder.bias": rnd(D_SAE, seed=seed + 1),
         "W_dec": rnd(D_SAE, D_IN, seed=seed + 2), "b_dec": rnd(D_IN, seed=seed + 3)}
    t = {k: v.to(dtype) for k, v in t.items()}
    save_file(t, str(folder / "sae.safetensors"))
    cfg = {"expansion_factor": 2, "normalize_decoder": True, "num_latents": 0, "k": K, "multi_topk": False,
           "d_in": D_IN, **(cfg_extra or {})}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return t


# ------------------------------------------------------------------------------------------ sparsify / SAeUron
def test_sparsify_topk_matches_reference(tmp_path, x):
    t = write_sparsify(tmp_path / "unet.up_blocks.1.attentions.1")
    sae = load_sae(tmp_path / "unet.up_blocks.1.attentions.1")
    assert (sae.d_in, sae.d_sae, sae.k, sae.activation, sae.source_format) == (D_IN, D_SAE, K, "topk", "sparsify")
    pre = (x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"]
    torch.testing.assert_close(sae.pre_acts(x), pre)
    torch.testing.assert_close(sae.dense_acts(x), pre.relu())
    z = topk_ref(pre.relu(), K)
    torch.testing.assert_close(sae.encode(x), z)
    assert ((sae.encode(x) != 0).sum(-1) <= K).all()
    torch.testing.assert_close(sae.decode(z), z @ t["W_dec"] + t["b_dec"])
    torch.testing.assert_close(sae.dense_acts(x, [5, 1]), pre.relu()[..., [5, 1]])
    assert sae.hookpoint == "unet.up_blocks.1.attentions.1"


def test_sparsify_groupmax_and_input_unit_norm(tmp_path, x):
    t = write_sparsify(tmp_path / "s", cfg_extra={"activation": "groupmax", "input_unit_norm": True})
    sae = load_sae(tmp_path / "s")
    mean = x.mean(-1, keepdim=True)
    std = (x - mean).std(-1, keepdim=True)  # unbiased, as SAeUron computes it
    xn = (x - mean) / (std + 1e-5)
    a = ((xn - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"]).relu()
    groups = a.reshape(*a.shape[:-1], K, D_SAE // K)
    expect = torch.zeros_like(groups)
    best = groups.argmax(-1, keepdim=True)
    expect.scatter_(-1, best, groups.gather(-1, best))
    torch.testing.assert_close(sae.encode(x), expect.reshape(a.shape))
    z = sae.encode(x)
    # SAeUron divides by std + 1e-5 but multiplies back by the bare std
    torch.testing.assert_close(sae.reconstruct(x), (z @ t["W_dec"] + t["b_dec"]) * std + mean)


def test_dtype_is_read_from_file(tmp_path):
    write_sparsify(tmp_path / "bf", dtype=torch.bfloat16)
    sae = load_sae(tmp_path / "bf")
    assert sae.dtype == torch.bfloat16
    assert load_sae(tmp_path / "bf", dtype=torch.float32).dtype == torch.float32


def test_multi_hookpoint_root_choose_by_name(tmp_path):
    write_sparsify(tmp_path / "unet.up_blocks.1.attentions.1", seed=0)
    write_sparsify(tmp_path / "unet.up_blocks.1.attentions.2", seed=10)
    assert detect_format(tmp_path) == "sparsify-multi"
    assert list_sae_hookpoints(tmp_path) == ["unet.up_blocks.1.attentions.1", "unet.up_blocks.1.attentions.2"]
    a = load_sae(tmp_path, hookpoint="up_blocks.1.attentions.2")
    b = load_sae(tmp_path, hookpoint="output_blocks.5.1")  # the LDM spelling of the same block
    c = load_sae(tmp_path, hookpoint="unet.up_blocks.1.attentions.2")
    assert torch.equal(a.W_enc, b.W_enc) and torch.equal(a.W_enc, c.W_enc)
    assert not torch.equal(a.W_enc, load_sae(tmp_path, hookpoint="up_blocks.1.attentions.1").W_enc)
    with pytest.raises(SAEFormatError, match="several hookpoints: say which one"):
        load_sae(tmp_path)
    with pytest.raises(SAEFormatError, match="no SAE for hookpoint 'mid_block.attentions.0'; available"):
        load_sae(tmp_path, hookpoint="mid_block.attentions.0")


def test_bare_safetensors_needs_k(tmp_path, x):
    t = write_sparsify(tmp_path / "tmp")
    bare = tmp_path / "bare"
    bare.mkdir()
    (tmp_path / "tmp" / "sae.safetensors").rename(bare / "weights.safetensors")
    with pytest.raises(SAEFormatError, match="pass k explicitly"):
        load_sae(bare / "weights.safetensors")
    sae = load_sae(bare / "weights.safetensors", k=2)
    pre = (x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"]
    torch.testing.assert_close(sae.encode(x), topk_ref(pre.relu(), 2))


# ------------------------------------------------------------------------------------------ SAELens
def write_saelens(folder, arch, *, apply_b_dec=True, norm="none", extra_cfg=None, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    t = {"W_enc": rnd(D_IN, D_SAE, seed=seed), "W_dec": rnd(D_SAE, D_IN, seed=seed + 1),
         "b_dec": rnd(D_IN, seed=seed + 2)}
    if arch == "gated":
        t.update(b_gate=rnd(D_SAE, seed=seed + 3), b_mag=rnd(D_SAE, seed=seed + 4), r_mag=rnd(D_SAE, seed=seed + 5))
    else:
        t["b_enc"] = rnd(D_SAE, seed=seed + 3)
    if arch == "jumprelu":
        t["threshold"] = rnd(D_SAE, seed=seed + 6).abs() * 0.5
    save_file(t, str(folder / "sae_weights.safetensors"))
    cfg = {"architecture": arch, "d_in": D_IN, "d_sae": D_SAE, "apply_b_dec_to_input": apply_b_dec,
           "normalize_activations": norm, "hook_name": "unet.up_blocks.1.attentions.1", **(extra_cfg or {})}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return t


@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_saelens_standard(tmp_path, x, apply_b_dec):
    t = write_saelens(tmp_path / "sl", "standard", apply_b_dec=apply_b_dec)
    sae = load_sae(tmp_path / "sl")
    xi = x - t["b_dec"] if apply_b_dec else x
    h = xi @ t["W_enc"] + t["b_enc"]  # SAELens stores W_enc as [d_in, d_sae]
    torch.testing.assert_close(sae.encode(x), h.relu())
    torch.testing.assert_close(sae.reconstruct(x), h.relu() @ t["W_dec"] + t["b_dec"])
    assert sae.source_format == "saelens" and sae.hookpoint == "unet.up_blocks.1.attentions.1"


def test_saelens_jumprelu(tmp_path, x):
    t = write_saelens(tmp_path / "sl", "jumprelu")
    sae = load_sae(tmp_path / "sl")
    h = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    expect = h.relu() * (h > t["threshold"]).float()
    torch.testing.assert_close(sae.encode(x), expect)
    assert (sae.encode(x) == 0).any() and (sae.encode(x) > 0).any()


def test_saelens_topk_old_and_new_config(tmp_path, x):
    t = write_saelens(tmp_path / "new", "topk", extra_cfg={"k": 2})
    write_saelens(tmp_path / "old", "standard",
                  extra_cfg={"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 2}})
    h = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    expect = topk_ref(h, 2).relu()  # SAELens: ReLU after TopK on the raw pre-activations
    for name in ("new", "old"):
        torch.testing.assert_close(load_sae(tmp_path / name).encode(x), expect)


def test_saelens_gated(tmp_path, x):
    t = write_saelens(tmp_path / "g", "gated")
    sae = load_sae(tmp_path / "g")
    xc = x - t["b_dec"]
    gate = (xc @ t["W_enc"] + t["b_gate"]) > 0
    mag = (xc @ (t["W_enc"] * t["r_mag"].exp()) + t["b_mag"]).relu()
    torch.testing.assert_close(sae.encode(x), gate.float() * mag)


def test_saelens_constant_norm_rescale(tmp_path, x):
    t = write_saelens(tmp_path / "r", "standard", norm="constant_norm_rescale")
    sae = load_sae(tmp_path / "r")
    scale = (D_IN ** 0.5) / x.norm(dim=-1, keepdim=True)
    h = (x * scale - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    torch.testing.assert_close(sae.encode(x), h.relu())
    torch.testing.assert_close(sae.reconstruct(x), (h.relu() @ t["W_dec"] + t["b_dec"]) / scale)


def test_saelens_unsupported_normalisation_is_named(tmp_path):
    write_saelens(tmp_path / "n", "standard", norm="expected_average_only_in")
    with pytest.raises(SAEFormatError, match="normalize_activations='expected_average_only_in'"):
        load_sae(tmp_path / "n")


# ------------------------------------------------------------------------------------------ pickled formats
def write_dictionary_learning(folder, cls, tensors, extra=None):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, folder / "ae.pt")
    trainer = {"dict_class": cls, "activation_dim": D_IN, "dict_size": D_SAE, **(extra or {})}
    (folder / "config.json").write_text(json.dumps({"trainer": trainer}))


def test_dictionary_learning_autoencoder(tmp_path, x):
    t = {"bias": rnd(D_IN, seed=1), "encoder.weight": rnd(D_SAE, D_IN, seed=2), "encoder.bias": rnd(D_SAE, seed=3),
         "decoder.weight": rnd(D_IN, D_SAE, seed=4)}
    write_dictionary_learning(tmp_path / "dl", "AutoEncoder", t)
    sae = load_sae(tmp_path / "dl")
    f = ((x - t["bias"]) @ t["encoder.weight"].T + t["encoder.bias"]).relu()
    # load_dictionary normalizes the decoder (normalize_decoder=True), which scales each code by its decoder norm
    norms = t["decoder.weight"].norm(dim=0)
    torch.testing.assert_close(sae.encode(x), f * norms, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae.reconstruct(x), f @ t["decoder.weight"].T + t["bias"], rtol=1e-5, atol=1e-5)


def test_dictionary_learning_topk_and_batchtopk_threshold(tmp_path, x):
    t = {"encoder.weight": rnd(D_SAE, D_IN, seed=2), "encoder.bias": rnd(D_SAE, seed=3),
         "decoder.weight": rnd(D_IN, D_SAE, seed=4), "b_dec": rnd(D_IN, seed=5), "k": torch.tensor(K),
         "threshold": torch.tensor(0.4)}
    post = ((x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"]).relu()
    write_dictionary_learning(tmp_path / "topk", "AutoEncoderTopK", t)
    torch.testing.assert_close(load_sae(tmp_path / "topk").encode(x), topk_ref(post, K))
    write_dictionary_learning(tmp_path / "btk", "BatchTopKSAE", t)
    torch.testing.assert_close(load_sae(tmp_path / "btk").encode(x), post * (post > 0.4).float())


def test_dictionary_learning_jumprelu_folds_decoder_norm(tmp_path, x):
    t = {"W_enc": rnd(D_IN, D_SAE, seed=2), "b_enc": rnd(D_SAE, seed=3), "W_dec": rnd(D_SAE, D_IN, seed=4) * 3,
         "b_dec": rnd(D_IN, seed=5), "threshold": rnd(D_SAE, seed=6).abs() * 0.3}
    write_dictionary_learning(tmp_path / "jr", "JumpReluAutoEncoder", t)
    sae = load_sae(tmp_path / "jr")
    pre = x @ t["W_enc"] + t["b_enc"]  # no b_dec subtraction in dictionary_learning's JumpReLU
    norms = t["W_dec"].norm(dim=1)
    f = (pre * (pre > t["threshold"])).relu() * norms
    torch.testing.assert_close(sae.encode(x), f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae.reconstruct(x), (f / norms) @ t["W_dec"] + t["b_dec"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae.decoder_norms(), torch.ones(D_SAE))


@pytest.mark.parametrize("cls", ["JumpReluAutoEncoder", "GatedAutoEncoder"])
def test_dictionary_learning_current_configs_do_not_scale_codes(tmp_path, x, cls):
    """Configs written since the December 2024 trainer rewrite (e.g. with sparsity_warmup_steps) mean unscaled codes."""
    if cls == "JumpReluAutoEncoder":
        t = {"W_enc": rnd(D_IN, D_SAE, seed=2), "b_enc": rnd(D_SAE, seed=3), "W_dec": rnd(D_SAE, D_IN, seed=4) * 3,
             "b_dec": rnd(D_IN, seed=5), "threshold": rnd(D_SAE, seed=6).abs() * 0.3}
        pre = x @ t["W_enc"] + t["b_enc"]
        f = (pre * (pre > t["threshold"])).relu()
        recon = f @ t["W_dec"] + t["b_dec"]
    else:
        t = {"decoder_bias": rnd(D_IN, seed=1), "encoder.weight": rnd(D_SAE, D_IN, seed=2), "r_mag": rnd(D_SAE, seed=3),
             "gate_bias": rnd(D_SAE, seed=4), "mag_bias": rnd(D_SAE, seed=5),
             "decoder.weight": rnd(D_IN, D_SAE, seed=6) * 3}
        x_enc = (x - t["decoder_bias"]) @ t["encoder.weight"].T
        f = (x_enc + t["gate_bias"] > 0).float() * (t["r_mag"].exp() * x_enc + t["mag_bias"]).relu()
        recon = f @ t["decoder.weight"].T + t["decoder_bias"]
    write_dictionary_learning(tmp_path / "new", cls, t, extra={"sparsity_warmup_steps": 2000})
    sae = load_sae(tmp_path / "new")
    torch.testing.assert_close(sae.encode(x), f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sae.reconstruct(x), recon, rtol=1e-5, atol=1e-5)
    assert sae.meta["codes_scaled_by_decoder_norm"] is False


def test_sdxl_unbox_checkpoints_root(tmp_path, x):
    """sdxl-unbox's checkpoints/<block>_k10_hidden5120_…/final/ layout: the hookpoint comes from the folder name."""
    root = tmp_path / "checkpoints"
    blocks = ["unet.down_blocks.2.attentions.1", "unet.mid_block.attentions.0", "unet.up_blocks.0.attentions.0",
              "unet.up_blocks.0.attentions.1"]
    for block in blocks:
        write_openai(root / f"{block}_k10_hidden5120_auxk256_bs4096_lr0.0001" / "final")
    assert detect_format(root) == "openai-multi"
    assert list_sae_hookpoints(root) == sorted(blocks)
    for alias, block in [("down.2.1", blocks[0]), ("mid.0", blocks[1]), ("up.0.1", blocks[3]), (blocks[2], blocks[2])]:
        assert load_sae(root, hookpoint=alias).hookpoint == block
    assert load_sae(root / f"{blocks[0]}_k10_hidden5120_auxk256_bs4096_lr0.0001" / "final").hookpoint == blocks[0]
    write_openai(tmp_path / "unet.up_blocks.0.attentions.1")
    assert load_sae(tmp_path / "unet.up_blocks.0.attentions.1").hookpoint == "unet.up_blocks.0.attentions.1"
    with pytest.raises(SAEFormatError, match="several hookpoints: say which one"):
        load_sae(root)
    with pytest.raises(SAEFormatError, match="no SAE for hookpoint 'up.1.1'; available"):
        load_sae(root, hookpoint="up.1.1")


def test_dictionary_learning_gated(tmp_path, x):
    t = {"decoder_bias": rnd(D_IN, seed=1), "encoder.weight": rnd(D_SAE, D_IN, seed=2), "r_mag": rnd(D_SAE, seed=3),
         "gate_bias": rnd(D_SAE, seed=4), "mag_bias": rnd(D_SAE, seed=5), "decoder.weight": rnd(D_IN, D_SAE, seed=6)}
    write_dictionary_learning(tmp_path / "g", "GatedAutoEncoder", t)
    sae = load_sae(tmp_path / "g")
    x_enc = (x - t["decoder_bias"]) @ t["encoder.weight"].T
    gate = (x_enc + t["gate_bias"] > 0).float()
    f = gate * (t["r_mag"].exp() * x_enc + t["mag_bias"]).relu() * t["decoder.weight"].norm(dim=0)
    torch.testing.assert_close(sae.encode(x), f, rtol=1e-5, atol=1e-5)
    recon = (f / t["decoder.weight"].norm(dim=0)) @ t["decoder.weight"].T + t["decoder_bias"]
    torch.testing.assert_close(sae.reconstruct(x), recon, rtol=1e-5, atol=1e-5)


def write_openai(folder, wrap=True):
    folder.mkdir(parents=True, exist_ok=True)
    t = {"encoder.weight": rnd(D_SAE, D_IN, seed=1), "decoder.weight": rnd(D_IN, D_SAE, seed=2),
         "pre_bias": rnd(D_IN, seed=3), "latent_bias": rnd(D_SAE, seed=4)}
    torch.save({"state_dict": t} if wrap else t, folder / "state_dict.pth")
    (folder / "config.json").write_text(json.dumps({"n_dirs_local": D_SAE, "d_model": D_IN, "k": K}))
    return t


def test_openai_style_unbox(tmp_path, x):
    t = write_openai(tmp_path / "unbox")
    sae = load_sae(tmp_path / "unbox")
    pre = (x - t["pre_bias"]) @ t["encoder.weight"].T + t["latent_bias"]
    z = topk_ref(pre, K).relu()
    torch.testing.assert_close(sae.encode(x), z)
    torch.testing.assert_close(sae.decode(z), z @ t["decoder.weight"].T + t["pre_bias"])
    assert sae.input_kind == "update"  # these SAEs read the block's update, not its output


def test_converter_round_trip_for_pickled_formats(tmp_path, x):
    write_openai(tmp_path / "unbox")
    out = convert_to_safetensors(tmp_path / "unbox", tmp_path / "converted")
    assert detect_format(out) == "sparsify" and not list(out.glob("*.pt*"))
    torch.testing.assert_close(load_sae(out).encode(x), load_sae(tmp_path / "unbox").encode(x))


@pytest.mark.parametrize("activation", ["topk", "groupmax", "relu", "jumprelu", "gated"])
def test_save_load_round_trip_every_activation(tmp_path, x, activation):
    W = rnd(D_SAE, D_IN, seed=1)
    kw = dict(W_enc=W, b_enc=rnd(D_SAE, seed=2), W_dec=rnd(D_SAE, D_IN, seed=3), b_dec=rnd(D_IN, seed=4),
              activation=activation)
    kw["pre_bias"] = kw["b_dec"]
    if activation in ("topk", "groupmax"):
        kw["k"] = K
    if activation == "jumprelu":
        kw["threshold"] = rnd(D_SAE, seed=5).abs()
    if activation == "gated":
        kw.update(W_mag=W * rnd(D_SAE, seed=6).exp()[:, None], b_mag=rnd(D_SAE, seed=7))
    sae = SparseAutoencoder(**kw)
    back = load_sae(save_sae(sae, tmp_path / activation, hookpoint="up_blocks.1.attentions.1"))
    torch.testing.assert_close(back.encode(x), sae.encode(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(back.reconstruct(x), sae.reconstruct(x), rtol=1e-5, atol=1e-5)
    assert back.hookpoint == "up_blocks.1.attentions.1"


# ------------------------------------------------------------------------------------------ bad files
def test_empty_truncated_and_corrupt_safetensors(tmp_path):
    write_sparsify(tmp_path / "s")
    weights = tmp_path / "s" / "sae.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"")
    with pytest.raises(SAEFormatError, match="empty or truncated"):
        load_sae(tmp_path / "s")
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(SAEFormatError, match="truncated|corrupt"):
        load_sae(tmp_path / "s")
    weights.write_bytes(data[:8] + b"{not json" + data[17:])
    with pytest.raises(SAEFormatError, match="corrupt or not a safetensors file"):
        load_sae(tmp_path / "s")


class Boom:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


def test_pickle_named_safetensors_is_refused(tmp_path):
    write_sparsify(tmp_path / "s")
    (tmp_path / "s" / "sae.safetensors").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with pytest.raises(UnsafeFileError, match="is a pickle"):
        load_sae(tmp_path / "s")


def test_malicious_pickle_is_not_executed(tmp_path):
    folder = tmp_path / "dl"
    folder.mkdir()
    torch.save({"payload": Boom()}, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": {"dict_class": "AutoEncoder"}}))
    with pytest.raises(UnsafeFileError, match="weights_only=True"):
        load_sae(folder)


def test_config_that_lies_about_shapes(tmp_path):
    write_sparsify(tmp_path / "s", cfg_extra={"d_in": 1280})
    with pytest.raises(SAEFormatError, match="config says d_in=1280 but the weights have d_in=6"):
        load_sae(tmp_path / "s")
    write_saelens(tmp_path / "l", "standard", extra_cfg={"d_sae": 99})
    with pytest.raises(SAEFormatError, match="shape|d_sae"):
        load_sae(tmp_path / "l")


def test_inconsistent_tensors_and_nan(tmp_path):
    folder = tmp_path / "s"
    t = write_sparsify(folder)
    t["b_dec"] = torch.zeros(D_IN + 1)
    save_file(t, str(folder / "sae.safetensors"))
    with pytest.raises(SAEFormatError, match="'b_dec' has shape"):
        load_sae(folder)
    t["b_dec"] = torch.full((D_IN,), float("nan"))
    save_file(t, str(folder / "sae.safetensors"))
    with pytest.raises(SAEFormatError, match="NaN"):
        load_sae(folder)


def test_unknown_format_and_missing_path(tmp_path):
    (tmp_path / "weird").mkdir()
    (tmp_path / "weird" / "model.bin").write_bytes(b"1234")
    with pytest.raises(SAEFormatError, match="holds no SAE this pack can read"):
        load_sae(tmp_path / "weird")
    with pytest.raises(SAEFormatError, match="does not exist"):
        load_sae(tmp_path / "nope")


def test_feature_index_errors(sae):
    with pytest.raises(UnitError, match="out of range: this SAE has 128 latents"):
        sae.direction(128)
    with pytest.raises(UnitError, match="listed twice"):
        sae.check_features([1, 1])
    with pytest.raises(UnitError, match="no SAE features"):
        sae.check_features([])


def test_direction_is_unit_norm_copy(sae):
    d = sae.direction(3)
    torch.testing.assert_close(d.norm(), torch.tensor(1.0))
    d.zero_()
    assert sae.W_dec[3].abs().sum() > 0
