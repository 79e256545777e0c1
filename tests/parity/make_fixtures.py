"""Write the SAE parity fixtures with the real SAE libraries; not run in CI (it installs packages from PyPI).

Why: a loader checked only against math we wrote ourselves repeats our own misreadings. Here every SAE folder is
written by the library's own save code, loaded back by the library's own loader, and its own encode/decode outputs
on fixed inputs are stored beside it; ``tests/test_sae_parity.py`` then checks ``load_sae`` against them in CI.

Run it with any Python 3.11 (the orchestrator needs only the standard library)::

    python tests/parity/make_fixtures.py [--venvs DIR] [--out tests/fixtures/sae_parity] [--only GROUP ...]

It creates one scratch venv per library group under ``--venvs`` (default: ``<tmp>/lvo-sae-parity``), installs
``torch==2.13.0`` first and then the pinned library, re-runs this file inside that venv as a worker, and merges
each worker's manifest entries into ``<out>/manifest.json``. sdxl-unbox, SAeUron and OpenAI's sparse_autoencoder
have no PyPI package: their files are written as their published code writes them (same file names, keys, pickle
wrapping and config fields) and their outputs computed by the published formulas, which the manifest says.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "sae_parity"
TORCH = "torch==2.13.0"

# group -> pip requirements installed after torch (one venv per group: SAELens 5 and 6 cannot coexist)
GROUPS: dict[str, list[str]] = {
    "saelens6": ["sae-lens==6.54.12"],
    "saelens5": ["sae-lens==5.11.0", "pyarrow<21"],  # its numpy<2 pin needs a pyarrow built for numpy 1
    "sparsify": ["eai-sparsify==1.3.3"],
    "dictionary_learning": ["dictionary-learning==0.1.0"],
    "published": ["safetensors"],
}
# published needs only torch + safetensors: it reuses the sparsify venv rather than installing torch again
VENV_OF = {"published": "sparsify"}
# Packages removed after installing: nnsight pulls a PyPI torchvision whose compiled ops do not load with the CPU
# torch build, which breaks importing transformers; nothing here needs torchvision.
DROP: dict[str, list[str]] = {"dictionary_learning": ["torchvision"]}

D_IN, D_SAE, K = 8, 32, 4
N_TOKENS = 8
# Per-token scales: unit scale, large, and the small (x0.02) activations where std versus std + 1e-5 shows.
ROW_SCALES = (1.0, 0.02, 3.0, 0.02, 1.0, 10.0, 0.5, 0.02)


# ============================================================================================== orchestrator
def _run(cmd: list[str], **kw: Any) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def ensure_venv(root: Path, group: str) -> Path:
    """A venv for ``group`` with torch installed before anything else (so pip never pulls a CUDA build)."""
    venv = root / group
    python = venv / "bin" / "python"
    stamp = venv / "lvo-parity-requirements.json"
    wanted = [TORCH, *GROUPS[group], "safetensors"]
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python
    if venv.exists():
        shutil.rmtree(venv)
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "-q", TORCH])
    # torch stays pinned in the second install too: a dependency asking for a newer torch (dictionary-learning's
    # nnsight does) would otherwise replace the CPU build with a CUDA one.
    _run([str(python), "-m", "pip", "install", "-q", TORCH, *GROUPS[group], "safetensors"])
    if DROP.get(group):
        _run([str(python), "-m", "pip", "uninstall", "-y", "-q", *DROP[group]])
    stamp.write_text(json.dumps(wanted))
    return python


def orchestrate(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    venvs = Path(args.venvs).resolve()
    groups = args.only or list(GROUPS)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"variants": {}}
    for group in groups:
        python = ensure_venv(venvs, VENV_OF.get(group, group))
        with tempfile.TemporaryDirectory() as tmp:
            frag, staged = Path(tmp) / "entries.json", Path(tmp) / "out"
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
            # the worker writes into a staging folder, so a failed run leaves the committed fixtures untouched
            _run([str(python), str(HERE), "--worker", group, "--out", str(staged), "--entries", str(frag)],
                 env=env, cwd=tmp)
            for name, entry in list(manifest["variants"].items()):
                if entry["group"] == group:
                    shutil.rmtree(out / name, ignore_errors=True)
                    del manifest["variants"][name]
            for name, entry in json.loads(frag.read_text()).items():
                shutil.rmtree(out / name, ignore_errors=True)
                shutil.move(str(staged / name), str(out / name))
                manifest["variants"][name] = {"group": group, **entry}
    manifest["about"] = (
        "SAE parity fixtures written by tests/parity/make_fixtures.py. Each variant folder holds the SAE files "
        "exactly as the named library wrote them and expected*.safetensors with x (inputs [tokens, d_in]), codes "
        "(the library's encode(x), [tokens, d_sae]) and recon (the library's decode(encode(x)), [tokens, d_in]), "
        "in the dtype the library computed in. tests/test_sae_parity.py compares load_sae against them.")
    manifest["variants"] = dict(sorted(manifest["variants"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest['variants'])} variants to {out}")


# ============================================================================================== worker helpers
def _torch():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    return torch


def version_of(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def make_inputs(seed: int, d_in: int = D_IN, dtype: Any = None):
    """Fixed tokens with per-row offsets and scales (see ROW_SCALES)."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor(ROW_SCALES)[:, None]
    x = (torch.randn(N_TOKENS, d_in, generator=g) + 0.3 * torch.randn(N_TOKENS, 1, generator=g)) * scales
    return x if dtype is None else x.to(dtype)


