"""Files and their fit: ``info`` (a model's hookable blocks, an SAE's summary, whether they fit) and ``convert``
(an SAE to safetensors)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import LVOError
from ..hookpoints import check_sae_fits, list_hookpoints, resolve_hookpoint
from ..sae import convert_to_safetensors, describe, load_sae
from .setup import DEFAULT_HOOKPOINT, load_named_model, sae_path, tiny_models, tiny_sae


def cmd_info(s: Any) -> int:
    """Hookable blocks of a model, SAE summary, and whether they fit."""
    report: dict = {}
    if s.sae in tiny_models():
        report["sae"] = tiny_sae(s.sae).summary()
    elif s.sae:
        s.sae = sae_path(s.sae)
        report["sae"] = describe(s.sae)
        if s.hookpoint and "hookpoints" in report["sae"]:  # a root of several: the hookpoint chooses (or fails)
            report["sae"] = load_sae(s.sae, hookpoint=s.hookpoint).summary()
        elif s.hookpoint and not s.model:
            raise LVOError(f"--hookpoint {s.hookpoint}: {s.sae} holds one SAE, not a root of several; give --model "
                           f"too to check the SAE against that block")
    if s.model or not s.sae:
        unet = load_named_model(s.model or "tiny", config=s.config).denoiser
        report["hookpoints"] = [{"diffusers": p.diffusers_name, "ldm": p.ldm_name, "channels": p.channels,
                                 "kind": p.kind} for p in list_hookpoints(unet)]
        if s.hookpoint:
            point = resolve_hookpoint(unet, s.hookpoint)
            report["hookpoint"] = {"diffusers": point.diffusers_name, "ldm": point.ldm_name,
                                   "channels": point.channels}
        if s.sae:
            sae = tiny_sae(s.sae) if s.sae in tiny_models() else load_sae(s.sae, hookpoint=s.hookpoint)
            point = resolve_hookpoint(unet, s.hookpoint or sae.hookpoint or DEFAULT_HOOKPOINT)
            check_sae_fits(sae.d_in, point, unet)
            report["fit"] = f"SAE ({sae.d_in} channels) fits {point.diffusers_name} / {point.ldm_name}"
    if s.json:
        print(json.dumps(report, indent=2))
        return 0
    if "sae" in report:
        print("SAE:", json.dumps(report["sae"], indent=2))
    for p in report.get("hookpoints", []):
        print(f"  {p['diffusers']:<32} {p['ldm']:<20} {p['channels']:>6}  {p['kind']}")
    if "hookpoint" in report:
        h = report["hookpoint"]
        print(f"hookpoint {s.hookpoint} is {h['diffusers']} / {h['ldm']} ({h['channels']} channels)")
    if "fit" in report:
        print(report["fit"])
    return 0


def cmd_convert(s: Any) -> int:
    """Convert an SAE (e.g. a pickled ae.pt/state_dict.pth) to safetensors."""
    out = convert_to_safetensors(s.source, s.out, k=s.k)
    print(f"wrote {out} ({load_sae(out).summary()['format']} layout, safetensors only)")
    return 0
