"""Node classes without ComfyUI: the pack is imported as ComfyUI imports it, the glue's few ComfyUI calls are
replaced by stand-ins over the tiny diffusers model (LDM-layout view), and the core runs for real."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from comfy_api_standin import api_modules
from comfy_standins import empty_cond, nodes_of, run

from lvo_core.hookpoints import resolve_hookpoint
from lvo_core.lvo.priors import PriorTable
from lvo_core.model.tiny import random_sae

ROOT = Path(__file__).resolve().parents[1]


def ldm_point(patcher, name: str = "output_blocks.4.1"):
    return resolve_hookpoint(patcher.model.diffusion_model, name)


def test_every_node_is_registered_with_tooltips(pack):
    """Same node ids as the V1 pack (saved workflows keep loading); every input and output has a tooltip."""
    nodes = nodes_of(pack)
    assert set(nodes) == {"LVOSAELoader", "LVOFeatureHook", "LVOActivityAnalysis", "LVODatasetExamples", "LVOSteering",
                   "LVOSteeringInit", "LVOOptimize", "LVOFeatureGrid", "LVOSampleBank", "LVOFaithful",
                   "LVOFeatureSearch", "LVOFeaturePage", "LVOLabelSearch"}
    for node_id, cls in nodes.items():
        schema = cls.define_schema()
        assert schema.node_id == node_id == cls.__name__ and schema.display_name
        assert schema.category.startswith("LVO") and schema.description and callable(cls.execute)
        for item in schema.inputs + schema.outputs:
            assert item.tooltip, f"{node_id}.{item.id or item.display_name} has no tooltip"
        assert all(o.display_name for o in schema.outputs)
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(schema.outputs)
    assert "bcywinski/SAeUron" in nodes["LVOSAELoader"].INPUT_TYPES()["required"]["sae_name"][1][
        "tooltip"]


def test_a_node_returns_what_comfyui_v3_expects(pack):
    cls = nodes_of(pack)["LVOFeatureGrid"]
    out = cls.execute(images=torch.rand(2, 32, 32, 3), cell=32)
    assert out.ui is None and out.args[0].shape[0] == 1 and cls.RETURN_TYPES == ("IMAGE",)


def test_the_pack_exports_only_the_v3_entry_point(monkeypatch):
    """A package that defines NODE_CLASS_MAPPINGS is loaded as V1 and its comfy_entrypoint ignored: the pack must
    define the entry point and nothing else."""
    for name, module in api_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    io_module = sys.modules["comfy_api.v0_0_2"].io
    pkg = importlib.util.spec_from_file_location("lvo_v3", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(pkg)
    sys.modules["lvo_v3"] = module
    try:
        pkg.loader.exec_module(module)
        assert not hasattr(module, "NODE_CLASS_MAPPINGS") and module.WEB_DIRECTORY == "./web"
        extension = asyncio.run(module.comfy_entrypoint())
        assert isinstance(extension, io_module.ComfyExtension)
        nodes = asyncio.run(extension.get_node_list())
        assert [n.__name__ for n in nodes][:2] == ["LVOSAELoader", "LVOFeatureHook"] and len(nodes) == 13
        assert all(issubclass(n, io_module.ComfyNode) for n in nodes)
    finally:
        for name in [n for n in sys.modules if n == "lvo_v3" or n.startswith("lvo_v3.")]:
            sys.modules.pop(name)


def test_feature_hook_validates_against_the_model(fake_comfy, pack):
    sae = random_sae(d_in=32)
    out = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3, 10-12", "output_blocks.4.1", sae)
    spec = out.args[0]
    assert spec.units == (3, 10, 11, 12) and spec.hookpoint == "up_blocks.1.attentions.1" and spec.kind == "sae"
    raw = run(pack, "LVOFeatureHook", fake_comfy.patcher, "5", "", None).args[0]
    assert raw.kind == "raw" and raw.channels == 32
    from lvo_core.errors import SAEMismatchError, UnitError

    with pytest.raises(Exception, match="reads 64 channels") as err:
        run(pack, "LVOFeatureHook", fake_comfy.patcher, "1", "", random_sae(d_in=64))
    assert type(err.value).__name__ == SAEMismatchError.__name__
    with pytest.raises(Exception, match="out of range") as err:
        run(pack, "LVOFeatureHook", fake_comfy.patcher, "999", "", sae)
    assert type(err.value).__name__ == UnitError.__name__
    with pytest.raises(Exception, match="cannot read unit 'x'"):
        run(pack, "LVOFeatureHook", fake_comfy.patcher, "1, x", "", sae)


def test_block_wrapper_edits_cond_rows_only_while_running(fake_comfy, pack, unet):
    glue = fake_comfy.glue
    view = fake_comfy.patcher.model.diffusion_model
    x, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 6, 32)
    seen = []

    def edit(tokens, t, progress):
        seen.append((tokens.shape[0], t, round(progress, 3)))
        return tokens + 1.0

    patched = glue.add_block_edit(fake_comfy.patcher, ldm_point(fake_comfy.patcher), edit, apply_to="cond")
    wrapper = patched.wrappers["diffusion_model"]["lvo"][0]
    assert "diffusion_model" not in fake_comfy.patcher.wrappers  # the input model is untouched

    class Executor:
        class_obj = view

        def __call__(self, *args, **kwargs):
            return unet(args[0], args[1], encoder_hidden_states=args[2]).sample

    sigmas = fake_comfy.patcher.model.model_sampling.sigmas
    opts = {"sigmas": sigmas[500:501], "cond_or_uncond": [1, 0], "sample_sigmas": sigmas[[999, 500, 0]]}
    with torch.no_grad():
        edited = wrapper(Executor(), x, torch.tensor([500, 500]), ctx, None, None, opts)
        plain = unet(x, 500, encoder_hidden_states=ctx).sample
    assert seen == [(1, 500, 1.0)]  # one cond row, timestep from sigma, progress along the schedule
    assert torch.equal(edited[0], plain[0]) and not torch.allclose(edited[1], plain[1])
    from lvo_core.model.hooks import hook_count

    assert hook_count(unet) == 0


def test_lvo_optimize_node(fake_comfy, pack):
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3, 8", "", random_sae(d_in=32)).args[0]
    node = "LVOOptimize"
    empty_latent = {"samples": torch.zeros(1, 4, 16, 16)}
    out = run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), empty_latent, "0, 300", "auto", 4, 0.05,
                        "1, 2", "dense", "L1", True, 3, "fp32", 2)
    latent, images, text = out.args
    report = json.loads(text)
    assert latent["samples"].shape == (8, 4, 16, 16) and images.shape == (8, 32, 32, 3)
    assert report["complete"] and [m["label"] for m in report["metrics"]][:2] == ["feature 3", "feature 3"]
    assert report["config"]["moment_weight"] == 0.5 and out.ui["lvo_metrics"] == [text]
    assert report["name"] == "optimize from random start"
    previews = [p for p in fake_comfy.progress if p[2] is not None]
    assert previews and previews[0][2][1:] == (32, 32, 3)
    assert fake_comfy.progress[-1][:2] == (48, 48)  # 8 rows × (4 steps + measuring + decoding)
    # a Steering Init LATENT wired into 'latent', as workflows saved before the LVO_PRIOR socket do
    prior = {"samples": torch.randn(4, 4, 16, 16), "lvo_prior": {"rows": [[3, 1], [3, 2], [8, 1], [8, 2]]}}
    from_prior = run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), prior, "0", "sae", 2, 0.05, "1, 2",
                               "dense", "L0", False, 0, "auto", 0).args[0]
    assert from_prior["samples"].shape == (4, 4, 16, 16)
    with pytest.raises(Exception, match="no latent for unit 3, seed 5; give Steering Init the same units"):
        run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), prior, "0", "sae", 2, 0.05, "5", "dense",
                      "L0", False, 8, "fp32", 0)
    # the LVO_PRIOR socket gives the same start as the legacy LATENT (its latents already in model space)
    table = PriorTable([(3, 1), (3, 2), (8, 1), (8, 2)], prior["samples"] * 0.18215, label="steering init")
    socket = run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), None, "0", "sae", 2, 0.05, "1, 2",
                 "dense", "L0", False, 0, "auto", 0, prior=table)
    torch.testing.assert_close(socket.args[0]["samples"], from_prior["samples"])
    assert json.loads(socket.args[2])["name"] == "optimize from steering init"
    with pytest.raises(Exception, match="needs a start: wire Steering Init's prior"):
        run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), None, "0", "sae", 2, 0.05, "1", "dense",
            "L0", False, 0, "auto", 0)
    with pytest.raises(Exception, match="needs an activity analysis"):
        run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), empty_latent, "peaks", "sae", 2, 0.05, "1",
                      "dense", "L1", True, 8, "fp32", 0)


class Interrupted(Exception):
    """Stand-in for comfy.model_management.InterruptProcessingException."""


@pytest.fixture
def host(fake_comfy, monkeypatch, tmp_path):
    """ComfyUI's real interrupt path: the progress hook raises (clearing the flag), the server sends messages."""
    glue = fake_comfy.glue
    monkeypatch.setattr(glue, "Progress", fake_comfy.real_progress)
    state = {"flag": False, "raise_at": None, "sent": []}

    class ProgressBar:
        def __init__(self, total):
            self.current, self.total = 0, total

        def update_absolute(self, value, total=None, preview=None):
            self.current = value
            if state["raise_at"] is not None and value >= state["raise_at"]:
                state["raise_at"] = None
                raise Interrupted()

    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.InterruptProcessingException = Interrupted
    mm.processing_interrupted = lambda: state["flag"]
    monkeypatch.setattr(glue, "interrupted", lambda: bool(mm.processing_interrupted()))
    folders = types.ModuleType("folder_paths")
    folders.get_output_directory = lambda: str(tmp_path)
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        client_id="c1", send_sync=lambda event, data, client: state["sent"].append((event, data, client))))
    context = types.ModuleType("comfy_execution.utils")
    context.get_executing_context = lambda: types.SimpleNamespace(node_id="6", prompt_id="p1")
    for name, module in {"comfy.utils": utils, "comfy.model_management": mm, "folder_paths": folders,
                         "server": server, "comfy_execution": types.ModuleType("comfy_execution"),
                         "comfy_execution.utils": context}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys.modules["comfy"], "utils", utils, raising=False)
    monkeypatch.setattr(sys.modules["comfy"], "model_management", mm, raising=False)
    monkeypatch.setattr(sys.modules["comfy_execution"], "utils", context, raising=False)
    return types.SimpleNamespace(state=state, out=tmp_path)