def rand(seed: int, *shape: int, scale: float = 1.0):
    torch = _torch()
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def row_norms(seed: int, n: int = D_SAE):
    """Decoder row norms between 0.3 and 3, so any mishandled decoder-norm scaling shows."""
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.exp(torch.rand(n, generator=g) * 2.3)


def unit_rows(seed: int, n: int = D_SAE, d: int = D_IN):
    w = rand(seed, n, d)
    return w / w.norm(dim=-1, keepdim=True)


def save_expected(path: Path, x, codes, recon) -> None:
    from safetensors.torch import save_file

    tensors = {"x": x, "codes": codes, "recon": recon}
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def fill_(param, value) -> None:
    """Copy ``value`` into a parameter or buffer, keeping its dtype."""
    import torch

    with torch.no_grad():
        param.copy_(value.to(param.dtype).reshape(param.shape))


class Entries:
    """Collects manifest entries for one worker."""

    def __init__(self, out: Path, library: str, version: str, written_by: str):
        self.out, self.library, self.version, self.written_by = out, library, version, written_by
        self.entries: dict[str, Any] = {}

    def folder(self, name: str) -> Path:
        path = self.out / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def add(self, name: str, *, settings: dict[str, Any], files: dict[str, str], cases: list[dict[str, Any]],
            dtype: str = "float32", library: str | None = None, version: str | None = None,
            written_by: str | None = None) -> None:
        self.entries[name] = {
            "library": library or self.library, "version": version or self.version,
            "written_by": written_by or self.written_by, "torch": version_of("torch"), "dtype": dtype,
            "settings": settings, "files": files, "cases": cases}
        print(f"  {name}: {len(cases)} case(s)")


EXPECTED_DOC = ("x: fixed inputs; codes: the library's encode(x); recon: the library's decode(encode(x)) "
                "(input normalisation undone as the library does)")
EXPECTED_FP32_DOC = ("the same for a bf16 file loaded by the library in float32 (x cast to float32), so parity can be "
                     "checked below bf16 rounding")


