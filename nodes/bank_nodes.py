"""Sample Bank (the model's own unconditional samples, scored for every unit) and LVO Faithful (the default recipe:
the best-scoring pool sample per unit and seed, briefly polished)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..lvo_core.analysis.bank import BankSettings, build_bank
from ..lvo_core.analysis.selection import SELECT_T
from ..lvo_core.errors import LVOError
from ..lvo_core.lvo.optimize import resolve_precision
from ..lvo_core.lvo.pipeline import AFTER_STEPS
from ..lvo_core.lvo.recipes import RunSpec, build_run, recipe, score_bank
from ..lvo_core.model.units import parse_seeds
from . import comfy_glue as glue
from .checks import bank_folder_name, check_text, selection_rule
from .comfy_glue import io
from .lvo_nodes import run_output
from .sockets import ACTIVITY, BANK, UNITS

CATEGORY = "LVO"
BANK_FOLDER = "lvo_banks"


def bank_folder(name: str) -> Path | None:
    """``output/lvo_banks/<name>`` for a named bank (kept and resumed across runs); None keeps it in memory."""
    name = bank_folder_name(name)
    if not name:
        return None
    base = glue.output_directory() / BANK_FOLDER
    folder = base / name
    if folder.resolve().parent != base.resolve():
        raise LVOError(f"bank name '{name}' leads outside output/{BANK_FOLDER}; choose a plain folder name")
    return folder


class LVOSampleBank(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOSampleBank", display_name="LVO Sample Bank", category=CATEGORY,
            description="A pool of the model's own samples (empty prompt, no CFG, DDIM), built once and reused by "
                        "every faithful visualization of this block: each unit starts from the pool image that "
                        "drives it hardest. Named banks are saved under output/lvo_banks/ and resume if "
                        "interrupted; a bank made with another model or SAE is refused.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD1.x/SD2.x UNet)."),
                UNITS.Input("units", tooltip="Units from LVO Feature Hook: the bank is scored at their block, with "
                                             "their SAE."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning of the EMPTY prompt: the pool is "
                                                              "sampled unconditionally."),
                io.Latent.Input("latent", tooltip="An Empty Latent Image: the size of the pool's samples."),
                io.Int.Input("size", default=160, min=8, max=100000,
                             tooltip="Pool size (160). On the toy world best-of-40 shows the concept 72 % of the "
                                     "time, best-of-160 88 %."),
                io.Int.Input("steps", default=25, min=1, max=200, tooltip="DDIM steps per sample (25)."),
                io.Int.Input("seed", default=BankSettings().seed, min=0, max=2 ** 48,
                             tooltip="Pool image i is sampled from seed + i."),
                io.String.Input("name", default="", tooltip="Folder name under output/lvo_banks/ to keep (and "
                                                            "resume) the bank; empty = this run only."),
            ],
            outputs=[BANK.Output(display_name="bank", tooltip="The sample bank, for LVO Faithful.")])

    @classmethod
    def validate_inputs(cls, name: str | None = None) -> bool | str:
        return check_text(name=name)

    @classmethod
    def execute(cls, model, units, empty_prompt, latent: dict, size: int, steps: int, seed: int,
                name: str) -> io.NodeOutput:
        shape = tuple(glue.latent_in(model, latent["samples"][:1]).shape[1:])
        backend = glue.backend(model, units, None, empty_prompt, shape, trainable=False)
        settings = BankSettings(size=size, steps=steps, seed=seed)
        progress = glue.Progress(size * steps)  # every denoising step of every sample moves the bar
        bank = build_bank(backend, settings, sae=units.sae, out=bank_folder(name), on_progress=progress,
                          should_stop=glue.interrupted)
        return io.NodeOutput(bank)


class LVOFaithful(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LVOFaithful", display_name="LVO Faithful", category=CATEGORY,
            description="The faithful recipe (the pack's default): per unit and seed, the sample-bank image that "
                        "drives the unit hardest at the selection timestep, then a short LVO polish there. On the "
                        "toy world, where the truth is known, its images show the unit's concept 88-92 % of the "
                        "time (paper recipe: 0-1 %). Interrupt keeps what is done.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (SD1.x/SD2.x UNet)."),
                io.Vae.Input("vae", tooltip="Decodes the visualizations."),
                UNITS.Input("units", tooltip="Units to visualize."),
                io.Conditioning.Input("empty_prompt", tooltip="Conditioning of the EMPTY prompt."),
                BANK.Input("bank", tooltip="A Sample Bank of this model and block."),
                io.String.Input("seeds", default="1, 2, 3, 4",
                                tooltip="One picture per seed: the k-th seed of the list starts from the unit's k-th "
                                        "best pool image (the seed itself draws the polish's noise)."),
                io.String.Input("selection_t", default=str(SELECT_T),
                                tooltip=f"Timestep the pool is scored and polished at: a number ({SELECT_T}, "
                                        f"measured best) or 'peak' (each unit's activity peak; needs an analysis)."),
                io.Int.Input("polish_steps", default=recipe("faithful").config.steps, min=0, max=1000,
                             tooltip="LVO steps after the selection (30; 0 = the pool image as it is). Longer "
                                     "polishes raise activation and lose the concept."),
                io.Combo.Input("precision", options=["auto", "fp32", "bf16", "fp16"],
                               tooltip="UNet precision (autocast; the latent stays fp32)."),
                ACTIVITY.Input("activity", optional=True,
                               tooltip="Activity analysis: dataset maxima for the ratio metric, peaks for 'peak'."),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="Visualization latents, one per unit × seed."),
                io.Image.Output(display_name="images", tooltip="Decoded visualizations."),
                io.String.Output(display_name="metrics", tooltip="Metrics per image as JSON (activation, ratio to "
                                                                 "dataset max, pool image, selection timestep)."),
            ])

    @classmethod
    def validate_inputs(cls, seeds: str | None = None, selection_t: str | None = None) -> bool | str:
        return check_text(seeds=seeds, selection_t=selection_t)

    @classmethod
    def execute(cls, model, vae, units, empty_prompt, bank, seeds: str, selection_t: str, polish_steps: int,
                precision: str, activity=None) -> io.NodeOutput:
        seed_list = parse_seeds(seeds)
        if not seed_list:
            raise LVOError("give at least one seed, e.g. '1, 2, 3, 4'")
        base = recipe("faithful", raw=units.sae is None)
        config = replace(base.config, steps=max(polish_steps, 1), check_every=10,
                         precision=resolve_precision(precision, glue.compute_device(model)))
        chosen = replace(base, config=config, polish=polish_steps > 0, select_t=selection_rule(selection_t))
        spec = RunSpec(chosen, list(units.units), seed_list, sae=units.sae, analysis=activity, bank=bank)
        backend = glue.backend(model, units, vae, empty_prompt, tuple(bank.latents.shape[1:]))
        progress = glue.Progress(len(units.units) * len(seed_list) * (max(polish_steps, 1) + AFTER_STEPS),
                                 keep_partial=True)
        try:
            score_bank(backend, spec, on_progress=progress)  # a foreign bank is refused before any scoring
            vis = build_run(backend, spec, batch_size="auto", on_progress=progress, should_stop=progress.should_stop)
            extra_mb = round(backend.copy_bytes / 2 ** 20, 1)
        finally:
            backend.release()
        return run_output(model, units, vis, progress, extra_mb, recipe=chosen.describe(),
                          notes=sorted({m["note"] for m in vis.metrics if m.get("note")}))


NODES = [LVOSampleBank, LVOFaithful]
