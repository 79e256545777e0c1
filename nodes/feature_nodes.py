"""Feature Page: everything the pack knows about one unit on one page — when it is active, on which real and
model-generated images, how its activation is spread over the sample bank, and what each recipe's visualizations
reached — drawn in the node by the web extension and handed on as JSON and as one labelled image."""

from __future__ import annotations

import json
import re

import numpy as np
import torch

from ..lvo_core.analysis.metrics import display_images
from ..lvo_core.analysis.selection import scored_bank
from ..lvo_core.errors import LVOError
from ..lvo_core.runs.feature_page import feature_card, feature_sheet
from . import comfy_glue as glue
from .comfy_glue import io
from .sockets import ACTIVITY, BANK, LABELS, UNITS

CATEGORY = "LVO"
RUNS = 2  # run inputs: images + metrics of LVO Optimize / LVO Faithful (e.g. the paper and the faithful recipe)


def run_inputs() -> list:
    inputs = []
    for k in range(1, RUNS + 1):
        inputs += [io.Image.Input(f"run{k}_images", optional=True,
                                  tooltip=f"Run {k}: the images output of LVO Optimize or LVO Faithful."),
                   io.String.Input(f"run{k}_metrics", optional=True, force_input=True,
                                   tooltip=f"Run {k}: the metrics output of the same node (its rows for this unit "
                                           f"are shown, with their images).")]
    return inputs


class LVOFeaturePage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOFeaturePage", display_name="LVO Feature Page", category=CATEGORY,
            description="One feature on one page, as Neuronpedia shows a language-model feature: its activity over "
                        "the timesteps (peaks, dataset max) and top dataset examples from an Activity Analysis, its "
                        "activation histogram, density and top images over a Sample Bank, and the visualizations "
                        "and metrics of up to two runs (e.g. paper and faithful). Connect what you have.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (scores the bank if needed)."),
                io.Vae.Input("vae", tooltip="Decodes the bank's top images."),
                UNITS.Input("units", tooltip="Block and SAE (LVO Feature Hook); the page shows one of its units."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning of the EMPTY prompt (for bank scores)."),
                io.Int.Input("unit", default=-1, min=-1, max=1 << 20,
                             tooltip="Which unit; -1 = the first of the selection."),
                io.Int.Input("top", default=8, min=1, max=64, tooltip="How many top examples per source."),
                io.Int.Input("bank_t", default=200, min=0, max=999,
                             tooltip="Timestep the bank is scored at for the histogram (200, as the faithful "
                                     "recipe selects)."),
                io.Int.Input("bins", default=20, min=2, max=200, tooltip="Histogram bins."),
                ACTIVITY.Input("activity", optional=True,
                               tooltip="Activity Analysis: activity over timesteps, peaks, top dataset examples."),
                io.Image.Input("examples", optional=True,
                               tooltip="The Activity Analysis's generated images, to show the top dataset examples."),
                BANK.Input("bank", optional=True, tooltip="Sample Bank: histogram, density and top pool images."),
                *run_inputs(),
                LABELS.Input("labels", optional=True,
                             tooltip="Label table (LVO Label Search): the unit's labels with their held-out "
                                     "detection scores."),
            ],
            outputs=[
                io.String.Output(display_name="card", tooltip="The feature page as JSON (every number shown)."),
                io.Image.Output(display_name="page", tooltip="The page as one labelled image, for saving."),
            ])

    @classmethod
    def execute(cls, model, vae, units, empty_prompt, unit: int, top: int, bank_t: int, bins: int, activity=None,
                examples=None, bank=None, labels=None, **runs) -> io.NodeOutput:
        unit = units.units[0] if unit < 0 else unit
        results, run_images = [], []
        for k in range(1, RUNS + 1):
            images, metrics = runs.get(f"run{k}_images"), runs.get(f"run{k}_metrics")
            if metrics is None:
                if images is not None:
                    raise LVOError(f"run {k} has images but no metrics; connect the metrics output of the same node")
                continue
            try:
                results.append(json.loads(metrics))
            except json.JSONDecodeError as exc:
                raise LVOError(f"run{k}_metrics is not the metrics JSON of LVO Optimize or LVO Faithful ({exc})") \
                    from None
            run_images.append(images)
        if bank is not None:
            backend = glue.backend(model, units, vae, empty_prompt, tuple(bank.latents.shape[1:]), trainable=False)
            scored_bank(bank, backend, units.sae, [bank_t], glue.Progress(1))
        card = feature_card(unit, hookpoint=units.hookpoint, sae=units.sae, analysis=activity, bank=bank,
                            bank_t=bank_t, results=results, top=top, bins=bins, labels=labels)
        pictures: dict[str, list] = {}
        if card["bank"] is not None:
            order = [e["index"] for e in card["bank"]["top"]]
            with torch.inference_mode(False), torch.no_grad():
                decoded = display_images(backend.decode(bank.latents[order].to(backend.device)))
            cls._attach(card["bank"]["top"], decoded, "bank", pictures)
        if card["activity"] is not None and examples is not None:
            shown = [e for e in card["activity"]["examples"] if e["generation"] < len(examples)]
            cls._attach(shown, examples[[e["generation"] for e in shown]], "examples", pictures)
        for run, images in zip(card["visualizations"], run_images):
            if images is not None:
                rows = [r for r in run["rows"] if r["row"] < len(images)]
                cls._attach(rows, images[[r["row"] for r in rows]], run["name"], pictures)
        page = feature_sheet(card, activity, pictures)
        text = json.dumps(card)
        return io.NodeOutput(text, torch.from_numpy(np.asarray(page, dtype=np.float32) / 255.0)[None],
                             ui={"lvo_feature": [text]})  # the web extension draws the page in the node

    @staticmethod
    def _attach(entries: list, images: torch.Tensor, name: str, pictures: dict) -> None:
        """Give each card entry its image (a temp-folder reference for the frontend) and keep the arrays for the
        page image."""
        if not entries:
            return
        for entry, ref in zip(entries, glue.save_thumbnails(images, "feature_" + re.sub(r"\W+", "_", name))):
            entry["image"] = ref
        pictures[name] = list(images[..., :3].float().cpu().numpy())


NODES = [LVOFeaturePage]