@pytest.mark.parametrize("where", ["progress hook", "stop check"])
def test_interrupt_keeps_the_partial_result(fake_comfy, pack, host, monkeypatch, where):
    """ComfyUI raises its interrupt inside the progress hook (clearing the flag), or the node's stop check sees the
    flag first: either way the run ends between steps, the finished images and metrics are saved and shown on the
    node, and the prompt then ends as interrupted (ComfyUI keeps no outputs of an interrupted prompt)."""
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3, 8", "", None).args[0]
    released = []
    backend = fake_comfy.glue.backend

    def tracked(*args, **kwargs):
        b = backend(*args, **kwargs)
        release = b.release
        b.release = lambda: released.append(1) or release()
        return b

    monkeypatch.setattr(fake_comfy.glue, "backend", tracked)
    if where == "progress hook":
        host.state["raise_at"] = 5
    else:
        calls = []
        monkeypatch.setattr(fake_comfy.glue, "interrupted", lambda: calls.append(1) or len(calls) > 2)
    with pytest.raises(Interrupted):
        run(pack, "LVOOptimize", fake_comfy.patcher, None, spec, empty_cond(), {"samples": torch.zeros(1, 4, 16, 16)},
            "0", "auto", 300, 0.05, "1", "dense", "L1", True, 8, "fp32", 0)
    assert released == [1]
    saved = sorted(p.name for p in (host.out / "lvo_interrupted").iterdir())
    assert len([n for n in saved if n.endswith(".png")]) == 2 and any(n.endswith("_metrics.json") for n in saved)
    ((event, data, client),) = host.state["sent"]
    assert event == "executed" and client == "c1" and data["node"] == "6" and data["prompt_id"] == "p1"
    report = json.loads(data["output"]["lvo_metrics"][0])
    assert report["interrupted"] and not report["complete"] and len(report["metrics"]) == 2
    assert [i["subfolder"] for i in data["output"]["images"]] == ["lvo_interrupted"] * 2


