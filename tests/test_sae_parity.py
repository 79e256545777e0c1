"""``load_sae`` against what the real SAE libraries compute on their own files.

The fixtures in ``tests/fixtures/sae_parity/`` were written by the libraries' own save code (see
``tests/parity/make_fixtures.py`` and ``manifest.json``, which names every library and version); each holds the
library's encode (``codes``) and decode (``recon``) of fixed inputs ``x``.

Metric, for codes and reconstruction alike: the worst token's relative error,
``max_t ‖ours_t − library_t‖₂ / ‖library_t‖₂ ≤ 1e-5`` (in float64; a token the library codes as all zeros must be
all zeros here too). Per token, so that an error on the small-scale tokens (inputs ×0.02, where ``std`` versus
``std + 1e-5`` shows) is not hidden by the large ones. bf16 files: one bf16 rounding is ~4e-3 and both sides round
in different places, so the 1e-5 bound applies to the float32 computation from the same bf16 file
(``load_sae(..., dtype=float32)`` against the library loading it in float32), and the bf16 computation must agree
with the library's bf16 computation to 2e-2 (Frobenius).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lvo_core.sae import load_sae

ROOT = Path(__file__).parent / "fixtures" / "sae_parity"
MANIFEST = json.loads((ROOT / "manifest.json").read_text())
VARIANTS = MANIFEST["variants"]
RTOL = 1e-5
BF16_RTOL = 2e-2


def token_rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """Worst per-token relative error (a zero reference token demands a zero token)."""
    ours, ref = ours.double(), ref.double()
    diff = (ours - ref).norm(dim=-1)
    scale = ref.norm(dim=-1)
    return float(torch.where(scale > 0, diff / scale.clamp_min(1e-300), diff * 1e300).max())


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.double(), ref.double()
    return float((ours - ref).norm() / ref.norm().clamp_min(1e-30))


def cases():
    for name, entry in VARIANTS.items():
        for i, case in enumerate(entry["cases"]):
            yield pytest.param(name, case, id=f"{name}-{i}" if len(entry["cases"]) > 1 else name)


@pytest.mark.parametrize("name,case", list(cases()))
def test_load_sae_matches_library(name: str, case: dict) -> None:
    entry = VARIANTS[name]
    folder = ROOT / name
    sae = load_sae(folder / case["path"], hookpoint=case.get("hookpoint"))
    ref = load_file(str(folder / case["expected"]))
    x, codes, recon = ref["x"], ref["codes"], ref["recon"]
    expect = case.get("expect", {})
    if "format" in expect:
        assert sae.source_format == expect["format"]
    if "hookpoint" in expect:
        assert sae.hookpoint == expect["hookpoint"]
    dtype = str(sae.dtype).replace("torch.", "")
    # The file's dtype is kept, except where folding a scaling into 16-bit weights would round them.
    assert dtype == entry["dtype"] or (sae.meta.get("upcast") and dtype == "float32")
    with torch.no_grad():
        our_codes = sae.encode(x)
        our_recon = sae.reconstruct(x)
    assert our_codes.shape == codes.shape and our_recon.shape == recon.shape
    lib = f"{entry['library']} {entry['version']}"
    if entry["dtype"] == "float32":
        assert token_rel_err(our_codes, codes) <= RTOL, f"codes differ from {lib}"
        assert token_rel_err(our_recon, recon) <= RTOL, f"reconstruction differs from {lib}"
        return
    assert rel_err(our_codes, codes) <= BF16_RTOL and rel_err(our_recon, recon) <= BF16_RTOL, lib
    ref32 = load_file(str(folder / case["expected_fp32"]))
    sae32 = load_sae(folder / case["path"], hookpoint=case.get("hookpoint"), dtype=torch.float32)
    with torch.no_grad():
        assert token_rel_err(sae32.encode(ref32["x"]), ref32["codes"]) <= RTOL, f"fp32 codes differ from {lib}"
        assert token_rel_err(sae32.reconstruct(ref32["x"]), ref32["recon"]) <= RTOL, f"fp32 recon differs from {lib}"


def test_every_manifest_variant_has_a_folder_and_every_folder_an_entry() -> None:
    folders = {p.name for p in ROOT.iterdir() if p.is_dir()}
    assert folders == set(VARIANTS), (f"folders without manifest entry: {sorted(folders - set(VARIANTS))}; "
                                      f"manifest entries without folder: {sorted(set(VARIANTS) - folders)}")
    for name, entry in VARIANTS.items():
        assert entry["library"] and entry["version"] and entry["written_by"], name
        for rel in entry["files"]:
            assert (ROOT / name / rel).exists(), f"{name}: manifest names {rel}, which is missing"
        for case in entry["cases"]:
            assert (ROOT / name / case["expected"]).is_file()
            if entry["dtype"] != "float32":
                assert (ROOT / name / case["expected_fp32"]).is_file(), f"{name}: a bf16 variant needs fp32 outputs"
