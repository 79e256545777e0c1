"""The toy world's ground truth wired to the faithfulness metrics: labelled dataset latents, concept purity with the
true prompt or the empty one, and the judge's reading of visualizations."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..analysis.faithfulness import ConceptPurity, concept_purity, dataset_activations
from ..model.backend import Backend, DiffusersBackend
from ..progress import ProgressFn, StepFn, stage
from ..sae.model import SparseAutoencoder
from . import SAE_PATH, WEIGHTS, load_toy_model
from .codec import PatchPCACodec
from .judge import Judge
from .world import COLORS, SHAPES, Dataset, make_dataset

HOOKPOINT = "up_blocks.1.attentions.1"
AXES = {"shape": list(SHAPES), "color": list(COLORS)}
PURITY_SEED = 7_000  # the held-out images purity is measured on (training used seed 0's stream)


@dataclass
class ToyWorld:
    """Everything the toy world's measurements need, loaded once."""

    backend: Backend
    sae: SparseAutoencoder
    codec: PatchPCACodec
    encode_prompt: Any
    judge: Judge

    @classmethod
    def load(cls, device: str | torch.device = "cpu") -> "ToyWorld":
        from ..sae import load_sae

        model = load_toy_model(device=device)
        backend = DiffusersBackend(model.denoiser, HOOKPOINT, scheduler=model.scheduler, decoder=model.decoder,
                                   encode_prompt=model.encode_prompt)
        return cls(backend, load_sae(SAE_PATH).to(device=device), model.info["decoder"], model.encode_prompt,
                   Judge.load(WEIGHTS / "judge.safetensors"))

    def encode_images(self, images: Tensor) -> Tensor:
        return self.codec.encode(images.float().cpu())

    def read(self, images: Tensor) -> list[dict[str, str]]:
        """The judge's reading of decoded images ``[B, 3, H, W]`` in the codec's [-1, 1] range."""
        return [{"shape": s, "color": c} for s, c in self.judge.read(images.float().cpu().clamp(-1, 1))]


@dataclass
class PurityData:
    """Labelled held-out images."""

    data: Dataset

    @cached_property
    def images(self) -> Tensor:
        return torch.from_numpy(self.data.images).float()

    @property
    def labels(self) -> dict[str, np.ndarray]:
        return {"shape": self.data.shapes, "color": self.data.colors}


def purity_data(count: int = 1000, seed: int = PURITY_SEED) -> PurityData:
    return PurityData(make_dataset(count, seed))


def measure_purity(world: ToyWorld, data: PurityData, *, raw: bool = False, prompted: bool = False,
                   timestep: int = 200, top: int = 20, on_progress: StepFn | None = None) -> ConceptPurity:
    """Concept purity of every SAE feature (or raw channel) on held-out world images noised to ``timestep``, with
    the true prompt in the conditioning (``prompted``) or the empty one (as LVO sees the model)."""
    latents = world.encode_images(data.images)
    context = None
    if prompted:
        with torch.no_grad():
            context = world.encode_prompt(data.data.prompts()).to(world.backend.device)
    acts = dataset_activations(world.backend, latents, timestep, None if raw else world.sae, context,
                               on_progress=on_progress)
    return concept_purity(acts, data.labels, AXES, top=top, unit_kind="raw" if raw else "sae", prompted=prompted,
                          timestep=timestep, images=len(latents))


def describe(purity: ConceptPurity, units: Sequence[int]) -> list[str]:
    return ["{}={} ({:.0%})".format(*purity.concept(u)) for u in units]


