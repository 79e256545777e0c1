"""Model families: knowledge of an architecture lives in its family module, and a new family touches one file.

The toy family below — a tiny denoiser with its own block layout, backend, tiny builder and reference config — is
defined here alone, registered for the tests that need it and unregistered afterwards; hookpoint lookup, the
backend seam, sampling, activity analysis, LVO and the model loader then work on it with nothing else edited.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from test_layers import imports
from torch import nn

from lvo_core.analysis.activity import analyze_activity
from lvo_core.commands.setup import backend_for, default_hookpoint, tiny_models, tiny_sae
from lvo_core.errors import HookpointError
from lvo_core.hookpoints import Hookpoint, Layout, equivalent_names, list_hookpoints, resolve_hookpoint, strip_prefix
from lvo_core.lvo.optimize import preset
from lvo_core.lvo.pipeline import visualize
from lvo_core.model.backend import ModuleBackend
from lvo_core.model.families import ModelFamily, family_of, register_family, unregister_family
from lvo_core.model.hooks import hook_count
from lvo_core.model.loading import LoadedModel, load_model
from lvo_core.model.memory import copy_sizes
from lvo_core.model.schedule import DDPMSchedule
from lvo_core.model.tiny import CharPromptEncoder, random_sae, sd15_scheduler

ROOT = Path(__file__).resolve().parents[1]
# the family modules; FLUX's block layout (the naming stage needs it before models exist) and the line of the
# naming stage's __init__ that imports it; ComfyUI's call adapter
FAMILY_CODE = {ROOT / "lvo_core" / "model" / "families", ROOT / "lvo_core" / "hookpoints" / "flux.py",
               ROOT / "lvo_core" / "hookpoints" / "__init__.py", ROOT / "nodes" / "comfy_backend.py"}
NAMED = ("flux", "sdxl", "adm_channels")


# ------------------------------------------------------------------------------------------------ the rule
def identifiers(tree: ast.AST) -> set[str]:
    """Every name the code itself uses (variables, attributes, definitions, arguments, keywords, imports); strings,
    docstrings and comments that merely name a family for the reader are not code."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.alias):
            found.update((node.name, node.asname or ""))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_code_outside_the_family_modules_names_a_family():
    offenders = {}
    for path in sorted([*(ROOT / "lvo_core").rglob("*.py"), *(ROOT / "nodes").rglob("*.py")]):
        if any(path == f or f in path.parents for f in FAMILY_CODE) or "weights" in path.parts:
            continue
        named = sorted(n for n in identifiers(ast.parse(path.read_text())) if any(w in n.lower() for w in NAMED))
        if named:
            offenders[str(path.relative_to(ROOT))] = named
    assert not offenders, f"family knowledge outside the family modules: {offenders}"


def test_the_model_stage_has_no_import_cycle():
    """Function-local imports count: the generic modules never import a family, the families import them."""
    core = ROOT / "lvo_core"
    graph = {}
    for path in [*(core / "hookpoints").rglob("*.py"), *(core / "model").rglob("*.py")]:
        me = ".".join(path.relative_to(core).with_suffix("").parts).removesuffix(".__init__")
        graph[me] = {t for t, _ in imports(path)}
    modules = set(graph)
    graph = {m: {t if t in modules else t.rsplit(".", 1)[0] for t in targets} & modules
             for m, targets in graph.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    assert not [m for m in graph if m in reach(m)]
    generic = ("hookpoints", "hookpoints.core", "model.backend", "model.hooks", "model.sampling", "model.schedule",
               "model.noise", "model.flow", "model.conditioning")
    family_modules = {m for m in modules if m.startswith("model.families")}
    assert {m: reach(m) & family_modules for m in generic} == {m: set() for m in generic}


# ------------------------------------------------------------------------------------------------ a toy family
class ToyNet(nn.Module):
    """A tiny ε-predicting denoiser: a stem, three residual ``mix`` blocks, a head; conditioned on the mean token."""

    def __init__(self, channels: int = 4, width: int = 16, context: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.time = nn.Linear(1, width)
        self.cond = nn.Linear(context, width)
        self.mix = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(3))
        self.head = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x, t, context):
        h = self.stem(x) + (self.time(t.float()[:, None] / 1000) + self.cond(context.mean(1)))[..., None, None]
        for block in self.mix:
            h = h + torch.tanh(block(h))
        return self.head(h)


class ToyLayout(Layout):
    describe = "a toy net (mix)"
    point_layouts = ("toy",)
    tail = ("head",)

    def owns(self, model):
        return isinstance(model, ToyNet)

    def hookpoints(self, model):
        return [Hookpoint(f"mix.{i}", f"mix.{i}", f"mix.{i}", m, 16, "block", layout="toy")
                for i, m in enumerate(model.mix)]

    def resolve(self, model, name, stream):
        found = [p for p in self.hookpoints(model) if p.diffusers_name == strip_prefix(name)]
        if not found:
            raise HookpointError(f"unknown hookpoint '{name}' on a toy net: mix.0…mix.{len(model.mix) - 1}")
        return found[0]

    def forward_order(self, diffusers_name):
        return (int(diffusers_name.split(".")[1]),)

    def spellings(self, name):
        return [name] if name.startswith("mix.") else None