# ============================================================================================== SAELens 6
def worker_saelens6(out: Path) -> dict[str, Any]:
    torch = _torch()
    import sae_lens
    from sae_lens import SAE
    from sae_lens.saes import (
        GatedSAE,
        GatedSAEConfig,
        JumpReLUSAE,
        JumpReLUSAEConfig,
        StandardSAE,
        StandardSAEConfig,
        TopKSAE,
        TopKSAEConfig,
    )

    ver = version_of("sae-lens")
    e = Entries(out, "sae-lens", ver, "library save code: SAE.save_model(); outputs from SAE.load_from_disk()")
    hook = "unet.up_blocks.1.attentions.1"
    specs: list[tuple[str, type, type, dict[str, Any], str]] = [
        ("standard", StandardSAE, StandardSAEConfig, {}, "float32"),
        ("standard_no_b_dec_in", StandardSAE, StandardSAEConfig, {"apply_b_dec_to_input": False}, "float32"),
        ("standard_layer_norm", StandardSAE, StandardSAEConfig, {"normalize_activations": "layer_norm"}, "float32"),
        ("standard_constant_norm_rescale", StandardSAE, StandardSAEConfig,
         {"normalize_activations": "constant_norm_rescale"}, "float32"),
        ("topk", TopKSAE, TopKSAEConfig, {"k": K}, "float32"),
        ("topk_rescale_acts_by_decoder_norm", TopKSAE, TopKSAEConfig,
         {"k": K, "rescale_acts_by_decoder_norm": True}, "float32"),
        ("topk_layer_norm", TopKSAE, TopKSAEConfig, {"k": K, "normalize_activations": "layer_norm"}, "float32"),
        ("jumprelu", JumpReLUSAE, JumpReLUSAEConfig, {}, "float32"),
        ("gated", GatedSAE, GatedSAEConfig, {}, "float32"),
        ("topk_bf16", TopKSAE, TopKSAEConfig, {"k": K, "rescale_acts_by_decoder_norm": True}, "bfloat16"),
        ("jumprelu_bf16", JumpReLUSAE, JumpReLUSAEConfig, {}, "bfloat16"),
        ("standard_layer_norm_bf16", StandardSAE, StandardSAEConfig, {"normalize_activations": "layer_norm"},
         "bfloat16"),
    ]
    for i, (suffix, sae_cls, cfg_cls, kw, dtype) in enumerate(specs):
        name = f"saelens6_{suffix}"
        folder = e.folder(name)
        cfg = cfg_cls(d_in=D_IN, d_sae=D_SAE, dtype=dtype, device="cpu", **kw)
        cfg.metadata.hook_name = hook
        sae = sae_cls(cfg)
        seed = 100 * (i + 1)
        W_dec = unit_rows(seed) * row_norms(seed + 1)[:, None]
        fill_(sae.W_dec, W_dec)
        fill_(sae.W_enc, rand(seed + 2, D_IN, D_SAE, scale=0.8))
        fill_(sae.b_dec, rand(seed + 3, D_IN, scale=0.3))
        if hasattr(sae, "b_gate"):
            fill_(sae.b_gate, rand(seed + 4, D_SAE, scale=0.5))
            fill_(sae.b_mag, rand(seed + 5, D_SAE, scale=0.5))
            fill_(sae.r_mag, rand(seed + 6, D_SAE, scale=0.5))
        else:
            fill_(sae.b_enc, rand(seed + 4, D_SAE, scale=0.5))
        if hasattr(sae, "threshold"):
            fill_(sae.threshold, rand(seed + 7, D_SAE).abs() * 0.4)
        sae.save_model(folder / "sae")
        loaded = SAE.load_from_disk(str(folder / "sae"), device="cpu")
        x = make_inputs(seed + 8, dtype=loaded.dtype)
        with torch.no_grad():
            codes = loaded.encode(x)
            recon = loaded.decode(codes)
        save_expected(folder / "expected.safetensors", x, codes, recon)
        files = {"sae/cfg.json": "SAELens config (SAE.save_model)",
                 "sae/sae_weights.safetensors": "SAELens weights (SAE.save_model)",
                 "expected.safetensors": EXPECTED_DOC}
        case = {"path": "sae", "expected": "expected.safetensors", "hookpoint": None,
                "expect": {"format": "saelens", "hookpoint": hook}}
        if dtype != "float32":
            loaded32 = SAE.load_from_disk(str(folder / "sae"), device="cpu", dtype="float32")
            with torch.no_grad():
                codes32 = loaded32.encode(x.float())
                recon32 = loaded32.decode(codes32)
            save_expected(folder / "expected_fp32.safetensors", x.float(), codes32, recon32)
            files["expected_fp32.safetensors"] = EXPECTED_FP32_DOC
            case["expected_fp32"] = "expected_fp32.safetensors"
        e.add(name, dtype=dtype, settings={"architecture": cfg.architecture(), **kw}, files=files, cases=[case])
    # Trained SAEs reach users through TrainingSAE.save_inference_model: TopK folds its decoder norms there and
    # BatchTopK is saved as a JumpReLU SAE with its learned global threshold.
    from sae_lens.saes import (
        BatchTopKTrainingSAE,
        BatchTopKTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )

    for i, (suffix, sae_cls, cfg_cls) in enumerate([("topk_training_saved_for_inference", TopKTrainingSAE,
                                                      TopKTrainingSAEConfig),
                                                     ("batchtopk_training_saved_for_inference", BatchTopKTrainingSAE,
                                                      BatchTopKTrainingSAEConfig)]):
        name = f"saelens6_{suffix}"
        folder = e.folder(name)
        cfg = cfg_cls(d_in=D_IN, d_sae=D_SAE, k=K, dtype="float32", device="cpu")
        cfg.metadata.hook_name = hook
        sae = sae_cls(cfg)
        seed = 3000 + 100 * i
        fill_(sae.W_dec, unit_rows(seed) * row_norms(seed + 1)[:, None])
        fill_(sae.W_enc, rand(seed + 2, D_IN, D_SAE, scale=0.8))
        fill_(sae.b_dec, rand(seed + 3, D_IN, scale=0.3))
        fill_(sae.b_enc, rand(seed + 4, D_SAE, scale=0.5))
        if hasattr(sae, "topk_threshold"):
            sae.topk_threshold = torch.tensor(0.6)
        sae.save_inference_model(folder / "sae")
        loaded = SAE.load_from_disk(str(folder / "sae"), device="cpu")
        x = make_inputs(seed + 8)
        with torch.no_grad():
            codes = loaded.encode(x)
            recon = loaded.decode(codes)
        save_expected(folder / "expected.safetensors", x, codes, recon)
        e.add(name, settings={"training_architecture": cfg.architecture(), "k": K,
                              "rescale_acts_by_decoder_norm": cfg.rescale_acts_by_decoder_norm,
                              "saved_architecture": json.loads((folder / "sae" / "cfg.json").read_text())[
                                  "architecture"]},
              files={"sae/cfg.json": "SAELens inference config (TrainingSAE.save_inference_model)",
                     "sae/sae_weights.safetensors": "SAELens inference weights (TrainingSAE.save_inference_model)",
                     "expected.safetensors": EXPECTED_DOC},
              cases=[{"path": "sae", "expected": "expected.safetensors", "hookpoint": None,
                      "expect": {"format": "saelens", "hookpoint": hook}}],
              written_by="library save code: TrainingSAE.save_inference_model(); outputs from SAE.load_from_disk()")
    del sae_lens
    return e.entries


