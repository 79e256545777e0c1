"""SAE Loader and Feature Hook: pick an SAE from models/sae and the units of a block to look at."""

from __future__ import annotations

from ..lvo_core.model.units import make_unit_spec, parse_units
from ..lvo_core.sae import load_sae
from . import comfy_glue as glue
from .checks import check_text
from .comfy_glue import io
from .sockets import SAE, UNITS

CATEGORY = "LVO"


class LVOSAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOSAELoader", display_name="LVO SAE Loader", category=CATEGORY,
            description="Loads a sparse autoencoder from models/sae (sparsify/SAeUron folders and multi-hookpoint "
                        "roots, SAELens, dictionary_learning, openai-style, bare safetensors). Pickles are read only "
                        "with torch.load(weights_only=True).",
            inputs=[
                io.Combo.Input("sae_name", options=glue.list_saes(),
                               tooltip="An SAE file or folder under ComfyUI/models/sae (symlinks and "
                                       "extra_model_paths.yaml 'sae:' folders count). Get SAeUron from the hub repo "
                                       "bcywinski/SAeUron (SD1.4/1.5) into models/sae/SAeUron, or sdxl-unbox from "
                                       "surkovv/sdxl-unbox."),
                io.String.Input("hookpoint", default="",
                                tooltip="For a folder holding SAEs of several blocks: which one (e.g. "
                                        "up_blocks.1.attentions.1 or output_blocks.4.1). Empty: the only one."),
                io.Int.Input("k", default=0, min=0, max=65536,
                             tooltip="Active latents per token (TopK). 0 = read it from the SAE's config."),
            ],
            outputs=[SAE.Output(display_name="sae", tooltip="The SAE, carrying the hookpoint it was trained on.")])

    @classmethod
    def execute(cls, sae_name: str, hookpoint: str, k: int) -> io.NodeOutput:
        sae = load_sae(glue.sae_path(sae_name), hookpoint=hookpoint or None, k=k or None)
        info = sae.summary()
        text = (f"{info['format']} SAE, {info['d_in']} → {info['d_sae']} latents, k={info['k']}, "
                f"{info['activation']}, hookpoint {info['hookpoint']}")
        return io.NodeOutput(sae, ui={"text": [text]})


class LVOFeatureHook(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOFeatureHook", display_name="LVO Feature Hook", category=CATEGORY,
            description="Chooses the units to study: SAE features (with an SAE) or raw channels (without) of one "
                        "UNet block. Checks that the SAE fits the block and every index is in range before anything "
                        "runs.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model whose block is hooked."),
                io.String.Input("units", default="0",
                                tooltip="Feature (or channel) indices: '12, 305' or a range '10-13'."),
                io.String.Input("hookpoint", default="",
                                tooltip="Block to hook, diffusers or ComfyUI/LDM name (up_blocks.1.attentions.1 = "
                                        "output_blocks.4.1). Empty: the SAE's own block, else "
                                        "up_blocks.1.attentions.1."),
                SAE.Input("sae", optional=True, tooltip="Leave unconnected to study raw channels (the baseline)."),
            ],
            outputs=[UNITS.Output(display_name="units",
                                  tooltip="The validated unit selection (block, unit indices, SAE).")])

    @classmethod
    def validate_inputs(cls, units: str | None = None) -> bool | str:
        return check_text(units=units)

    @classmethod
    def execute(cls, model, units: str, hookpoint: str, sae=None) -> io.NodeOutput:
        point = hookpoint.strip() or (sae.hookpoint if sae is not None and sae.hookpoint else
                                      "up_blocks.1.attentions.1")
        spec = make_unit_spec(glue.diffusion_model(model), point, parse_units(units), sae)
        text = f"{len(spec.units)} {'SAE features' if sae is not None else 'raw channels'} of {spec.hookpoint}"
        return io.NodeOutput(spec, ui={"text": [text]})


NODES = [LVOSAELoader, LVOFeatureHook]
