"""Stand-ins for the few ComfyUI pieces the nodes touch, shared by the node tests and the bad-input table: the pack
imported as ComfyUI imports it, a ModelPatcher over the tiny diffusers model (LDM-layout view), and the glue's
ComfyUI calls replaced; everything else is the real code."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import ldm_view

from lvo_core.model.tiny import CharPromptEncoder, sd15_scheduler, tiny_vae

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pack():
    samplers = types.ModuleType("comfy.samplers")
    samplers.KSampler = types.SimpleNamespace(SAMPLERS=["euler", "ddim"], SCHEDULERS=["normal", "ddim_uniform"])
    comfy = sys.modules.setdefault("comfy", types.ModuleType("comfy"))
    comfy.samplers = samplers
    sys.modules["comfy.samplers"] = samplers
    spec = importlib.util.spec_from_file_location("comfyui_lvo", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    for name in [n for n in sys.modules if n == "comfyui_lvo" or n.startswith("comfyui_lvo.")]:
        sys.modules.pop(name)
    sys.modules.pop("comfy.samplers", None)


class FakeModelSampling:
    def __init__(self):
        ab = sd15_scheduler().alphas_cumprod.double()
        self.sigmas = ((1 - ab) / ab).sqrt().float()

    def timestep(self, sigma):
        return (self.sigmas - sigma).abs().argmin().float()


class FakePatcher:
    """Just enough of a ModelPatcher: model.diffusion_model (LDM layout), clone, wrappers, model_sampling."""

    def __init__(self, unet):
        self.unet = unet
        self.model = types.SimpleNamespace(diffusion_model=ldm_view(unet), model_sampling=FakeModelSampling(),
                                           latent_format=types.SimpleNamespace(latent_channels=4))
        self.load_device = torch.device("cpu")
        self.wrappers: dict = {}

    def clone(self):
        c = FakePatcher.__new__(FakePatcher)
        c.unet, c.model, c.load_device = self.unet, self.model, self.load_device
        c.wrappers = {k: {kk: list(vv) for kk, vv in v.items()} for k, v in self.wrappers.items()}
        return c

    def add_wrapper_with_key(self, kind, key, fn):
        self.wrappers.setdefault(kind, {}).setdefault(key, []).append(fn)

    def get_model_object(self, name):
        return getattr(self.model, name)


@pytest.fixture
def fake_comfy(monkeypatch, pack, unet):
    """Stand-ins for the glue functions that need ComfyUI; everything else is the real code."""
    glue = sys.modules["comfyui_lvo.nodes.comfy_glue"]
    core_backend = sys.modules["comfyui_lvo.lvo_core.model.backend"]
    patcher_ext = types.ModuleType("comfy.patcher_extension")
    patcher_ext.WrappersMP = types.SimpleNamespace(DIFFUSION_MODEL="diffusion_model")
    comfy = types.ModuleType("comfy")
    comfy.patcher_extension = patcher_ext
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.patcher_extension", patcher_ext)
    progress = []

    class Progress:
        def __init__(self, total, keep_partial=False):
            self.bar = types.SimpleNamespace(current=0, total=total)
            self.interrupt_seen = False

        def __call__(self, done, total, preview=None):
            self.bar.current, self.bar.total = done, total
            progress.append((done, total, None if preview is None else tuple(preview.shape)))

        def should_stop(self):
            return glue.interrupted()

    def backend(model, spec, vae, cond, shape, trainable=True):
        return core_backend.DiffusersBackend(unet, spec.hookpoint, scheduler=sd15_scheduler(), decoder=tiny_vae(),
                                             empty_context=cond[0][0], latent_shape=shape, reads=spec.reads)

    real_progress = glue.Progress
    monkeypatch.setattr(glue, "backend", backend)
    monkeypatch.setattr(glue, "Progress", Progress)
    monkeypatch.setattr(glue, "interrupted", lambda: False)
    monkeypatch.setattr(glue, "latent_in", lambda model, x: x * 0.18215)
    monkeypatch.setattr(glue, "latent_out", lambda model, x: x / 0.18215)
    return types.SimpleNamespace(glue=glue, progress=progress, patcher=FakePatcher(unet), real_progress=real_progress)


def empty_cond():
    return [[CharPromptEncoder()([""]), {}]]


def run(pack, node_id: str, *args, **kwargs):
    """Call a node's V3 ``execute`` with positional values in schema order (as the UI lays out its inputs)."""
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    names = [i.id for i in cls.define_schema().inputs]
    return cls.execute(**dict(zip(names, args)), **kwargs)