def worker_saelens5(out: Path) -> dict[str, Any]:
    torch = _torch()
    from sae_lens import SAE, SAEConfig

    ver = version_of("sae-lens")
    e = Entries(out, "sae-lens", ver, "library save code: SAE.save_model(); outputs from SAE.load_from_disk()")
    hook = "unet.up_blocks.1.attentions.1"
    specs: list[tuple[str, dict[str, Any], str]] = [
        ("standard", {"architecture": "standard"}, "float32"),
        ("standard_no_b_dec_in", {"architecture": "standard", "apply_b_dec_to_input": False}, "float32"),
        ("standard_finetuning_scaling_factor", {"architecture": "standard", "finetuning_scaling_factor": True},
         "float32"),
        ("standard_layer_norm", {"architecture": "standard", "normalize_activations": "layer_norm"}, "float32"),
        ("standard_constant_norm_rescale", {"architecture": "standard",
                                            "normalize_activations": "constant_norm_rescale"}, "float32"),
        ("topk", {"architecture": "topk", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K}},
         "float32"),
        ("standard_activation_topk", {"architecture": "standard", "activation_fn_str": "topk",
                                      "activation_fn_kwargs": {"k": K}}, "float32"),
        ("jumprelu", {"architecture": "jumprelu"}, "float32"),
        ("gated", {"architecture": "gated"}, "float32"),
        ("standard_bf16", {"architecture": "standard"}, "bfloat16"),
    ]
    for i, (suffix, kw, dtype) in enumerate(specs):
        name = f"saelens5_{suffix}"
        folder = e.folder(name)
        base: dict[str, Any] = dict(
            d_in=D_IN, d_sae=D_SAE, activation_fn_str="relu", apply_b_dec_to_input=True,
            finetuning_scaling_factor=False, context_size=16, model_name="tiny-unet", hook_name=hook,
            hook_layer=0, hook_head_index=None, prepend_bos=False, dataset_path="none",
            dataset_trust_remote_code=False, normalize_activations="none", dtype=dtype, device="cpu",
            sae_lens_training_version=ver)
        base.update(kw)
        sae = SAE(SAEConfig(**base))
        seed = 1000 + 100 * i
        fill_(sae.W_dec, unit_rows(seed) * row_norms(seed + 1)[:, None])
        fill_(sae.W_enc, rand(seed + 2, D_IN, D_SAE, scale=0.8))
        fill_(sae.b_dec, rand(seed + 3, D_IN, scale=0.3))
        if hasattr(sae, "b_gate"):
            fill_(sae.b_gate, rand(seed + 4, D_SAE, scale=0.5))
            fill_(sae.b_mag, rand(seed + 5, D_SAE, scale=0.5))
            fill_(sae.r_mag, rand(seed + 6, D_SAE, scale=0.5))
        else:
            fill_(sae.b_enc, rand(seed + 4, D_SAE, scale=0.5))
        if hasattr(sae, "threshold"):
            fill_(sae.threshold, rand(seed + 7, D_SAE).abs() * 0.4)
        if base["finetuning_scaling_factor"]:
            fill_(sae.finetuning_scaling_factor, 0.5 + rand(seed + 9, D_SAE).abs())
        sae.save_model(str(folder / "sae"))
        written_by = None
        if base["finetuning_scaling_factor"]:
            # 5.11's own disk loader drops the 'finetuning_scaling_factor' tensor that save_model writes (it only
            # maps the older 'scaling_factor' key), so the outputs come from the SAE object that wrote the folder.
            loaded = sae
            written_by = ("library save code: SAE.save_model(); outputs from that in-memory SAE, because "
                          f"SAE.load_from_disk of {ver} refuses the finetuning_scaling_factor tensor it wrote")
        else:
            loaded = SAE.load_from_disk(str(folder / "sae"), device="cpu")
        x = make_inputs(seed + 8, dtype=loaded.dtype)
        with torch.no_grad():
            codes = loaded.encode(x)
            recon = loaded.decode(codes)
        save_expected(folder / "expected.safetensors", x, codes, recon)
        files = {"sae/cfg.json": "SAELens config (SAE.save_model)",
                 "sae/sae_weights.safetensors": "SAELens weights (SAE.save_model)",
                 "expected.safetensors": EXPECTED_DOC}
        case = {"path": "sae", "expected": "expected.safetensors", "hookpoint": None,
                "expect": {"format": "saelens", "hookpoint": hook}}
        if dtype != "float32":
            loaded32 = SAE.load_from_disk(str(folder / "sae"), device="cpu", dtype="float32")
            with torch.no_grad():
                codes32 = loaded32.encode(x.float())
                recon32 = loaded32.decode(codes32)
            save_expected(folder / "expected_fp32.safetensors", x.float(), codes32, recon32)
            files["expected_fp32.safetensors"] = EXPECTED_FP32_DOC
            case["expected_fp32"] = "expected_fp32.safetensors"
        e.add(name, dtype=dtype, settings=kw, files=files, cases=[case], written_by=written_by)
    return e.entries


