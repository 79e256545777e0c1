"""Read every SAE checkpoint layout we meet in the wild into one :class:`~lvo_core.sae.model.SparseAutoencoder`;
write ours.

One module per layout, each registering an :class:`~.registry.SAEFormat` (how to detect it, how to load it):
:mod:`.sparsify` (sparsify/SAeUron, and roots of one folder per hookpoint), :mod:`.saelens`,
:mod:`.dictionary_learning`, :mod:`.openai` (sdxl-unbox, and its ``checkpoints/`` root) and :mod:`.bare` (a lone
weights file). A new layout is one new module here, imported below. Formats are told apart by file names only —
nothing is unpickled to find out what a file is. Pickled formats (dictionary_learning ``ae.pt``, openai-style
``state_dict.pth``) are read with ``torch.load(weights_only=True)``, which refuses to run code;
:func:`convert_to_safetensors` turns them into our safetensors layout once so they never need loading that way again.
"""

# Importing a format's module registers it.
from .bare import BARE
from .common import MAX_JSON_BYTES, cfg_int, hookpoint_from_folder, read_safetensors, safetensors_keys
from .dictionary_learning import DICTIONARY_LEARNING, DL_POST_2024_KEYS, dl_scales_codes_by_decoder_norm
from .openai import OPENAI, OPENAI_ROOT
from .registry import FORMATS, SAEFormat, describe, detect_format, list_sae_hookpoints, load_sae, register, root_members
from .saelens import SAELENS
from .save import convert_to_safetensors, save_sae
from .sparsify import SPARSIFY, SPARSIFY_ROOT

ROOT_FORMATS = (SPARSIFY_ROOT, OPENAI_ROOT)

__all__ = ["BARE", "DICTIONARY_LEARNING", "DL_POST_2024_KEYS", "FORMATS", "MAX_JSON_BYTES", "OPENAI", "OPENAI_ROOT",
           "ROOT_FORMATS", "SAELENS", "SAEFormat", "SPARSIFY", "SPARSIFY_ROOT", "cfg_int", "convert_to_safetensors",
           "describe", "detect_format", "dl_scales_codes_by_decoder_norm", "hookpoint_from_folder",
           "list_sae_hookpoints", "load_sae", "read_safetensors", "register", "root_members", "safetensors_keys",
           "save_sae"]
