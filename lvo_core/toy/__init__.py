"""The toy world: synthetic images with known concepts, a linear latent codec, a tiny prompt encoder, a trained
SD-shaped UNet and SAE (``weights/``, made by ``python -m lvo_core.toy.train``) and a judge that can say "no
concept" — the ground truth against which LVO's visualizations can be measured."""

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"
SAE_PATH = WEIGHTS / "sae" / "unet.up_blocks.1.attentions.1"
ANALYSIS = WEIGHTS / "activity.safetensors"
RAW_ANALYSIS = WEIGHTS / "activity_raw.safetensors"
TOY = "toy"


def load_toy_encoder(folder: Path = WEIGHTS, device="cpu"):
    """The trained prompt encoder of the toy world."""
    from ..sae.formats import read_safetensors
    from .text import ToyPromptEncoder
    from .train import CONTEXT_DIM

    encoder = ToyPromptEncoder(CONTEXT_DIM)
    encoder.load_state_dict(read_safetensors(folder / "prompt_encoder.safetensors"))
    return encoder.to(device).eval()


def load_toy_model(device="cpu", dtype=None):
    """The trained toy world as a :class:`~lvo_core.model.loading.LoadedModel`: its UNet, codec (as the decoder,
    also in ``info["decoder"]``) and prompt encoder. It lives here, not in the model loader, so that model access
    never imports the toy world."""
    import torch
    from diffusers import UNet2DConditionModel

    from ..errors import LVOError
    from ..model.loading import LoadedModel, place
    from ..model.tiny import sd15_scheduler
    from .codec import PatchPCACodec

    device, dtype = torch.device(device), dtype or torch.float32
    if not (WEIGHTS / "unet" / "config.json").is_file():
        raise LVOError(f"the toy world's weights are missing from {WEIGHTS}; train them with "
                       f"`python -m lvo_core.toy.train`")
    # low_cpu_mem_usage=False: a 2.5 M-parameter model gains nothing from accelerate, and diffusers would warn
    unet = UNet2DConditionModel.from_pretrained(str(WEIGHTS / "unet"), local_files_only=True, low_cpu_mem_usage=False,
                                                torch_dtype=torch.float32)
    codec = PatchPCACodec.load(WEIGHTS / "codec.safetensors")
    return LoadedModel(place(unet, device, dtype), sd15_scheduler(), None, load_toy_encoder(WEIGHTS, device), TOY,
                       {"kind": "toy world", "decoder": codec})