def dense_codes(top_acts, top_indices, d_sae: int):
    """Scatter a (values, indices) top-k code into a dense ``[tokens, d_sae]`` tensor."""
    import torch

    return torch.zeros(*top_acts.shape[:-1], d_sae, dtype=top_acts.dtype).scatter_(-1, top_indices, top_acts)


def worker_sparsify(out: Path) -> dict[str, Any]:
    torch = _torch()
    from sparsify import SparseCoder, SparseCoderConfig

    ver = version_of("eai-sparsify")
    e = Entries(out, "eai-sparsify", ver,
                "library save code: SparseCoder.save_to_disk(); outputs from SparseCoder.load_from_disk() "
                "encode/decode")
    specs = [("topk", {"activation": "topk"}, torch.float32, ["unet.up_blocks.1.attentions.1"]),
             ("groupmax", {"activation": "groupmax"}, torch.float32, ["unet.up_blocks.1.attentions.1"]),
             ("topk_bf16", {"activation": "topk"}, torch.bfloat16, ["unet.up_blocks.1.attentions.1"]),
             ("multi_hookpoint_root", {"activation": "topk"}, torch.float32,
              ["unet.up_blocks.1.attentions.1", "unet.up_blocks.1.attentions.2"])]
    for i, (suffix, kw, dtype, hooks) in enumerate(specs):
        name = f"sparsify_{suffix}"
        folder = e.folder(name)
        files: dict[str, str] = {}
        cases = []
        for j, hook in enumerate(hooks):
            seed = 5000 + 100 * i + 10 * j
            cfg = SparseCoderConfig(num_latents=D_SAE, k=K, **kw)
            sae = SparseCoder(D_IN, cfg, dtype=dtype)
            fill_(sae.encoder.weight, rand(seed, D_SAE, D_IN, scale=0.8))
            fill_(sae.encoder.bias, rand(seed + 1, D_SAE, scale=0.5))
            fill_(sae.W_dec, unit_rows(seed + 2))
            fill_(sae.b_dec, rand(seed + 3, D_IN, scale=0.3))
            sae.save_to_disk(folder / "sae" / hook)
            loaded = SparseCoder.load_from_disk(folder / "sae" / hook)
            x = make_inputs(seed + 4, dtype=loaded.dtype)
            with torch.no_grad():
                top_acts, top_indices, _ = loaded.encode(x)
                codes = dense_codes(top_acts, top_indices, D_SAE)
                recon = loaded.decode(top_acts, top_indices)
            expected = f"expected_{hook}.safetensors"
            save_expected(folder / expected, x, codes, recon)
            files.update({f"sae/{hook}/cfg.json": "sparsify config (save_to_disk)",
                          f"sae/{hook}/sae.safetensors": "sparsify weights (save_to_disk)",
                          expected: EXPECTED_DOC + " (codes scattered from encode's top_acts/top_indices)"})
            if len(hooks) > 1:
                cases.append({"path": "sae", "hookpoint": hook.removeprefix("unet."), "expected": expected,
                              "expect": {"format": "sparsify", "hookpoint": hook}})
            else:
                cases.append({"path": f"sae/{hook}", "hookpoint": None, "expected": expected,
                              "expect": {"format": "sparsify", "hookpoint": hook}})
            if dtype != torch.float32:
                f32 = SparseCoder.load_from_disk(folder / "sae" / hook).to(torch.float32)
                with torch.no_grad():
                    a32, i32, _ = f32.encode(x.float())
                    save_expected(folder / "expected_fp32.safetensors", x.float(), dense_codes(a32, i32, D_SAE),
                                  f32.decode(a32, i32))
                files["expected_fp32.safetensors"] = EXPECTED_FP32_DOC
                cases[-1]["expected_fp32"] = "expected_fp32.safetensors"
        e.add(name, dtype=str(dtype).replace("torch.", ""), settings={**kw, "k": K, "hookpoints": hooks},
              files=files, cases=cases)
    return e.entries


