"""Feature Search: which SAE features an image drives, and where — the list a user picks features from, ready to
feed LVO Faithful or LVO Optimize."""

from __future__ import annotations

import json

import numpy as np
import torch

from ..lvo_core.analysis.examples import overlay
from ..lvo_core.analysis.feature_search import RANKINGS, ranking_for, search_features, unit_list
from ..lvo_core.model.units import make_unit_spec
from ..lvo_core.runs.plots import search_sheet
from . import comfy_glue as glue
from .comfy_glue import io
from .sockets import ACTIVITY, BANK, SAE, UNITS

CATEGORY = "LVO"


class LVOFeatureSearch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOFeatureSearch", display_name="LVO Feature Search", category=CATEGORY,
            description="Lists the SAE features an image drives most, with a heatmap of each over the image, and "
                        "hands them on as units. With a Sample Bank the ranking is by lift over the model's own "
                        "samples, which keeps always-on features out of the list (on the toy world the top hit "
                        "shows the image's concept 92 % of the time, raw activation 40 %).",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD1.x/SD2.x UNet)."),
                io.Vae.Input("vae", tooltip="Encodes the image into the model's latent space."),
                SAE.Input("sae", tooltip="The SAE whose features are searched."),
                io.Image.Input("image", tooltip="The image(s) to search; the units output comes from the first."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning of the EMPTY prompt (features are read "
                                                              "unconditioned, as LVO reads them)."),
                io.String.Input("hookpoint", default="", tooltip="Block the SAE reads (diffusers or LDM name); "
                                                                 "empty = the SAE's own."),
                io.Int.Input("timestep", default=200, min=0, max=999, tooltip="Timestep the features are read at "
                                                                               "(200, as the faithful recipe)."),
                io.Int.Input("top", default=10, min=1, max=256, tooltip="How many features to list."),
                io.Combo.Input("rank_by", options=list(RANKINGS),
                               tooltip="lift over the bank's samples (auto with a bank), ratio to the dataset max "
                                       "(auto with an analysis), or raw activation."),
                BANK.Input("bank", optional=True, tooltip="Sample Bank: the baseline for 'lift' and top examples."),
                ACTIVITY.Input("activity", optional=True, tooltip="Activity analysis: dataset max and peak per hit."),
            ],
            outputs=[
                UNITS.Output(display_name="units", tooltip="The features found on the first image, for LVO nodes."),
                io.Image.Output(display_name="heatmaps", tooltip="Each image, then each hit's heatmap over it."),
                io.String.Output(display_name="report", tooltip="JSON: per image the hits with activation, lift, "
                                                                "ratio, activity peak and bank examples."),
                io.Image.Output(display_name="sheet", tooltip="One labelled picture: per image its hits' heatmaps, "
                                                              "captioned, with a colour bar and a legend."),
            ])

    @classmethod
    def execute(cls, model, vae, sae, image, empty_prompt, hookpoint: str, timestep: int, top: int, rank_by: str,
                bank=None, activity=None) -> io.NodeOutput:
        point = hookpoint.strip() or sae.hookpoint or "up_blocks.1.attentions.1"
        probe = make_unit_spec(glue.diffusion_model(model), point, [0], sae)
        latents = glue.latent_in(model, glue.encode_images(vae, image))
        backend = glue.backend(model, probe, vae, empty_prompt, tuple(latents.shape[1:]), trainable=False)
        bank_backend = None
        if bank is not None and tuple(bank.latents.shape[1:]) != tuple(latents.shape[1:]):
            # the image has another size than the bank's samples: score the bank at its own size
            bank_backend = glue.backend(model, probe, vae, empty_prompt, tuple(bank.latents.shape[1:]),
                                        trainable=False)
        found = search_features(backend, sae, latents, timestep=timestep, top=top, by=rank_by, analysis=activity,
                                bank=bank, bank_backend=bank_backend, on_progress=glue.Progress(1))
        tiles = []
        for picture, hits in zip(image[..., :3].float().cpu().numpy(), found):
            tiles.append(torch.from_numpy(picture))
            tiles += [torch.from_numpy(overlay(picture, h.heatmap.numpy())).float() for h in hits]
        units = make_unit_spec(glue.diffusion_model(model), point, [h.unit for h in found[0]], sae)
        report = json.dumps({"hookpoint": units.hookpoint, "timestep": timestep,
                             "images": [{"units": unit_list(h), "hits": [x.to_dict() for x in h]} for h in found]})
        summary = "; ".join(unit_list(h) for h in found)
        pictures = list(image[..., :3].float().cpu().numpy())
        sheet = search_sheet(pictures, [f"image {i + 1}" for i in range(len(pictures))], found,
                             hookpoint=units.hookpoint, timestep=timestep, by=ranking_for(rank_by, activity, bank),
                             top=top, cell=min(max(int(image.shape[1]), 96), 256))
        return io.NodeOutput(units, torch.stack(tiles), report,
                             torch.from_numpy(np.asarray(sheet, dtype=np.float32) / 255.0)[None],
                             ui={"text": [f"features: {summary}"]})


NODES = [LVOFeatureSearch]
