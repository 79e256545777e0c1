"""Label Search: find the feature for a word — the labels the model itself gave each feature (``python -m lvo_core
label``), scored on held-out generations, searched by text and handed on as units for LVO Faithful and the Feature
Page."""

from __future__ import annotations

import json
from pathlib import Path

from ..lvo_core.analysis.labels import LabelError, LabelTable
from ..lvo_core.model.units import make_unit_spec
from . import comfy_glue as glue
from .comfy_glue import io
from .sockets import LABELS, SAE, UNITS

CATEGORY = "LVO"
LABEL_FOLDER = "lvo_labels"


def labels_path(text: str) -> Path:
    """A label folder: a name under ``output/lvo_labels/`` or a path to a folder holding ``labels.json``."""
    text = text.strip()
    if not text:
        raise LabelError("give the label folder: a name under output/lvo_labels/ or the path `python -m lvo_core "
                         "label --out` wrote")
    path = Path(text)
    return path if path.is_absolute() or path.exists() else glue.output_directory() / LABEL_FOLDER / text


class LVOLabelSearch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOLabelSearch", display_name="LVO Label Search", category=CATEGORY,
            description="Finds the SAE features for a word: each feature's labels are the vocabulary phrases "
                        "whose generations raise it most (made once per SAE by `python -m lvo_core label`), each "
                        "scored by how well the feature detects that phrase's images on held-out seeds (AUROC; "
                        "0.5 = chance). Features whose labels match the text come first, best score first; the "
                        "units feed LVO Faithful and the Feature Page.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model the labels were made with."),
                SAE.Input("sae", tooltip="The SAE that was labelled (a label table of another SAE is refused)."),
                io.String.Input("labels", default="",
                                tooltip="Label folder: a name under output/lvo_labels/ or the path that `python -m "
                                        "lvo_core label --out` wrote (holds labels.json)."),
                io.String.Input("text", default="", tooltip="The word or phrase to find, e.g. 'rose' or 'red'."),
                io.Int.Input("top", default=4, min=1, max=256, tooltip="How many features to hand on."),
                io.String.Input("hookpoint", default="", tooltip="Block the SAE reads (diffusers or LDM name); "
                                                                 "empty = the labels' block."),
            ],
            outputs=[
                UNITS.Output(display_name="units", tooltip="The features found, best first, for LVO nodes."),
                LABELS.Output(display_name="labels", tooltip="The label table, for the Feature Page."),
                io.String.Output(display_name="report", tooltip="JSON: each hit's unit, matching label, lift, "
                                                                "normalised lift and detection score."),
            ])

    @classmethod
    def execute(cls, model, sae, labels: str, text: str, top: int, hookpoint: str) -> io.NodeOutput:
        table = LabelTable.load(labels_path(labels))
        table.check_matches(sae)
        hits = table.search(text, top=top)
        point = hookpoint.strip() or table.hookpoint
        units = make_unit_spec(glue.diffusion_model(model), point, [h["unit"] for h in hits], sae)
        lines = [f"{h['unit']}: {h['phrase']} " + ("(score -)" if h["score"] is None else f"(score {h['score']:.2f})")
                 for h in hits]
        return io.NodeOutput(units, table, json.dumps({"text": text, "hookpoint": point, "hits": hits}),
                             ui={"text": ["; ".join(lines)]})


NODES = [LVOLabelSearch]