# Trainer-config keys that the dictionary_learning trainers only write since their December 2024 rewrite; files
# without them come from code that still scaled JumpReLU/Gated codes by the decoder norm (see lvo_core.sae.formats).
DL_NEW_KEYS = ("sparsity_warmup_steps", "decay_start", "target_l0")


def worker_dictionary_learning(out: Path) -> dict[str, Any]:
    torch = _torch()
    from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer
    from dictionary_learning.trainers.gdm import GatedSAETrainer
    from dictionary_learning.trainers.jumprelu import JumpReluTrainer
    from dictionary_learning.trainers.standard import (
        StandardTrainer,
        StandardTrainerAprilUpdate,
    )
    from dictionary_learning.trainers.top_k import TopKTrainer
    from dictionary_learning.utils import load_dictionary

    ver = version_of("dictionary-learning")
    e = Entries(out, "dictionary-learning", ver,
                "library trainer's own config ({'trainer': trainer.config}) and ae.pt (torch.save of "
                "trainer.ae.state_dict(), as training.py saves them); outputs from utils.load_dictionary()")
    hook = "unet.up_blocks.1.attentions.1"
    specs: list[tuple[str, type, dict[str, Any], bool, bool]] = [
        # name, trainer, extra kwargs, unit-norm decoder, legacy (pre-2025) code scaling
        ("autoencoder_unit_decoder", StandardTrainer, {}, True, False),
        ("autoencoder_april_update", StandardTrainerAprilUpdate, {}, False, False),
        ("topk", TopKTrainer, {"k": K}, True, False),
        ("batchtopk", BatchTopKTrainer, {"k": K}, True, False),
        ("jumprelu", JumpReluTrainer, {}, False, False),
        ("gated", GatedSAETrainer, {}, False, False),
        ("jumprelu_legacy_2024", JumpReluTrainer, {}, False, True),
        ("gated_legacy_2024", GatedSAETrainer, {}, False, True),
    ]
    for i, (suffix, trainer_cls, kw, unit, legacy) in enumerate(specs):
        name = f"dictionary_learning_{suffix}"
        folder = e.folder(name)
        sae_dir = folder / "sae"
        sae_dir.mkdir()
        trainer = trainer_cls(steps=10_000, activation_dim=D_IN, dict_size=D_SAE, layer=0, lm_name="tiny-unet",
                              device="cpu", submodule_name=hook, **kw)
        ae = trainer.ae
        seed = 9000 + 100 * i
        norms = torch.ones(D_SAE) if unit else row_norms(seed)
        dec_rows = unit_rows(seed + 1) * norms[:, None]  # [d_sae, d_in]
        sd = ae.state_dict()
        for key in sd:
            if key in ("decoder.weight",):
                fill_(sd[key], dec_rows.T)
            elif key == "W_dec":
                fill_(sd[key], dec_rows)
            elif key == "W_enc":
                fill_(sd[key], rand(seed + 2, D_IN, D_SAE, scale=0.8))
            elif key == "encoder.weight":
                fill_(sd[key], rand(seed + 2, D_SAE, D_IN, scale=0.8))
            elif key in ("encoder.bias", "b_enc", "gate_bias", "mag_bias"):
                fill_(sd[key], rand(seed + 3 + len(key), D_SAE, scale=0.5))
            elif key in ("bias", "b_dec", "decoder_bias"):
                fill_(sd[key], rand(seed + 4, D_IN, scale=0.3))
            elif key == "r_mag":
                fill_(sd[key], rand(seed + 5, D_SAE, scale=0.5))
            elif key == "threshold":
                fill_(sd[key], rand(seed + 6, *sd[key].shape).abs() * 0.4 if sd[key].numel() > 1
                      else torch.tensor(0.35))
        ae.load_state_dict(sd)
        config = {"trainer": trainer.config}
        if legacy:
            config["trainer"] = {k: v for k, v in config["trainer"].items() if k not in DL_NEW_KEYS}
        (sae_dir / "config.json").write_text(json.dumps(config, indent=4))
        torch.save({k: v.cpu() for k, v in ae.state_dict().items()}, sae_dir / "ae.pt")
        loaded, _ = load_dictionary(str(sae_dir), device="cpu")
        x = make_inputs(seed + 7)
        with torch.no_grad():
            codes = loaded.encode(x)
            recon = loaded.decode(codes)
        written_by = None
        if legacy:
            # dictionary_learning before 2025-01-01 (JumpReLU, commit ec961ac) / 2025-01-07 (Gated, 52b0c54)
            # multiplied codes by the decoder norms in encode and divided them out in decode; no release of that
            # code exists on PyPI, so it is reproduced on top of the current library's outputs, with the config
            # keys those trainers did not write yet removed.
            dnorm = loaded.W_dec.norm(dim=1) if hasattr(loaded, "W_dec") else loaded.decoder.weight.norm(dim=0)
            codes = codes * dnorm
            written_by = (f"{ver} trainer config without the keys {list(DL_NEW_KEYS)} that pre-2025 trainers did "
                          "not write; outputs: the library's encode times the decoder norms (the pre-2025 "
                          "encode), decode unchanged (pre-2025 decode divided the norms out again)")
        save_expected(folder / "expected.safetensors", x, codes, recon)
        e.add(name, settings={"trainer_class": config["trainer"].get("trainer_class"),
                              "dict_class": config["trainer"]["dict_class"], "unit_norm_decoder": unit,
                              "legacy_pre_2025": legacy, **kw},
              files={"sae/config.json": "dictionary_learning config.json ({'trainer': trainer.config})",
                     "sae/ae.pt": "dictionary_learning state dict (torch.save)", "expected.safetensors": EXPECTED_DOC},
              cases=[{"path": "sae", "hookpoint": None, "expected": "expected.safetensors",
                      "expect": {"format": "dictionary_learning", "hookpoint": hook}}], written_by=written_by)
    return e.entries


