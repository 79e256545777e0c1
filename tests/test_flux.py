"""FLUX.1-shaped models: flow-matching noise, hookpoints in both namings, the backend, and LVO on top of it."""

from __future__ import annotations

import pytest
import torch

from lvo_core.model.flow import FlowMatchSchedule, dynamic_shift_mu, shift_from_config
from lvo_core.model.sampling import sample_with


# ------------------------------------------------------------------------------------------------ the schedule
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_schedule_is_diffusers_training_table_and_scale_noise(shift):
    from diffusers import FlowMatchEulerDiscreteScheduler

    schedule = FlowMatchSchedule(1000, shift)
    ref = FlowMatchEulerDiscreteScheduler(shift=shift)
    # t = 0 … 999 is diffusers' table read from the clean end; t = 999 is pure noise
    assert torch.allclose(schedule.sigmas.float(), ref.sigmas.flip(0))
    assert schedule.sigma([999]).item() == 1.0 and schedule.sigma([0]).item() == pytest.approx(
        shift * 0.001 / (1 + (shift - 1) * 0.001))
    g = torch.Generator().manual_seed(0)
    z, eps = torch.randn(3, 16, 4, 6, generator=g), torch.randn(3, 16, 4, 6, generator=g)
    t = torch.tensor([999, 500, 3])
    x = schedule.add_noise(z, t, eps)
    expected = ref.scale_noise(z, ref.timesteps[999 - t], eps)
    assert torch.allclose(x, expected, atol=1e-6)
    v = eps - z  # what FLUX predicts (diffusers' Euler step is x + (σ_next − σ)·v)
    assert torch.allclose(schedule.to_eps(v, x, t), eps, atol=1e-5)
    assert torch.equal(schedule.timestep_of(schedule.sigma(t)), t)
    assert schedule.describe() == {"kind": "flow", "timesteps": 1000, "shift": shift}
    assert schedule.signature() != FlowMatchSchedule(1000, shift + 0.5).signature()


def test_flux_dev_dynamic_shift_matches_its_scheduler_config():
    config = {"use_dynamic_shifting": True, "base_image_seq_len": 256, "max_image_seq_len": 4096,
              "base_shift": 0.5, "max_shift": 1.15, "shift": 3.0}
    assert dynamic_shift_mu(256) == pytest.approx(0.5) and dynamic_shift_mu(4096) == pytest.approx(1.15)
    assert shift_from_config(config, 4096) == pytest.approx(3.158192, abs=1e-6)  # 1024² px: e^1.15
    assert shift_from_config({"shift": 3.0}, 4096) == 3.0
    # diffusers' own resolution-dependent σ at μ equal the fixed-shift formula at s = e^μ
    from diffusers import FlowMatchEulerDiscreteScheduler

    dyn = FlowMatchEulerDiscreteScheduler(**config)
    dyn.set_timesteps(sigmas=[0.9, 0.5, 0.1], mu=1.15)
    fixed = FlowMatchSchedule(1000, shift_from_config(config, 4096))
    assert torch.allclose(dyn.sigmas[:3].double(), fixed.sigma([899, 499, 99]), atol=1e-6)


def test_flow_sampler_steps_on_training_timesteps_and_lands_on_the_data():
    schedule = FlowMatchSchedule(1000, 3.0)
    sampler = schedule.sampler()
    sampler.set_timesteps(10)
    t = sampler.timesteps
    assert t.dtype == torch.float32 and torch.equal(t, t.round()) and t[0] == 999
    assert torch.allclose(sampler.sigmas[:-1].double(), schedule.sigma(t.long()), atol=1e-6)
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler(shift=3.0)
    ref.set_timesteps(10)
    assert (sampler.sigmas - ref.sigmas).abs().max() < 2e-3  # diffusers' spacing, rounded to training steps
    # with the exact velocity of one data point, Euler on the straight path ends on it
    z = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(1))

    def oracle(x, timesteps, _context):
        return (x - z) / schedule.sigma(timesteps.long(), x).reshape(-1, 1, 1, 1)

    out = sample_with(oracle, schedule.sampler(), torch.zeros(1, 1, 1), steps=6, seeds=[0, 1],
                      latent_shape=(16, 4, 4))
    assert torch.allclose(out, z, atol=1e-4)
