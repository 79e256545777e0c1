"""Block hooks: capture, edit, early exit — exact numbers, and no hook ever left behind."""

from __future__ import annotations

import pytest
import torch
from conftest import ldm_view, random_sae

from lvo_core.errors import SAEMismatchError
from lvo_core.model.hooks import (
    AddChannel,
    AddDirection,
    EditFeature,
    StopForward,
    capture,
    edit,
    from_tokens,
    hook_count,
    run_to_block,
    to_tokens,
)

HP = "up_blocks.1.attentions.1"


def run(unet, x, ctx, t=500):
    return unet(x, t, encoder_hidden_states=ctx).sample


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 6, 32, generator=g)


def test_tokens_round_trip_keeps_non_square_shape():
    x = torch.randn(2, 5, 3, 7)
    tokens, hw = to_tokens(x)
    assert tokens.shape == (2, 21, 5) and hw == (3, 7)
    assert torch.equal(tokens[1, 2 * 7 + 4], x[1, :, 2, 4])
    assert torch.equal(from_tokens(tokens, hw), x)


def test_capture_tokens_and_sae_codes(unet, inputs):
    x, ctx = inputs
    sae = random_sae(d_in=32)
    with torch.no_grad(), capture(unet, HP, sae=sae, features=[3, 7]) as rec:
        run(unet, x, ctx)
    assert hook_count(unet) == 0
    assert len(rec.tokens) == 1 and rec.hw == (16, 16)
    tokens = rec.tokens[0]
    assert tokens.shape == (2, 256, 32)
    torch.testing.assert_close(rec.codes[0], sae.dense_acts(tokens)[..., [3, 7]])
    with torch.no_grad(), capture(unet, HP, sae=sae, sparse=True) as rec2:
        run(unet, x, ctx)
    assert ((rec2.codes[0] > 0).sum(-1) <= sae.k).all()


def test_capture_cond_half_of_cfg_batch(unet, inputs):
    x, ctx = inputs
    with torch.no_grad(), capture(unet, HP) as full, capture(unet, HP, rows="cond") as cond, \
            capture(unet, HP, rows="uncond") as uncond:
        run(unet, x, ctx)
    assert torch.equal(cond.tokens[0], full.tokens[0][1:]) and torch.equal(uncond.tokens[0], full.tokens[0][:1])


def test_capture_through_ldm_names_sees_the_same_block(unet, inputs):
    x, ctx = inputs
    with torch.no_grad(), capture(unet, HP) as a, capture(ldm_view(unet), "output_blocks.4.1") as b:
        run(unet, x, ctx)
    assert torch.equal(a.tokens[0], b.tokens[0])


def test_sae_that_does_not_fit_is_refused_before_running(unet):
    with pytest.raises(SAEMismatchError, match="reads 1280 channels"):
        with capture(unet, HP, sae=random_sae(d_in=1280, d_sae=8, k=2)):
            pass
    assert hook_count(unet) == 0