def ablation_units(purity: ConceptPurity, raw_purity: ConceptPurity, analysis, raw_analysis, count: int = 10,
                   raw_count: int = 4, held_out: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Test units: concept-pure (≥ 75 %) SAE features and raw channels that the activity analysis saw active (the
    paper's steering prior needs active timesteps), covering shapes and colours alike; and ``held_out`` more such
    features, disjoint from the first, that no default was chosen on."""
    def active_in(a, exclude=()):
        return lambda u: len(a.active_timesteps(u)) > 0 and u not in exclude
    units = purity.balanced(count, active_in(analysis), min_share=0.75)
    extra = purity.balanced(held_out, active_in(analysis, set(units)), min_share=0.75) if held_out else []
    return units, raw_purity.balanced(raw_count, active_in(raw_analysis), min_share=0.75), extra


@dataclass
class ToyStudy:
    """What the demo and the ablation share: the world, held-out labelled data, purity on the empty prompt (as LVO
    sees the model), the shipped activity analyses, the chosen test units, steering priors and the judging."""

    world: ToyWorld
    data: PurityData
    purity: ConceptPurity
    raw_purity: ConceptPurity
    analysis: Any
    raw_analysis: Any
    units: list[int]
    raw_units: list[int]
    steer_prior: Any
    judging: Any
    held_out: list[int]
    bank: Any = None

    def concepts(self) -> dict[str, dict[str, str]]:
        return {"sae": dict(zip(map(str, self.units), describe(self.purity, self.units))),
                "raw": dict(zip(map(str, self.raw_units), describe(self.raw_purity, self.raw_units))),
                "held_out": dict(zip(map(str, self.held_out), describe(self.purity, self.held_out)))}

    def ensure_bank(self, settings=None, on_progress=None):
        """The toy world's sample bank (built once per study, in memory: it takes seconds here)."""
        from ..analysis.bank import BankSettings, build_bank

        if self.bank is None:
            self.bank = build_bank(self.world.backend, settings or BankSettings(), on_progress=on_progress)
        return self.bank

    def purity_table(self, threshold: float = 0.8) -> list[dict[str, Any]]:
        """Purity summaries of SAE features and raw channels, each with the true and the empty prompt."""
        table = []
        for raw, unprompted in ((False, self.purity), (True, self.raw_purity)):
            prompted = measure_purity(self.world, self.data, raw=raw, prompted=True,
                                      timestep=unprompted.info["timestep"], top=unprompted.top)
            table += [prompted.summary(threshold), unprompted.summary(threshold)]
        return table


def prepare_study(count: int = 10, raw_count: int = 4, images: int = 1000, prior_steps: int = 50,
                  device: str | torch.device = "cpu", held_out: int = 0,
                  progress: ProgressFn | None = None) -> ToyStudy:
    """The toy world, its held-out data and purity, analyses, test units and priors; ``progress`` sees the purity
    passes and, later, every steering prior's sampling steps."""
    from ..analysis.activity import ActivityAnalysis
    from ..model.tiny import sd15_scheduler
    from . import ANALYSIS, RAW_ANALYSIS
    from .ablate import Judging, steer_factory

    world = ToyWorld.load(device)
    data = purity_data(images)
    purity = measure_purity(world, data, on_progress=stage(progress, "purity of SAE features (images)"))
    raw_purity = measure_purity(world, data, raw=True, on_progress=stage(progress, "purity of raw channels (images)"))
    analysis, raw_analysis = ActivityAnalysis.load(ANALYSIS), ActivityAnalysis.load(RAW_ANALYSIS)
    units, raw_units, held = ablation_units(purity, raw_purity, analysis, raw_analysis, count, raw_count, held_out)
    with torch.no_grad():
        empty = world.encode_prompt([""])
    factory = steer_factory(world.backend, sd15_scheduler(), empty, prior_steps, progress)
    return ToyStudy(world, data, purity, raw_purity, analysis, raw_analysis, units, raw_units, factory,
                    Judging(purity, raw_purity, world.read, world.encode_images), held)


def toy_ablation(out=None, *, variants=None, seeds: Sequence[int] = (1, 2, 3, 4), count: int = 10,
                 raw_count: int = 4, images: int = 1000, prior_steps: int = 50, batch_size: int = 64,
                 device: str | torch.device = "cpu", on_variant=None, should_stop=None, held_out: int = 0,
                 held_out_variants=None, bank_settings=None, on_phase=None,
                 progress: ProgressFn | None = None) -> dict[str, Any]:
    """The ablation on the toy world: purity-selected units, every variant, every faithfulness metric; with
    ``held_out``, that many further concept-pure features get ``held_out_variants`` (default: the three recipes).
    ``on_phase(name)`` announces each preparation phase; ``progress(label, done, total)`` sees every loop."""
    from .ablate import held_out_variants as default_held_out
    from .ablate import run_ablation, standard_variants

    say = on_phase or (lambda _name: None)
    say("purity of every unit on 1000 held-out images, activity analyses, test units")
    study = prepare_study(count, raw_count, images, prior_steps, device, held_out, progress)
    variants = variants or standard_variants()
    held = list(held_out_variants or default_held_out()) if held_out else []
    bank = None
    if any(v.prior == "bank" for v in [*variants, *held]):
        say("sample bank (the model's own unconditional samples)")
        bank = study.ensure_bank(bank_settings, on_progress=stage(progress, "sample bank (images × steps)"))
    say("variants")
    return run_ablation(study.world.backend, variants, study.units, study.raw_units,
                        sae=study.world.sae, analysis=study.analysis, raw_analysis=study.raw_analysis, seeds=seeds,
                        steer_prior=study.steer_prior, judging=study.judging, out=out, batch_size=batch_size,
                        on_variant=on_variant, should_stop=should_stop, bank=bank, held_out=study.held_out,
                        held_out_variants=held, progress=progress,
                        extra={"concepts": study.concepts(), "purity": study.purity_table(),
                               "bank": bank.describe() if bank is not None else None})