def test_lvo_optimize_releases_its_copy_when_it_fails(fake_comfy, pack, host, monkeypatch):
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3", "", None).args[0]
    released = []
    backend = fake_comfy.glue.backend

    def tracked(*args, **kwargs):
        b = backend(*args, **kwargs)
        b.release = lambda: released.append(1)
        return b

    def failing(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(fake_comfy.glue, "backend", tracked)
    monkeypatch.setattr(sys.modules["comfyui_lvo.nodes.lvo_nodes"], "build_run", failing)
    node = "LVOOptimize"
    with pytest.raises(RuntimeError, match="out of memory"):
        run(pack, node, fake_comfy.patcher, None, spec, empty_cond(), {"samples": torch.zeros(1, 4, 16, 16)}, "0",
                      "auto", 3, 0.05, "1", "dense", "L1", True, 8, "fp32", 0)
    assert released == [1]


def test_dataset_examples_node(fake_comfy, pack, monkeypatch):
    monkeypatch.setattr(fake_comfy.glue, "encode_images",
                        lambda vae, images: torch.nn.functional.avg_pool2d(images.movedim(-1, 1), 4)[:, :3]
                        .repeat(1, 2, 1, 1)[:, :4])
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3", "", random_sae(d_in=32))
    spec = spec.args[0]
    node = "LVODatasetExamples"
    images = torch.rand(5, 64, 64, 3)
    examples, grid, ranking = run(pack, node, fake_comfy.patcher, None, images, spec, empty_cond(), -1, 200, 3, 0,
                                        prompts="a\nb\nc\nd\ne")
    data = json.loads(ranking)
    scores = [e["score"] for e in data["examples"]]
    assert examples.shape == (3, 64, 64, 3) and grid.ndim == 4 and scores == sorted(scores, reverse=True)
    assert data["unit"] == 3 and data["timestep"] == 200 and data["examples"][0]["prompt"] in "abcde"
    with pytest.raises(Exception, match="multiples of 8"):
        run(pack, node, fake_comfy.patcher, None, torch.rand(2, 60, 64, 3), spec, empty_cond(), -1, 200, 3, 0)
    with pytest.raises(Exception, match=r"IMAGE batch \[B, H, W, 3\]"):
        run(pack, node, fake_comfy.patcher, None, torch.rand(2, 64, 64), spec, empty_cond(), -1, 200, 3, 0)
    with pytest.raises(Exception, match="not in the selection"):
        run(pack, node, fake_comfy.patcher, None, images, spec, empty_cond(), 7, 200, 3, 0)


def test_steering_node_schedule_errors_and_patch(fake_comfy, pack):
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3", "", random_sae(d_in=32))
    spec = spec.args[0]
    node = "LVOSteering"
    (patched,) = run(pack, node, fake_comfy.patcher, spec, "add", 5.0, 0.0, "window", 0.0, 0.5, "both")
    assert "lvo" in patched.wrappers["diffusion_model"] and not fake_comfy.patcher.wrappers
    with pytest.raises(Exception, match="needs an activity analysis"):
        run(pack, node, fake_comfy.patcher, spec, "add", 5.0, 0.0, "active", 0.0, 1.0, "both")
    with pytest.raises(Exception, match="strength 0 means"):
        run(pack, node, fake_comfy.patcher, spec, "add", 0.0, 0.0, "window", 0.0, 1.0, "both")


def test_feature_grid(pack):
    node = "LVOFeatureGrid"
    images = torch.rand(4, 32, 32, 3)
    metrics = json.dumps({"metrics": [{"unit": u, "timestep": t, "ratio": 1.5, "activation": 2.0}
                                      for u in (1, 2) for t in (0, 500)]})
    (grid,) = run(pack, node, images, 64, metrics)
    assert grid.shape[0] == 1 and grid.shape[-1] == 3 and grid.shape[1] > 2 * 64  # two lines of tiles + captions
    atlas = json.dumps({"metrics": [{"unit": u, "timestep": 0, "ratio": None, "activation": 1.0} for u in range(4)]})
    (square,) = run(pack, node, images, 64, atlas)
    line = json.dumps({"metrics": [{"unit": 1, "timestep": t, "ratio": None, "activation": 1.0} for t in range(4)]})
    (one,) = run(pack, node, images, 64, line)
    assert 64 < square.shape[1] - one.shape[1] < 2 * 64  # 4 single-image units wrap into 2 × 2 (one line more
    # than a unit's 4 images side by side), not one column of 4
    with pytest.raises(Exception, match="4 images but 1 metric rows"):
        run(pack, node, images, 64,
            json.dumps({"metrics": [{"unit": 1, "timestep": 0, "ratio": None, "activation": 1}]}))


def test_routes_validate_and_never_leak_tracebacks(pack, tmp_path):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    routes = importlib.import_module("comfyui_lvo.nodes.routes")

    def describe(name, hookpoint):
        if name == "broken":
            raise sys.modules["comfyui_lvo.lvo_core.errors"].SAEFormatError("corrupt file")
        if name == "bug":
            raise KeyError("internal")
        return {"d_in": 32}

    async def scenario():
        app = web.Application()
        app.add_routes(routes.handlers(lambda: ["ok", "broken", "bug"], describe))
        async with TestClient(TestServer(app)) as client:
            results = {}
            for query in ("name=ok", "name=broken", "name=bug", "name=..%2F..%2Fetc%2Fpasswd", "", "name=" + "x" * 600,
                          "name=ok%00"):
                resp = await client.get("/lvo/sae_info?" + query)
                results[query[:12]] = (resp.status, await resp.json())
            listing = await (await client.get("/lvo/saes")).json()
            return results, listing

    results, listing = asyncio.run(scenario())
    assert results["name=ok"] == (200, {"d_in": 32}) and listing == {"saes": ["ok", "broken", "bug"]}
    assert results["name=bug"] == (500, {"error": "internal error (KeyError)"})
    assert results["name=broken"][0] == 422 and "corrupt file" in results["name=broken"][1]["error"]
    assert results["name=..%2F.."][0] == 404
    assert results[""][0] == 400 and results["name=xxxxxxx"][0] == 400 and results["name=ok%00"][0] == 400


def test_two_steered_clones_never_see_each_others_patches(fake_comfy, pack, unet):
    """Two prompts in the queue steering the same model differently: each wrapper acts only on its own call."""
    glue = fake_comfy.glue
    view = fake_comfy.patcher.model.diffusion_model
    x, ctx = torch.randn(1, 4, 16, 16), torch.randn(1, 6, 32)
    a = glue.add_block_edit(fake_comfy.patcher, ldm_point(fake_comfy.patcher), lambda tk, t, p: tk + 1.0)
    b = glue.add_block_edit(fake_comfy.patcher, ldm_point(fake_comfy.patcher), lambda tk, t, p: tk - 1.0)

    class Executor:
        class_obj = view

        def __call__(self, *args, **kwargs):
            return unet(args[0], args[1], encoder_hidden_states=args[2]).sample

    def call(patched):
        opts = {"sigmas": fake_comfy.patcher.model.model_sampling.sigmas[300:301], "cond_or_uncond": [0]}
        wrappers = patched.wrappers.get("diffusion_model", {}).get("lvo", [])
        with torch.no_grad():
            return wrappers[0](Executor(), x, torch.tensor([300]), ctx, None, None, opts) if wrappers else \
                Executor()(x, torch.tensor([300]), ctx)

    plain, only_a, only_b = call(fake_comfy.patcher), call(a), call(b)
    interleaved = [call(a), call(b), call(fake_comfy.patcher), call(a)]
    assert not torch.allclose(only_a, plain) and not torch.allclose(only_b, plain)
    assert torch.equal(interleaved[0], only_a) and torch.equal(interleaved[1], only_b)
    assert torch.equal(interleaved[2], plain) and torch.equal(interleaved[3], only_a)
    assert len(a.wrappers["diffusion_model"]["lvo"]) == len(b.wrappers["diffusion_model"]["lvo"]) == 1
    assert not fake_comfy.patcher.wrappers


def test_sae_folders_follow_symlinks_and_extra_paths_to_readable_saes_only(pack, tmp_path):
    from lvo_core.sae import save_sae

    folders = importlib.import_module("comfyui_lvo.nodes.sae_folders")
    models, shared, extra = tmp_path / "models_sae", tmp_path / "shared", tmp_path / "extra"
    for d in (models, shared, extra):
        d.mkdir()
    save_sae(random_sae(d_in=32), shared / "SAeUron" / "unet.up_blocks.1.attentions.1",
             hookpoint="unet.up_blocks.1.attentions.1")
    save_sae(random_sae(d_in=32), extra / "mine")
    (models / "SAeUron").symlink_to(shared / "SAeUron")  # shared by a symlink
    (models / "etc").symlink_to("/etc")                    # not an SAE: never listed, never walked as one
    (models / "dangling").symlink_to(tmp_path / "gone")
    (models / "loop").symlink_to(models)
    (shared / "secret.txt").write_text("x")
    roots = [models, extra]
    names = folders.list_names(roots)
    assert names == ["SAeUron", "SAeUron/unet.up_blocks.1.attentions.1", "mine"]
    assert folders.resolve(roots, "SAeUron") == (shared / "SAeUron").resolve()
    assert folders.resolve(roots, "mine") == (extra / "mine").resolve()
    for bad in ("../shared/SAeUron", "/etc/passwd", "etc/passwd", "SAeUron/../../shared", "", "a\x00b", "etc"):
        assert folders.resolve(roots, bad) is None, bad
    message = f"{shared / 'SAeUron'}/cfg.json is broken; also {models}/x and {extra}"
    text = folders.relative_message(message, roots, "SAeUron", (shared / "SAeUron").resolve())
    assert str(tmp_path) not in text and text.startswith("SAeUron/cfg.json is broken") and "x and models/sae" in text


def test_sae_info_errors_name_paths_relative_to_models_sae(pack):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    routes = importlib.import_module("comfyui_lvo.nodes.routes")
    errors = sys.modules["comfyui_lvo.lvo_core.errors"]

    def describe(name, hookpoint):
        raise errors.SAEFormatError(f"/srv/comfy/models/sae/{name} holds no SAE this pack can read")

    async def scenario():
        app = web.Application()
        app.add_routes(routes.handlers(lambda: ["bad"], describe,
                                       lambda text, name: text.replace("/srv/comfy/models/sae/", "")))
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/lvo/sae_info?name=bad")
            return resp.status, await resp.json()

    status, body = asyncio.run(scenario())
    assert status == 422 and body == {"error": "bad holds no SAE this pack can read"}


def test_sample_bank_and_faithful_nodes(fake_comfy, pack):
    """The faithful recipe in ComfyUI: one bank, each row starts from its unit's k-th best pool image at t = 200."""
    sae = random_sae(d_in=32)
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3, 8", "", sae).args[0]
    bank = run(pack, "LVOSampleBank", fake_comfy.patcher, spec, empty_cond(), {"samples": torch.zeros(1, 4, 16, 16)},
               6, 2, 1 << 20, "").args[0]
    assert bank.size == 6 and fake_comfy.progress[-1][:2] == (12, 12)  # 6 samples × 2 denoising steps
    faithful = "LVOFaithful"
    latent, images, text = run(pack, faithful, fake_comfy.patcher, None, spec, empty_cond(), bank, "1, 2", "200", 2,
                               "fp32").args
    report = json.loads(text)
    assert latent["samples"].shape == (4, 4, 16, 16) and images.shape == (4, 32, 32, 3) and report["complete"]
    assert {m["timestep"] for m in report["metrics"]} == {200} and report["recipe"]["name"] == "faithful"
    selected = run(pack, faithful, fake_comfy.patcher, None, spec, empty_cond(), bank, "1, 2", "", 0, "auto").args[0]
    order = bank.top(3, 200, 2, sae)  # polish 0: exactly the unit's two best pool images (in LATENT space)
    torch.testing.assert_close(selected["samples"][:2], bank.latents[order] / 0.18215)
    other = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3", "", random_sae(d_in=32, seed=9)).args[0]
    run(pack, faithful, fake_comfy.patcher, None, other, empty_cond(), bank, "1", "200", 1, "fp32")
    assert len({key[2] for key in bank.scores}) == 2  # another SAE's scores are its own, kept apart
    assert bank.top(3, 200, 2, sae) == order
    with pytest.raises(Exception, match="one timestep or 'peak'"):
        run(pack, faithful, fake_comfy.patcher, None, spec, empty_cond(), bank, "1", "0, 500", 1, "fp32")


def test_feature_page_node(fake_comfy, pack, monkeypatch, tmp_path):
    """The page of one feature from a bank and a faithful run: the card in the node's ui, every shown image saved to
    the temp folder the frontend reads, the numbers those of the core card."""
    monkeypatch.setattr(fake_comfy.glue, "temp_directory", lambda: tmp_path)
    sae = random_sae(d_in=32)
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3, 8", "", sae).args[0]
    bank = run(pack, "LVOSampleBank", fake_comfy.patcher, spec, empty_cond(), {"samples": torch.zeros(1, 4, 16, 16)},
               6, 2, 1 << 20, "").args[0]
    _, images, metrics = run(pack, "LVOFaithful", fake_comfy.patcher, None, spec, empty_cond(), bank, "1, 2", "200",
                             0, "fp32").args
    out = run(pack, "LVOFeaturePage", fake_comfy.patcher, None, spec, empty_cond(), -1, 4, 200, 5, None, None, bank,
              images, metrics)
    text, page = out.args
    card = json.loads(text)
    assert out.ui == {"lvo_feature": [text]} and card["label"] == "feature 3" and card["activity"] is None
    assert sum(card["bank"]["histogram"]["counts"]) == 6 and len(card["bank"]["histogram"]["counts"]) == 5
    assert [e["index"] for e in card["bank"]["top"]] == bank.top(3, 200, 4, sae)
    (faithful,) = card["visualizations"]
    assert faithful["name"] == "faithful" and [r["row"] for r in faithful["rows"]] == [0, 1]
    assert [r["pool_index"] for r in faithful["rows"]] == bank.top(3, 200, 2, sae)
    refs = [e["image"] for e in card["bank"]["top"]] + [r["image"] for r in faithful["rows"]]
    assert len(refs) == 6 and all(r["type"] == "temp" and (tmp_path / r["subfolder"] / r["filename"]).is_file()
                                  for r in refs)
    assert page.ndim == 4 and page.shape[0] == 1 and page.shape[-1] == 3 and page.shape[1] > 200
    with pytest.raises(Exception, match="no metrics"):
        run(pack, "LVOFeaturePage", fake_comfy.patcher, None, spec, empty_cond(), 3, 4, 200, 5, None, None, None,
            images, None)
    with pytest.raises(Exception, match="not the metrics JSON"):
        run(pack, "LVOFeaturePage", fake_comfy.patcher, None, spec, empty_cond(), 3, 4, 200, 5, None, None, None,
            None, "{oops")


def test_cli_and_faithful_node_rows_carry_the_same_fields(fake_comfy, pack, tmp_path, capsys):
    """One run builder: `visualize` on the tiny model and LVO Faithful on the same model, SAE, bank, units and seeds
    give rows with the same fields — the bank start's pool_index and the fallback note included — and the same
    numbers; the node adds only the unit's display label."""
    from lvo_core.cli import main

    out, bank_dir = tmp_path / "cli", tmp_path / "bank"
    assert main(["visualize", "--model", "tiny", "--units", "3,8", "--seeds", "1,2", "--bank", str(bank_dir),
                 "--bank-size", "4", "--select-t", "peak", "--steps", "2", "--device", "cpu",
                 "--out", str(out)]) == 0
    cli_rows = json.loads((out / "result.json").read_text())["metrics"]
    bank = sys.modules["comfyui_lvo.lvo_core.analysis.bank"].SampleBank.load(bank_dir)
    spec = run(pack, "LVOFeatureHook", fake_comfy.patcher, "3, 8", "", random_sae()).args[0]
    text = run(pack, "LVOFaithful", fake_comfy.patcher, None, spec, empty_cond(), bank, "1, 2", "peak", 2,
               "fp32").args[2]
    node_rows = json.loads(text)["metrics"]
    assert len(cli_rows) == len(node_rows) == 4
    for cli, node in zip(cli_rows, node_rows):
        assert set(node) == set(cli) | {"label"}, set(node) ^ set(cli)
        assert {k: cli[k] for k in ("unit", "seed", "timestep", "pool_index", "note")} == \
               {k: node[k] for k in ("unit", "seed", "timestep", "pool_index", "note")}
        assert "fallback timestep t = 200" in cli["note"] and cli["pool_index"] in range(4)
        assert node["activation"] == pytest.approx(cli["activation"], rel=1e-4, abs=1e-6)
