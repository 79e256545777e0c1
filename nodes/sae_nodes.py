"""SAE Loader and Feature Hook: pick an SAE from models/sae and the units of a block to look at."""

from __future__ import annotations

from ..lvo_core.sae import load_sae
from ..lvo_core.units import make_unit_spec, parse_units
from . import comfy_glue as glue

CATEGORY = "LVO"


class LVOSAELoader:
    NODE_ID = "LVOSAELoader"
    DISPLAY_NAME = "LVO SAE Loader"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Loads a sparse autoencoder from models/sae (sparsify/SAeUron folders and multi-hookpoint roots, "
                   "SAELens, dictionary_learning, openai-style, bare safetensors). Pickles are read only with "
                   "torch.load(weights_only=True).")
    RETURN_TYPES = ("LVO_SAE",)
    RETURN_NAMES = ("sae",)
    OUTPUT_TOOLTIPS = ("The SAE, carrying the hookpoint it was trained on.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sae_name": (glue.list_saes(), {"tooltip": "An SAE file or folder under ComfyUI/models/sae."}),
            "hookpoint": ("STRING", {"default": "", "tooltip": "For a folder holding SAEs of several blocks: which "
                                     "one (e.g. up_blocks.1.attentions.1 or output_blocks.4.1). Empty: the only one."}),
            "k": ("INT", {"default": 0, "min": 0, "max": 65536, "tooltip": "Active latents per token (TopK). "
                          "0 = read it from the SAE's config."}),
        }}

    def load(self, sae_name: str, hookpoint: str, k: int):
        sae = load_sae(glue.sae_path(sae_name), hookpoint=hookpoint or None, k=k or None)
        info = sae.summary()
        text = (f"{info['format']} SAE, {info['d_in']} → {info['d_sae']} latents, k={info['k']}, "
                f"{info['activation']}, hookpoint {info['hookpoint']}")
        return {"ui": {"text": [text]}, "result": (sae,)}


class LVOFeatureHook:
    NODE_ID = "LVOFeatureHook"
    DISPLAY_NAME = "LVO Feature Hook"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Chooses the units to study: SAE features (with an SAE) or raw channels (without) of one UNet "
                   "block. Checks that the SAE fits the block and every index is in range before anything runs.")
    RETURN_TYPES = ("LVO_UNITS",)
    RETURN_NAMES = ("units",)
    OUTPUT_TOOLTIPS = ("The validated unit selection (block, unit indices, SAE).",)
    FUNCTION = "select"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model whose block is hooked."}),
            "units": ("STRING", {"default": "0", "tooltip": "Feature (or channel) indices: '12, 305' or a range "
                                 "'10-13'."}),
            "hookpoint": ("STRING", {"default": "", "tooltip": "Block to hook, diffusers or ComfyUI/LDM name "
                                     "(up_blocks.1.attentions.1 = output_blocks.4.1). Empty: the SAE's own block, "
                                     "else up_blocks.1.attentions.1."}),
        }, "optional": {
            "sae": ("LVO_SAE", {"tooltip": "Leave unconnected to study raw channels (the baseline)."}),
        }}

    def select(self, model, units: str, hookpoint: str, sae=None):
        point = hookpoint.strip() or (sae.hookpoint if sae is not None and sae.hookpoint else
                                      "up_blocks.1.attentions.1")
        spec = make_unit_spec(glue.diffusion_model(model), point, parse_units(units), sae)
        text = f"{len(spec.units)} {'SAE features' if sae is not None else 'raw channels'} of {spec.hookpoint}"
        return {"ui": {"text": [text]}, "result": (spec,)}


NODES = [LVOSAELoader, LVOFeatureHook]
