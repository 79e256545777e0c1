"""Stand-ins for the few ComfyUI pieces the nodes touch, shared by the node tests and the bad-input table: the pack
imported as ComfyUI imports it, a ModelPatcher over the tiny diffusers model (LDM-layout view), and the glue's
ComfyUI calls replaced; everything else is the real code."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
from comfy_api_standin import api_modules
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
    sys.modules.update(api_modules())
    spec = importlib.util.spec_from_file_location("comfyui_lvo", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    for name in [n for n in sys.modules if n == "comfyui_lvo" or n.startswith("comfyui_lvo.")]:
        sys.modules.pop(name)
    for name in ("comfy.samplers", "comfy_api", "comfy_api.v0_0_2"):
        sys.modules.pop(name, None)


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


def nodes_of(pack) -> dict[str, type]:
    """The pack's node classes by id, as ComfyUI gets them: from the V3 entry point's extension."""
    extension = asyncio.run(pack.comfy_entrypoint())
    return {cls.__name__: cls for cls in asyncio.run(extension.get_node_list())}  # named as its id


def run(pack, node_id: str, *args, **kwargs):
    """Call a node's V3 ``execute`` with positional values in schema order (as the UI lays out its inputs); the ui
    keys it sends must be those nodes/ui_protocol.py declares for it (what web/lvo.js prepares widgets for)."""
    cls = nodes_of(pack)[node_id]
    names = [i.id for i in cls.define_schema().inputs]
    out = cls.execute(**dict(zip(names, args)), **kwargs)
    declared = importlib.import_module(f"{pack.__name__}.nodes.ui_protocol").NODE_UI.get(node_id, ())
    assert set(out.ui or {}) <= set(declared), f"{node_id} sends ui keys {sorted(out.ui)}, declares {declared}"
    return out


# ------------------------------------------------------------------------------------------------ FLUX
class _ComfyDouble(torch.nn.Module):
    """ComfyUI's DoubleStreamBlock interface over a diffusers FLUX block: ``(img, txt)`` in and out."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, img, txt, vec, pe, attn_mask=None, transformer_options={}):
        txt, img = self.block(hidden_states=img, encoder_hidden_states=txt, temb=vec, image_rotary_emb=pe)
        return img, txt


class _ComfySingle(torch.nn.Module):
    """ComfyUI's SingleStreamBlock interface: one ``[txt; img]`` sequence in and out (diffusers' block joins the
    two parts itself, so any split of the sequence gives the same result)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x, vec, pe, attn_mask=None, transformer_options={}):
        txt, img = self.block(hidden_states=x, encoder_hidden_states=x[:, :0], temb=vec, image_rotary_emb=pe)
        return torch.cat([txt, img], dim=1)


class _ComfyFinal(torch.nn.Module):
    def __init__(self, norm, proj):
        super().__init__()
        self.norm, self.proj = norm, proj

    def forward(self, x, vec):
        return self.proj(self.norm(x, vec))


class ComfyFlux(torch.nn.Module):
    """ComfyUI's ``comfy.ldm.flux.model.Flux`` as the glue sees it — ``double_blocks`` returning ``(img, txt)``,
    ``single_blocks`` over one ``[txt; img]`` sequence, ``forward(x, timestep=σ, context, y, guidance,
    transformer_options)`` on spatial latents, DIFFUSION_MODEL wrappers around ``_forward`` — sharing the weights of
    a diffusers FluxTransformer2DModel, so both layouts compute the same numbers."""

    def __init__(self, transformer):
        super().__init__()
        t = transformer
        self.hidden_size, self.in_channels = t.inner_dim, t.config.in_channels
        self.params = types.SimpleNamespace(guidance_embed=bool(t.config.guidance_embeds))
        self.img_in, self.txt_in, self.time_text, self.pe_embedder = (t.x_embedder, t.context_embedder,
                                                                       t.time_text_embed, t.pos_embed)
        self.double_blocks = torch.nn.ModuleList(_ComfyDouble(b) for b in t.transformer_blocks)
        self.single_blocks = torch.nn.ModuleList(_ComfySingle(b) for b in t.single_transformer_blocks)
        self.final_layer = _ComfyFinal(t.norm_out, t.proj_out)

    def forward(self, x, timestep, context, y=None, guidance=None, ref_latents=None, control=None,
                transformer_options={}, **kwargs):
        wrappers = list(transformer_options.get("wrappers", []))
        args = (x, timestep, context, y, guidance, ref_latents, control, transformer_options)

        class Executor:  # ComfyUI's WrapperExecutor: each wrapper calls the next, the last one _forward
            def __init__(self, owner, rest):
                self.class_obj, self.rest = owner, rest

            def __call__(self, *a, **kw):
                if self.rest:
                    return self.rest[0](Executor(self.class_obj, self.rest[1:]), *a, **kw)
                return self.class_obj._forward(*a, **kw)

        return Executor(self, wrappers)(*args, **kwargs)

    def _forward(self, x, timestep, context, y=None, guidance=None, ref_latents=None, control=None,
                 transformer_options={}, **kwargs):
        from lvo_core.model.families.flux import image_ids, pack, unpack

        hw = (x.shape[-2] // 2, x.shape[-1] // 2)
        ids = torch.cat([torch.zeros(context.shape[1], 3), image_ids(hw)]).to(x)
        pe = self.pe_embedder(ids)
        t = timestep.to(x.dtype) * 1000
        vec = (self.time_text(t, guidance.to(x.dtype) * 1000, y) if self.params.guidance_embed
               else self.time_text(t, y))
        img, txt = self.img_in(pack(x)), self.txt_in(context)
        for block in self.double_blocks:
            img, txt = block(img=img, txt=txt, vec=vec, pe=pe, transformer_options=transformer_options)
        seq = torch.cat([txt, img], dim=1)
        for block in self.single_blocks:
            seq = block(seq, vec=vec, pe=pe, transformer_options=transformer_options)
        return unpack(self.final_layer(seq[:, txt.shape[1]:], vec), hw)


class FakeFluxSampling:
    """ComfyUI's ModelSamplingFlux: ``shift`` is μ (σ = e^μ / (e^μ + 1/t − 1)), 10 000 sigmas, timestep(σ) = σ."""

    def __init__(self, shift: float = 1.15):
        import math

        self.shift = shift
        t = torch.arange(1, 10001, dtype=torch.float64) / 10000
        self.sigmas = self.sigma(t).float()
        self._e = math.exp(shift)

    def sigma(self, timestep):
        import math

        return math.exp(self.shift) / (math.exp(self.shift) + (1 / timestep - 1))

    def timestep(self, sigma):
        return sigma