# ---------------------------------------------------------------------------------------------- no PyPI package
SAEURON_SRC = "github.com/bcywinski/SAeUron, SAE/sae.py + SAE/config.py (Sae.save_to_disk, Sae.forward)"
UNBOX_SRC = ("github.com/surkovv/sdxl-unbox, SAE/sae.py (SparseAutoencoder.save_to_disk, encode, decode_sparse) "
             "and utils/loaders.py (checkpoints/<block>_k10_hidden5120_auxk256_bs4096_lr0.0001/final/)")


def worker_published(out: Path) -> dict[str, Any]:
    """SAeUron and sdxl-unbox: files laid out as their published save code writes them, outputs by their formulas."""
    torch = _torch()
    from safetensors.torch import save_file

    e = Entries(out, "SAeUron", "published code, no PyPI release",
                "written by this script exactly as the published save code does (no pip package exists); "
                "outputs by the published encode/decode formulas")
    # SAeUron: a root of hookpoint folders, each cfg.json (SaeConfig fields + d_in) + sae.safetensors
    # (safetensors.torch.save_model of the module: encoder.weight, encoder.bias, W_dec, b_dec).
    name = "saeuron_input_unit_norm_root"
    folder = e.folder(name)
    hooks = ["unet.up_blocks.1.attentions.1", "unet.up_blocks.1.attentions.2"]
    files: dict[str, str] = {}
    cases = []
    for j, hook in enumerate(hooks):
        seed = 7000 + 10 * j
        W = rand(seed, D_SAE, D_IN, scale=0.8)
        b = rand(seed + 1, D_SAE, scale=0.5)
        W_dec = unit_rows(seed + 2)
        b_dec = rand(seed + 3, D_IN, scale=0.3)
        sub = folder / "sae" / hook
        sub.mkdir(parents=True)
        save_file({"encoder.weight": W, "encoder.bias": b, "W_dec": W_dec, "b_dec": b_dec},
                  str(sub / "sae.safetensors"))
        cfg = {"expansion_factor": D_SAE // D_IN, "normalize_decoder": True, "num_latents": D_SAE, "k": K,
               "batch_topk": True, "sample_topk": False, "input_unit_norm": True, "multi_topk": False, "d_in": D_IN}
        (sub / "cfg.json").write_text(json.dumps(cfg))
        x = make_inputs(seed + 4)
        # Sae.forward after load_from_disk (which turns batch_topk off): standardize, ReLU pre-acts, per-token
        # TopK, decode, then multiply back by the bare std and add the mean.
        mean = x.mean(dim=-1, keepdim=True)
        xc = x - mean
        std = xc.std(dim=-1, keepdim=True)
        xn = xc / (std + 1e-5)
        pre = torch.relu((xn - b_dec) @ W.T + b)
        vals, idx = pre.topk(K, dim=-1, sorted=False)
        codes = dense_codes(vals, idx, D_SAE)
        recon = (codes @ W_dec + b_dec) * std + mean
        expected = f"expected_{hook}.safetensors"
        save_expected(folder / expected, x, codes, recon)
        files.update({f"sae/{hook}/cfg.json": "SAeUron config (Sae.save_to_disk layout)",
                      f"sae/{hook}/sae.safetensors": "SAeUron weights (Sae.save_to_disk layout)",
                      expected: "x; codes: Sae.forward's top-k code (after input standardization); recon: "
                                "Sae.forward's sae_out (std undone without eps)"})
        cases.append({"path": "sae", "hookpoint": hook, "expected": expected,
                      "expect": {"format": "sparsify", "hookpoint": hook}})
    e.add(name, settings={"input_unit_norm": True, "batch_topk": True, "k": K, "hookpoints": hooks},
          files=files, cases=cases, version="published code (bcywinski/SAeUron), no PyPI release",
          library=f"SAeUron ({SAEURON_SRC})")

    # sdxl-unbox: checkpoints/<block>_k.._hidden.._auxk.._bs4096_lr0.0001/final/ with config.json,
    # state_dict.pth (torch.save({"state_dict": module.state_dict()})), mean.pt and std.pt (per-latent stats).
    name = "sdxl_unbox_checkpoints_root"
    folder = e.folder(name)
    blocks = {"down.2.1": "unet.down_blocks.2.attentions.1", "mid.0": "unet.mid_block.attentions.0",
              "up.0.0": "unet.up_blocks.0.attentions.0", "up.0.1": "unet.up_blocks.0.attentions.1"}
    files, cases = {}, []
    for j, (code, block) in enumerate(blocks.items()):
        seed = 8000 + 10 * j
        enc = rand(seed, D_SAE, D_IN, scale=0.8)
        dec = rand(seed + 1, D_IN, D_SAE)
        dec = dec / dec.norm(dim=0)  # unit_norm_decoder_: unit-norm columns
        pre_bias = rand(seed + 2, D_IN, scale=0.3)
        latent_bias = rand(seed + 3, D_SAE, scale=0.5)
        state = {"pre_bias": pre_bias, "latent_bias": latent_bias,
                 "stats_last_nonzero": torch.zeros(D_SAE, dtype=torch.long),
                 "encoder.weight": enc, "decoder.weight": dec.T.contiguous().T}
        rel = f"sae/checkpoints/{block}_k{K}_hidden{D_SAE}_auxk{D_SAE // 2}_bs4096_lr0.0001/final"
        sub = folder / rel
        sub.mkdir(parents=True)
        cfg = {"n_dirs_local": D_SAE, "d_model": D_IN, "k": K, "auxk": D_SAE // 2, "dead_steps_threshold": 2441}
        (sub / "config.json").write_text(json.dumps(cfg))
        torch.save({"state_dict": state}, sub / "state_dict.pth")
        torch.save(rand(seed + 5, D_SAE).abs(), sub / "mean.pt")
        torch.save(rand(seed + 6, D_SAE).abs(), sub / "std.pt")
        x = make_inputs(seed + 4)
        # SparseAutoencoder.encode: TopK of the raw pre-activations, ReLU of the kept values; decode adds pre_bias.
        pre_act = (x - pre_bias) @ enc.T + latent_bias
        vals, idx = pre_act.topk(K, dim=-1)
        codes = dense_codes(torch.relu(vals), idx, D_SAE)
        recon = codes @ dec.T + pre_bias
        expected = f"expected_{code}.safetensors"
        save_expected(folder / expected, x, codes, recon)
        files.update({f"{rel}/config.json": "sdxl-unbox config (save_to_disk)",
                      f"{rel}/state_dict.pth": "sdxl-unbox weights, pickled {'state_dict': ...} (save_to_disk)",
                      f"{rel}/mean.pt": "per-latent mean activation (not an input normalisation)",
                      f"{rel}/std.pt": "per-latent activation std (not an input normalisation)",
                      expected: "x; codes: SparseAutoencoder.encode(x); recon: decode of those codes"})
        for hp in (code, block):
            cases.append({"path": "sae/checkpoints", "hookpoint": hp, "expected": expected,
                          "expect": {"format": "openai", "hookpoint": block}})
    e.add(name, settings={"k": K, "hookpoints": list(blocks.values())}, files=files, cases=cases,
          library=f"sdxl-unbox ({UNBOX_SRC})", version="published code (surkovv/sdxl-unbox), no PyPI release")
    return e.entries


WORKERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "sparsify": worker_sparsify,
    "dictionary_learning": worker_dictionary_learning,
    "published": worker_published,
    "saelens6": worker_saelens6,
    "saelens5": worker_saelens5,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="fixture folder (default: %(default)s)")
    parser.add_argument("--venvs", default=str(Path(tempfile.gettempdir()) / "lvo-sae-parity"),
                        help="where the scratch venvs go (default: %(default)s)")
    parser.add_argument("--only", nargs="*", choices=list(GROUPS), help="regenerate only these groups")
    parser.add_argument("--worker", choices=list(GROUPS), help=argparse.SUPPRESS)
    parser.add_argument("--entries", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        entries = WORKERS[args.worker](Path(args.out))
        Path(args.entries).write_text(json.dumps(entries, indent=2))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
