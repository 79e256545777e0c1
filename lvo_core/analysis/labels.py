"""Labels the model gives its own features, scored on held-out generations, and search by text.

The diffusion model already reads text, so no extra network is needed to name a feature. For every phrase of a
vocabulary, **lift** is how much conditioning on the phrase raises each feature: the model generates from the phrase
and from the empty prompt on the same labelling seeds, both generations are read the way the sample bank reads its
samples (noised to the selection timestep, empty prompt, fixed draws, spatial-mean dense activation), and the
per-seed difference is averaged. (Reading one forward pass with the phrase in the cross-attention on bank latents
was measured first: on the toy world it named 46 % of the concept-pure features and no shape feature, so the
phrase has to act through the generation.) A generic phrase raises many features; so lift is **normalised per
phrase** (centred over all units): a label says "this phrase raises this feature more than features in general".
A feature's labels are its phrases ranked by that normalised lift.

A label is then **scored** the way delphi scores language-model labels: images are generated from each label phrase
on seeds never used for labelling (``SCORE_SEED`` + i; labelling uses ``LABEL_SEED`` + i),
read with the empty prompt at the same timestep, and the **detection AUROC** says how well the feature's
activation tells the phrase's images from the other phrases' images (0.5: the label predicts nothing). Labels are
ranked by that score; a feature none of whose labels reaches ``trusted`` (0.85) is said to have no label that
predicts it. The same table answers search by text.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import LVOError
from ..fileio import atomic_write
from ..model.backend import Backend
from ..sae.model import SparseAutoencoder
from .activity import sae_fingerprint

LABEL_SEED = 5 << 20  # generations that labelling reads
SCORE_SEED = 6 << 20  # generations that score labels: never used for labelling
FORMAT_VERSION = 1
Progress = Callable[[int, int], None]


class LabelError(LVOError):
    """A vocabulary, label table or labelling setting is unusable."""


@dataclass(frozen=True)
class LabelSettings:
    """How phrases are lifted and labels scored."""

    timestep: int = 200
    label_images: int = 16
    score_images: int = 8
    steps: int = 25
    guidance: float = 1.0
    draws: int = 2
    top: int = 5
    batch_size: int = 64
    trusted: float = 0.85

    def __post_init__(self) -> None:
        for name in ("label_images", "score_images", "steps", "draws", "top", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise LabelError(f"label setting {name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------- vocabulary
def vocabulary(name_or_path: str | Path = "common") -> list[str]:
    """Phrases, one a line: a shipped vocabulary by name (``common``, ``toy``) or a text file of the user's own
    (``#`` starts a comment). Duplicates are dropped, order kept."""
    path = Path(name_or_path)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        shipped = resources.files("lvo_core.analysis") / "vocabulary" / f"{name_or_path}.txt"
        if not shipped.is_file():
            raise LabelError(f"vocabulary '{name_or_path}' is neither a file nor a shipped list "
                             f"({', '.join(shipped_vocabularies())}); give a text file, one phrase a line")
        text = shipped.read_text(encoding="utf-8")
    phrases = list(dict.fromkeys(line.strip() for line in text.splitlines()
                                 if line.strip() and not line.strip().startswith("#")))
    if len(phrases) < 2:
        raise LabelError(f"vocabulary '{name_or_path}' has {len(phrases)} phrase(s); labels need at least two to "
                         f"compare")
    return phrases


def shipped_vocabularies() -> list[str]:
    folder = resources.files("lvo_core.analysis") / "vocabulary"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


# ---------------------------------------------------------------------------------------------- lift
def _contexts(backend: Backend, phrases: Sequence[str]) -> Tensor:
    encode = getattr(backend, "encode_prompt", None)
    if encode is None:
        raise LabelError("labelling conditions the model on phrases: this backend has no prompt encoder")
    with torch.no_grad():
        context = encode(list(phrases))
    if not isinstance(context, Tensor):
        raise LabelError("labels need plain text conditioning [B, L, D] (SD1.x/2.x, the toy world); this model's "
                         "conditioning carries extra parts")
    return context.to(backend.device)


def label_seeds(count: int) -> list[int]:
    """Seeds of the generations that labelling reads."""
    return list(range(LABEL_SEED, LABEL_SEED + count))


def phrase_activations(backend: Backend, sae: SparseAutoencoder | None, phrases: Sequence[str],
                       seeds: Sequence[int], settings: "LabelSettings",
                       on_progress: Progress | None = None) -> Tensor:
    """Every unit's spatial-mean dense activation ``[P, S, U]`` on the generation of each phrase from each seed,
    read like the bank reads its samples (noised to the selection timestep, empty prompt, fixed draws)."""
    from .bank import score_latents

    latents = phrase_images(backend, phrases, seeds, steps=settings.steps, guidance=settings.guidance,
                            batch_size=settings.batch_size, on_progress=on_progress)
    acts = score_latents(backend, latents, settings.timestep, sae, settings.draws, settings.batch_size)
    return acts.float().reshape(len(phrases), len(seeds), -1)


def lift_from(acts: Tensor, empty: Tensor) -> Tensor:
    """Lift ``[P, U]``: per seed, the activation on the phrase's generation minus that on the empty prompt's
    generation from the same seed (paired: layout and size cancel), averaged over seeds."""
    return (acts - empty[None]).mean(1)


def normalise(lift: Tensor) -> Tensor:
    """Per phrase, the lift minus its mean over all units, in units of the table's spread: a phrase that raises
    every feature alike (a generic word) raises none of them in particular."""
    centred = lift - lift.mean(1, keepdim=True)
    return centred / centred.std().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------- scoring
def score_seeds(count: int) -> list[int]:
    """Seeds of the generations that score labels (disjoint from every labelling seed)."""
    return list(range(SCORE_SEED, SCORE_SEED + count))


@torch.no_grad()
def phrase_images(backend: Backend, phrases: Sequence[str], seeds: Sequence[int], *, steps: int = 25,
                  guidance: float = 3.0, batch_size: int = 16, on_progress: Progress | None = None) -> Tensor:
    """Latents ``[P·S, C, H, W]`` generated from every phrase on every seed (phrase-major), DDIM with CFG."""
    from ..model.sampling import sample_with

    contexts = _contexts(backend, phrases)
    uncond = backend.empty_context(1)
    scheduler = backend.schedule.sampler(steps)
    out, done = [], 0
    per = max(1, batch_size // len(seeds))
    with torch.inference_mode(False):
        for start in range(0, len(phrases), per):
            ctx = contexts[start:start + per]
            cond = ctx.repeat_interleave(len(seeds), dim=0)
            out.append(sample_with(backend.predict, scheduler, cond, uncond=uncond, guidance=guidance, steps=steps,
                                   seeds=list(seeds) * len(ctx), latent_shape=backend.latent_shape,
                                   device=backend.device).float().cpu())
            done += len(ctx)
            if on_progress is not None:
                on_progress(done, len(phrases))
    return torch.cat(out)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1…N of a vector with ties given their average rank (what the Mann–Whitney AUROC needs: ReLU features
    are exactly zero on many images)."""
    order = np.argsort(values, kind="stable")
    sorted_v = values[order]
    ranks = np.empty(len(values), np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2
    return ranks


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half."""
    if len(positive) == 0 or len(negative) == 0:
        raise LabelError("AUROC needs positives and negatives")
    ranks = average_ranks(np.concatenate([positive, negative]).astype(np.float64))
    p = len(positive)
    return float((ranks[:p].sum() - p * (p + 1) / 2) / (p * len(negative)))


def detection_scores(acts: Tensor, phrase_of: Sequence[int], pairs: dict[int, Sequence[int]]) -> dict[int, dict[int, float]]:
    """Detection AUROC per ``unit → [phrase]`` in ``pairs``: the unit's activation ``acts[:, unit]`` on images of
    that phrase against images of every other phrase (``phrase_of[i]`` is image i's phrase)."""
    phrase_of = np.asarray(phrase_of)
    out: dict[int, dict[int, float]] = {}
    for unit, plist in pairs.items():
        column = acts[:, unit].double().numpy()
        ranks = average_ranks(column)
        out[unit] = {}
        for p in plist:
            mask = phrase_of == p
            npos, nneg = int(mask.sum()), int((~mask).sum())
            if npos == 0 or nneg == 0:
                raise LabelError(f"phrase {p} has no scoring images (or every image is its)")
            out[unit][p] = float((ranks[mask].sum() - npos * (npos + 1) / 2) / (npos * nneg))
    return out


# ---------------------------------------------------------------------------------------------- the table
@dataclass
class LabelTable:
    """Per unit its labels (phrase, lift, normalised lift, detection score) and the settings that made them."""

    phrases: list[str]
    lift: Tensor  # [P, U]
    normalised: Tensor  # [P, U]
    labels: dict[int, list[dict[str, Any]]]
    settings: LabelSettings
    hookpoint: str
    kind: str = "sae"
    sae_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_units(self) -> int:
        return int(self.lift.shape[1])

    def best(self, unit: int) -> dict[str, Any] | None:
        """The unit's top label: its best-scored label when scored, else its highest lift; None without labels."""
        labels = self.labels.get(int(unit)) or []
        return labels[0] if labels else None

    def trusted(self, unit: int) -> bool:
        best = self.best(unit)
        return best is not None and best.get("score") is not None and best["score"] >= self.settings.trusted

    def matching_phrases(self, text: str) -> list[int]:
        """Vocabulary phrases that contain the text as whole words (or, failing that, share a word with it)."""
        query = " ".join(text.lower().split())
        if not query:
            raise LabelError("search text is empty; give a word or phrase, e.g. 'rose'")
        words = query.split()
        matches = [i for i, p in enumerate(self.phrases)
                   if any(p.lower().split()[k:k + len(words)] == words for k in range(len(p.split())))]
        if not matches:
            matches = [i for i, p in enumerate(self.phrases) if set(words) & set(p.lower().split())]
        if not matches:
            raise LabelError(f"'{text}' matches no phrase of this vocabulary ({len(self.phrases)} phrases, e.g. "
                             f"{', '.join(self.phrases[:5])}); relabel with a vocabulary that has it")
        return matches

    def search(self, text: str, top: int = 10) -> list[dict[str, Any]]:
        """Units for a word. Units with labels that contain it come first, ranked by how much of their label set is
        about the word: the sum of the matching labels' detection scores over the number of labels (so a unit
        labelled "red", "red ring", "red cross" beats one labelled "red ring", "yellow ring", "yellow"; measured
        on the toy world, it puts pure features of a colour first where the best single label does not). Each hit
        carries its best matching label and score; units without such a label follow by normalised lift of the
        best matching phrase (``label_rank`` None)."""
        matches = set(self.matching_phrases(text))
        hits = []
        for unit, labels in self.labels.items():
            found = [(rank, lab) for rank, lab in enumerate(labels) if lab["index"] in matches]
            if not found:
                continue
            scores = [0.5 if lab.get("score") is None else lab["score"] for _, lab in found]
            rank, lab = max(found, key=lambda rl: (0.5 if rl[1].get("score") is None else rl[1]["score"], -rl[0]))
            hits.append({"unit": unit, "match": round(sum(scores) / len(labels), 4), "phrase": lab["phrase"],
                         "label_rank": rank + 1, "lift": lab["lift"], "normalised": lab["normalised"],
                         "score": lab.get("score")})
        hits.sort(key=lambda h: (-h["match"], -(h["score"] or 0.5), h["unit"]))
        if len(hits) < top:
            seen = {h["unit"] for h in hits}
            best = torch.stack([self.normalised[p] for p in sorted(matches)]).max(0)
            for unit in torch.sort(best.values, descending=True, stable=True).indices.tolist():
                if len(hits) >= top:
                    break
                if unit not in seen:
                    p = sorted(matches)[int(best.indices[unit])]
                    hits.append({"unit": unit, "match": None, "phrase": self.phrases[p], "label_rank": None,
                                 "lift": round(float(self.lift[p, unit]), 6),
                                 "normalised": round(float(self.normalised[p, unit]), 4), "score": None})
        return hits[:top]

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "kind": self.kind, "hookpoint": self.hookpoint,
                "sae_id": self.sae_id, "settings": asdict(self.settings), "phrases": self.phrases,
                "labels": {str(u): v for u, v in sorted(self.labels.items())}, "info": self.info}

    def save(self, folder: str | Path) -> Path:
        """``labels.json`` (labels, settings) and ``lift.safetensors`` (the full lift table) in ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1)
        atomic_write(folder / "labels.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        tensors = {"lift": self.lift.float().contiguous(), "normalised": self.normalised.float().contiguous()}
        atomic_write(folder / "lift.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        return folder / "labels.json"

    @classmethod
    def load(cls, path: str | Path) -> "LabelTable":
        """From a folder (or its ``labels.json``) written by :meth:`save`."""
        from ..sae.formats import read_safetensors

        path = Path(path)
        folder = path.parent if path.name == "labels.json" else path
        if not (folder / "labels.json").is_file():
            raise LabelError(f"{folder} holds no labels.json; make one with `python -m lvo_core label`")
        try:
            data = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LabelError(f"{folder / 'labels.json'} is not readable JSON ({exc}); label again") from exc
        if data.get("format_version") != FORMAT_VERSION:
            raise LabelError(f"{folder / 'labels.json'} has format {data.get('format_version')}, expected "
                             f"{FORMAT_VERSION}; label again")
        tensors = read_safetensors(folder / "lift.safetensors")
        return cls(data["phrases"], tensors["lift"], tensors["normalised"],
                   {int(u): v for u, v in data["labels"].items()}, LabelSettings(**data["settings"]),
                   data["hookpoint"], data.get("kind", "sae"), data.get("sae_id"), data.get("info", {}))

    def check_matches(self, sae: SparseAutoencoder | None) -> None:
        if sae is not None and self.sae_id is not None and sae_fingerprint(sae) != self.sae_id:
            raise LabelError("these labels were made for a different SAE (its fingerprint differs); label this SAE")


def rank_labels(phrases: Sequence[str], lift: Tensor, normalised: Tensor, units: Sequence[int],
                top: int) -> dict[int, list[dict[str, Any]]]:
    """Each unit's ``top`` phrases by normalised lift, only those that raise it (lift > 0)."""
    out = {}
    for unit in units:
        order = torch.sort(normalised[:, unit], descending=True, stable=True).indices.tolist()
        out[int(unit)] = [{"phrase": phrases[p], "index": int(p), "lift": round(float(lift[p, unit]), 6),
                           "normalised": round(float(normalised[p, unit]), 4)}
                          for p in order[:top] if float(lift[p, unit]) > 0]
    return out


def score_labels(labels: dict[int, list[dict[str, Any]]], acts: Tensor, phrase_of: Sequence[int]) -> None:
    """Add each label's detection score and sort labels by it (best first), in place."""
    pairs = {u: [lab["index"] for lab in labs] for u, labs in labels.items() if labs}
    scores = detection_scores(acts, phrase_of, pairs)
    for unit, labs in labels.items():
        for lab in labs:
            lab["score"] = round(scores[unit][lab["index"]], 4)
        labs.sort(key=lambda lab: (-lab["score"], -lab["normalised"]))


def label_units(backend: Backend, sae: SparseAutoencoder | None, phrases: Sequence[str], *,
                settings: LabelSettings = LabelSettings(), units: Sequence[int] | None = None, score: bool = True,
                on_progress: Progress | None = None, on_phase: Callable[[str], None] | None = None) -> LabelTable:
    """Label ``units`` (default: all) with ``phrases``: paired lift on generations from the labelling seeds,
    normalised per phrase; then, with ``score``, detection scores from generations of each label phrase on held-out
    seeds. Every unit is read in the same batched passes, so labelling one unit costs as much as labelling all."""
    say = on_phase or (lambda _name: None)
    if len(phrases) < 2:
        raise LabelError(f"labels need at least two phrases to compare, got {len(phrases)}")
    seeds = label_seeds(settings.label_images)
    say(f"labelling generations: {len(phrases)} phrases and the empty prompt x {len(seeds)} seeds")
    acts = phrase_activations(backend, sae, ["", *phrases], seeds, settings, on_progress)
    lift = lift_from(acts[1:], acts[0])
    normalised = normalise(lift)
    todo = list(range(lift.shape[1])) if units is None else [int(u) for u in units]
    labels = rank_labels(phrases, lift, normalised, todo, settings.top)
    info: dict[str, Any] = {"label_seeds": [seeds[0], seeds[-1] + 1]}
    if score:
        used = sorted({lab["index"] for labs in labels.values() for lab in labs} | {0, 1})
        held = score_seeds(settings.score_images)
        say(f"held-out generations: {len(used)} phrases x {len(held)} seeds")
        test = phrase_activations(backend, sae, [phrases[p] for p in used], held, settings, on_progress)
        score_labels(labels, test.reshape(-1, test.shape[-1]), [p for p in used for _ in held])
        info.update(score_seeds=[held[0], held[-1] + 1], scored_phrases=len(used))
    return LabelTable(list(phrases), lift, normalised, labels, settings, backend.hookpoint.diffusers_name,
                      "sae" if sae is not None else "raw", sae_fingerprint(sae) if sae is not None else None, info)


# ---------------------------------------------------------------------------------------------- report card
def monosemanticity(embeddings: Tensor, activations: Tensor) -> float:
    """MonoSemanticity score (Pach et al. 2025): activation-weighted mean cosine similarity of the embeddings of
    image pairs, activations min–max scaled to [0, 1] over the images; 1 means every image that fires the unit
    looks alike."""
    a = activations.double()
    a = (a - a.min()) / (a.max() - a.min()).clamp_min(1e-12)
    e = torch.nn.functional.normalize(embeddings.double(), dim=1)
    sim = e @ e.T
    w = a[:, None] * a[None, :]
    off = ~torch.eye(len(a), dtype=torch.bool)
    total = w[off].sum()
    return float((w[off] * sim[off]).sum() / total) if total > 0 else math.nan
