"""The toy world: synthetic images with known concepts, a linear latent codec, a tiny prompt encoder, a trained
SD-shaped UNet and SAE (``weights/``, made by ``python -m lvo_core.toy.train``) and a judge that can say "no
concept" — the ground truth against which LVO's visualizations can be measured."""

from pathlib import Path

WEIGHTS = Path(__file__).parent / "weights"
SAE_PATH = WEIGHTS / "sae" / "unet.up_blocks.1.attentions.1"
ANALYSIS = WEIGHTS / "activity.safetensors"
RAW_ANALYSIS = WEIGHTS / "activity_raw.safetensors"


def load_toy_encoder(folder: Path = WEIGHTS, device="cpu"):
    """The trained prompt encoder of the toy world."""
    from ..sae.formats import read_safetensors
    from .text import ToyPromptEncoder
    from .train import CONTEXT_DIM

    encoder = ToyPromptEncoder(CONTEXT_DIM)
    encoder.load_state_dict(read_safetensors(folder / "prompt_encoder.safetensors"))
    return encoder.to(device).eval()
