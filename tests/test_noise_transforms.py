"""Schedule-matched noise against the schedulers' own add_noise; regularizers against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from lvo_core.lvo.transforms import (
    ROBUSTNESS_LEVELS,
    Augment,
    AugmentDraw,
    augment,
    blur_sigma,
    gaussian_blur,
    moment_penalty,
    radial_frequency,
    range_penalty,
    spectral_precondition,
    total_variation,
)
from lvo_core.model.noise import (
    add_noise,
    alphas_from_scheduler,
    alphas_from_sigmas,
    check_timesteps,
    step_noise,
)
from lvo_core.model.tiny import sd15_scheduler


# ---------------------------------------------------------------------------------------------- noise
@pytest.mark.parametrize("kind", ["ddim", "ddpm"])
def test_noise_matches_scheduler_add_noise(kind):
    sched = sd15_scheduler(kind)
    z, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 500, 999])
    expect = sched.add_noise(z, eps, t)
    torch.testing.assert_close(add_noise(z, t, alphas_from_scheduler(sched), eps), expect)
    torch.testing.assert_close(add_noise(z, [250], alphas_from_scheduler(sched), eps),
                               sched.add_noise(z, eps, torch.tensor([250] * 3)))


def test_sigma_table_gives_the_same_alphas():
    sched = sd15_scheduler()
    ab = sched.alphas_cumprod.double()
    sigmas = ((1 - ab) / ab).sqrt()  # ComfyUI's model_sampling.sigmas for an eps model
    torch.testing.assert_close(alphas_from_sigmas(sigmas), ab)
    assert 0.99 < float(ab[0]) < 1 and float(ab[999]) < 0.01  # SD1.5: nearly clean at 0, nearly noise at 999
    with pytest.raises(ValueError, match="non-negative"):
        alphas_from_sigmas(torch.tensor([-1.0]))


def test_timesteps_outside_the_schedule_are_refused():
    ab = alphas_from_scheduler(sd15_scheduler())
    assert check_timesteps([0, 999], ab).tolist() == [0, 999]
    with pytest.raises(ValueError, match="timestep 1000 is outside the schedule: valid timesteps are 0…999"):
        add_noise(torch.zeros(1, 4, 2, 2), [1000], ab, torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="must be integers"):
        check_timesteps(torch.tensor([1.5]), ab)


def test_step_noise_is_seeded_per_row_and_step():
    a = step_noise([1, 2], step=3, shape=(4, 5, 5))
    assert a.shape == (2, 4, 5, 5)
    torch.testing.assert_close(step_noise([2], 3, (4, 5, 5))[0], a[1])  # independent of batch neighbours
    assert not torch.equal(step_noise([1], 4, (4, 5, 5))[0], a[0])  # fresh every step
    assert not torch.equal(a[0], a[1])


# ---------------------------------------------------------------------------------------------- augmentations
def test_identity_and_jitter():
    z = torch.randn(2, 4, 8, 8)
    assert torch.equal(augment(z, AugmentDraw()), z)
    assert torch.equal(augment(z, AugmentDraw(dy=1, dx=-1)), torch.roll(z, (1, -1), (-2, -1)))


def test_rotation_by_90_degrees_moves_pixels_like_rot90():
    z = torch.zeros(1, 1, 8, 8)
    z[0, 0, 1, 5] = 1.0
    out = augment(z, AugmentDraw(angle=90.0))
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    # a positive angle turns the image counter-clockwise as displayed (row 0 at the top), like torch.rot90(k=1)
    torch.testing.assert_close(out, torch.rot90(z, k=1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_zoom_keeps_a_constant_image_constant_and_is_differentiable():
    z = torch.full((1, 2, 8, 8), 0.7, requires_grad=True)
    out = augment(z, AugmentDraw(scale=1.1, angle=0.0))
    torch.testing.assert_close(out, torch.full_like(out, 0.7))  # zoom-in never samples outside the image
    out.sum().backward()
    assert z.grad.abs().sum() > 0


def test_draws_are_seeded_and_within_ranges():
    aug = ROBUSTNESS_LEVELS["L2"]
    draws = [aug.draw(torch.Generator().manual_seed(s)) for s in range(200)]
    assert {d.dy for d in draws} == set(range(-8, 9))
    assert all(-15 <= d.angle <= 15 and 1 <= d.scale <= 1.2 for d in draws)
    assert aug.draw(torch.Generator().manual_seed(5)) == draws[5]
    assert ROBUSTNESS_LEVELS["L0"].is_identity and ROBUSTNESS_LEVELS["L1"] == Augment()
    with pytest.raises(ValueError):
        Augment(zoom=0.9)


# ---------------------------------------------------------------------------------------------- penalties
def test_penalties_by_hand():
    z = torch.zeros(2, 1, 3, 3)
    z[0, 0] = torch.tensor([[0., 1, 2], [0, 1, 2], [0, 1, 2]])  # |Δw| = 1 everywhere, Δh = 0
    z[1, 0, 1, 1] = 5.0
    tv = total_variation(z)
    assert tv[0].item() == pytest.approx(1.0)
    assert tv[1].item() == pytest.approx(2 * 5 / 6 + 2 * 5 / 6)  # two |5| steps of six, both directions
    rp = range_penalty(z)
    assert rp[0].item() == 0 and rp[1].item() == pytest.approx((5 - 3) ** 2 / 9)
    m = moment_penalty(z)
    flat = z[0].flatten()
    assert m[0].item() == pytest.approx(abs(flat.mean().item()) + abs(flat.std().item() - 1), rel=1e-6)


def test_penalties_do_not_couple_rows():
    z = torch.randn(2, 4, 6, 6, requires_grad=True)
    (total_variation(z)[0] + range_penalty(z * 3)[0] + moment_penalty(z)[0]).backward()
    assert z.grad[1].abs().sum() == 0 and z.grad[0].abs().sum() > 0


# ---------------------------------------------------------------------------------------------- gradient transforms
def test_spectral_preconditioning_weights_frequencies_by_hand():
    h = w = 8
    y = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    dc, wave = torch.ones(h, w, dtype=torch.float64), torch.cos(2 * math.pi * 2 * y / h)  # frequency (2, 0)
    grad = (0.5 * dc + wave)[None, None].clone()
    out = spectral_precondition(grad)
    shaped = 0.5 * dc + wave / 3  # weight 1/(r+1) with r = 2
    shaped = shaped * grad.std() / shaped.std()
    torch.testing.assert_close(out[0, 0], shaped, rtol=1e-6, atol=1e-8)
    assert radial_frequency(4, 4)[1, 1].item() == pytest.approx(math.sqrt(2))
    zero = torch.zeros(1, 1, 4, 4)
    assert torch.equal(spectral_precondition(zero), zero)


def test_blur_schedule_and_kernel():
    assert blur_sigma(0, 100, 0.5) == 0.5 and blur_sigma(99, 100, 0.5) == 0.0
    assert blur_sigma(33, 100, 0.5) == pytest.approx(0.5 * (1 - 33 / 99))
    g = torch.zeros(1, 2, 16, 16)
    g[0, 0, 8, 8] = 1.0
    assert torch.equal(gaussian_blur(g, 0.0), g)
    out = gaussian_blur(g, 0.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-6) and out[0, 1].abs().sum() == 0
    k1 = math.exp(-1 / (2 * 0.25))
    norm = sum(math.exp(-(i ** 2) / 0.5) for i in range(-4, 5))
    assert out[0, 0, 8, 9].item() == pytest.approx((1 / norm) * (k1 / norm), rel=1e-5)
    small = torch.randn(1, 1, 4, 4)
    assert gaussian_blur(small, 0.5).shape == small.shape  # replicate padding where reflect cannot reach