class FakeFluxPatcher(FakePatcher):
    """A ModelPatcher over :class:`ComfyFlux`: 16 latent channels, FLUX's latent format and flow sampling."""

    def __init__(self, transformer):
        self.unet = transformer
        fmt = types.SimpleNamespace(latent_channels=16, scale_factor=0.3611, shift_factor=0.1159)
        fmt.process_in = lambda x: (x - fmt.shift_factor) * fmt.scale_factor
        fmt.process_out = lambda x: x / fmt.scale_factor + fmt.shift_factor
        self.model = types.SimpleNamespace(diffusion_model=ComfyFlux(transformer), model_sampling=FakeFluxSampling(),
                                           latent_format=fmt, adm_channels=0)
        self.load_device = torch.device("cpu")
        self.wrappers = {}

    def clone(self):
        c = FakeFluxPatcher.__new__(FakeFluxPatcher)
        c.unet, c.model, c.load_device = self.unet, self.model, self.load_device
        c.wrappers = {k: {kk: list(vv) for kk, vv in v.items()} for k, v in self.wrappers.items()}
        return c


def flux_cond(tokens: int = 6, guidance: float | None = 3.5) -> list:
    """A FLUX CONDITIONING as ComfyUI's CLIPTextEncode (T5 tokens, pooled CLIP) + FluxGuidance make it."""
    g = torch.Generator().manual_seed(3)
    extra = {"pooled_output": torch.randn(1, 32, generator=g)}
    if guidance is not None:
        extra["guidance"] = guidance
    return [[torch.randn(1, tokens, 32, generator=g), extra]]


def fake_flux_sample(patcher, noise, positive, negative, latent, steps, cfg, sampler, scheduler, seed,
                     on_step=None):
    """ComfyUI's sampling for FLUX reduced to its essentials: Euler on the flow ODE over the model's σ, through
    the patched model's DIFFUSION_MODEL wrappers, cfg 1 (FLUX.1-dev is guidance-distilled)."""
    dm = patcher.model.diffusion_model
    ms = patcher.model.model_sampling
    sigmas = torch.tensor([ms.sigma(1 - i / steps) if i < steps else 0.0 for i in range(steps + 1)])
    wrappers = [w for ws in patcher.wrappers.get("diffusion_model", {}).values() for w in ws]
    context, extra = positive[0]
    x = noise * sigmas[0] + latent * (1 - sigmas[0])
    for i in range(steps):
        s = sigmas[i].reshape(1).expand(len(x)).float()
        opts = {"sigmas": s, "sample_sigmas": sigmas, "cond_or_uncond": [0], "wrappers": wrappers}
        with torch.no_grad():
            v = dm(x, s, context.expand(len(x), -1, -1), y=extra["pooled_output"].expand(len(x), -1),
                   guidance=torch.full((len(x),), float(extra.get("guidance", 3.5))), transformer_options=opts)
        x = x + (sigmas[i + 1] - sigmas[i]) * v
        if on_step is not None:
            on_step(i + 1, steps)
    return x