class ToyBackend(ModuleBackend):
    def __init__(self, net, hookpoint, copy_weights=False, reads="output"):
        super().__init__(net, hookpoint, lambda m, x, t, c: m(x, t, c), DDPMSchedule(sd15_scheduler().alphas_cumprod),
                         decoder=lambda z: z[:, :3], empty_context=torch.zeros(1, 2, 8), latent_shape=(4, 8, 8),
                         copy_weights=copy_weights, reads=reads)
        self.encode_prompt = CharPromptEncoder(dim=8, length=2)


class ToyFamily(ModelFamily):
    name = "toy-net"
    tiny_name = "tiny-toy"
    layout = ToyLayout()
    reference = {"toy-net": (lambda: ToyNet(width=64), ("mix.0",), torch.float16)}

    def owns(self, model):
        return isinstance(model, ToyNet)

    def default_hookpoint(self, model):
        return "mix.1"

    def latent_shape(self, model):
        return 4, 8, 8

    def backend(self, model, hookpoint, reads="output"):
        return ToyBackend(model.denoiser, hookpoint, reads=reads)

    def tiny(self, device, dtype):
        return LoadedModel(ToyNet().to(device, dtype).eval(), None, None, CharPromptEncoder(dim=8, length=2),
                           self.tiny_name)

    def tiny_sae(self):
        return random_sae(d_in=16, d_sae=32, hookpoint="mix.1")


@pytest.fixture
def toy_family():
    family = register_family(ToyFamily())
    yield family
    unregister_family(family)


def test_a_new_family_is_one_registration(toy_family):
    net = ToyNet()
    assert family_of(net) is toy_family and [p.name for p in list_hookpoints(net)] == ["mix.0", "mix.1", "mix.2"]
    assert resolve_hookpoint(net, "unet.mix.2").module is net.mix[2] and equivalent_names("mix.1") == ["mix.1"]
    with pytest.raises(HookpointError, match=r"mix\.0…mix\.2"):
        resolve_hookpoint(net, "mix.7")
    model = load_model("tiny-toy")  # the loader knows it by its registration alone
    assert "tiny-toy" in tiny_models() and default_hookpoint(model.denoiser) == "mix.1"
    assert tiny_sae("tiny-toy").d_in == 16 and isinstance(backend_for(model, "mix.1"), ToyBackend)
    (row,) = copy_sizes("toy-net")  # the trainable copy leaves out mix.1, mix.2 and the head
    assert (row["model_params"], row["copy_params"]) == (116_164, 40_000)


def test_its_backend_samples_and_reads_its_blocks(toy_family):
    be = ToyBackend(ToyNet(), "mix.1")
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    tokens, hw = be.block_tokens(x, torch.tensor([500, 500]), be.empty_context(2))
    tokens.sum().backward()
    assert tokens.shape == (2, 64, 16) and hw == (8, 8) and x.grad.abs().sum() > 0
    copied = ToyBackend(ToyNet(), "mix.1", copy_weights=True)
    copied.block_tokens(x, torch.tensor([500, 500]), be.empty_context(2))
    assert copied.copy_bytes == 4 * (592 + 32 + 144 + 2 * 2320)  # stem, time, cond, mix.0 and mix.1 in fp32
    first = be.sample(be.empty_context(1), steps=3, seeds=[1, 2])
    assert first.shape == (2, 4, 8, 8) and torch.equal(first, be.sample(be.empty_context(1), steps=3, seeds=[1, 2]))
    alone = be.sample(be.empty_context(1), steps=3, seeds=[2])  # a row is its seed's, whatever shares its batch
    torch.testing.assert_close(first[1:], alone, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(first[0], first[1])


def test_activity_and_lvo_run_on_it(toy_family):
    be = ToyBackend(ToyNet(), "mix.1")
    analysis = analyze_activity(be, ["red", "blue", "green"], steps=3, guidance=2.0, top_n=4, batch_size=2)
    assert list(analysis.timesteps) == [999, 666, 332] and analysis.hookpoint == "mix.1"
    assert analysis.frequency.shape == (3, 16) and np.allclose(analysis.frequency.sum(1), 4)
    vis = visualize(be, [3, 5], timesteps=[300], seeds=[1], prior="random", config=preset("raw", steps=6),
                    batch_size=2)
    assert vis.complete and vis.images.shape == (2, 8, 8, 3) and hook_count(be.denoiser) == 0
    assert all(m["activation"] > m["prior_activation"] for m in vis.metrics)