def test_add_direction_adds_exactly(unet, inputs):
    x, ctx = inputs
    d = torch.randn(32)
    with torch.no_grad():
        with capture(unet, HP) as before:
            run(unet, x, ctx)
        with edit(unet, HP, AddDirection(d, strength=torch.tensor([2.0, -1.0]))), capture(unet, HP) as after:
            out = run(unet, x, ctx)
    delta = after.tokens[0] - before.tokens[0]
    torch.testing.assert_close(delta[0], (2.0 * d).expand(256, -1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(delta[1], (-1.0 * d).expand(256, -1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, run(unet, x, ctx))
    assert hook_count(unet) == 0


def test_add_channel_and_disabled_edit(unet, inputs):
    x, ctx = inputs
    with torch.no_grad():
        with capture(unet, HP) as before:
            base = run(unet, x, ctx)
        steer = AddChannel(channel=5, value=3.0)
        with edit(unet, HP, steer), capture(unet, HP) as after:
            run(unet, x, ctx)
            steer.enabled = False
            same = run(unet, x, ctx)
    delta = after.tokens[0] - before.tokens[0]
    torch.testing.assert_close(delta[..., 5], torch.full((2, 256), 3.0), rtol=1e-5, atol=1e-5)
    assert delta[..., [c for c in range(32) if c != 5]].abs().max() < 1e-5
    assert torch.equal(same, base)


def test_edit_feature_preserves_the_error(unet, inputs):
    x, ctx = inputs
    sae = random_sae(d_in=32, d_sae=64, k=8)
    with torch.no_grad():
        with capture(unet, HP) as before:
            run(unet, x, ctx)
        tokens = before.tokens[0]
        # a no-op edit returns the block output unchanged, error term and all (not 2x̂ − x)
        torch.testing.assert_close(EditFeature(sae, 0, scale=1.0)(tokens), tokens)
        z = sae.encode(tokens)
        f = int(z.flatten(0, 1).count_nonzero(0).argmax())
        with edit(unet, HP, EditFeature(sae, f, scale=0.0)), capture(unet, HP) as after:
            run(unet, x, ctx)
        expect = tokens - z[..., f:f + 1] * sae.W_dec[f]
        torch.testing.assert_close(after.tokens[0], expect, rtol=1e-5, atol=1e-5)
        with edit(unet, HP, EditFeature(sae, f, clamp=5.0)), capture(unet, HP) as clamped:
            run(unet, x, ctx)
        torch.testing.assert_close(clamped.tokens[0], tokens + (5.0 - z[..., f:f + 1]) * sae.W_dec[f],
                                   rtol=1e-5, atol=1e-5)


def test_edit_on_cond_rows_only(unet, inputs):
    x, ctx = inputs
    with torch.no_grad():
        with capture(unet, HP) as before:
            run(unet, x, ctx)
        with edit(unet, HP, AddChannel(0, 1.0), rows="cond"), capture(unet, HP) as after:
            run(unet, x, ctx)
    assert torch.equal(after.tokens[0][0], before.tokens[0][0])
    torch.testing.assert_close(after.tokens[0][1, :, 0] - before.tokens[0][1, :, 0], torch.ones(256))


def test_run_to_block_stops_early_and_keeps_gradients(unet, inputs):
    x, ctx = inputs
    later_calls = []
    handle = unet.up_blocks[1].attentions[2].register_forward_hook(lambda *a: later_calls.append(1))
    try:
        z = x.clone().requires_grad_(True)
        out = run_to_block(unet, HP, z, 500, encoder_hidden_states=ctx)
        with torch.no_grad(), capture(unet, HP) as rec:
            run(unet, x, ctx)
    finally:
        handle.remove()
    assert later_calls == [1]  # only the full forward reached the later block
    torch.testing.assert_close(to_tokens(out)[0], rec.tokens[0])
    out[:, 3].mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    try:
        # blocks after the hook never ran, so they got no gradient; blocks before it did
        assert all(p.grad is None for p in unet.up_blocks[1].attentions[2].parameters())
        assert all(p.grad is None for p in unet.conv_out.parameters())
        assert unet.conv_in.weight.grad is not None
    finally:
        unet.zero_grad(set_to_none=True)


def test_hooks_removed_on_exception_and_flags_untouched(unet, inputs):
    x, ctx = inputs
    flags = [p.requires_grad for p in unet.parameters()]

    def broken(tokens):
        raise RuntimeError("edit failed")

    with pytest.raises(RuntimeError, match="edit failed"):
        with torch.no_grad(), capture(unet, HP), edit(unet, HP, broken):
            run(unet, x, ctx)
    with pytest.raises(KeyboardInterrupt):
        with capture(unet, HP):
            raise KeyboardInterrupt
    with pytest.raises(StopForward):
        with capture(unet, HP):
            raise StopForward(torch.zeros(1))
    assert hook_count(unet) == 0
    assert [p.requires_grad for p in unet.parameters()] == flags
