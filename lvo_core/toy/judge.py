"""A judge for the toy world that can say "no concept".

A plain classifier reads pure noise as *some* shape (a prototype read noise as "ring" 100 % of the time), so
agreement with it would flatter any visualization. This one is a small CNN with two heads (shape, colour), each with
an extra ``none`` class, trained on the labelled world *and* on images that show no concept: Gaussian and uniform
noise, blank backgrounds, soft colour blobs, and two half-shapes mixed. It reads an image as a concept only when it
is confident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..fileio import atomic_write
from .world import COLORS, SHAPES, make_dataset

NONE = "none"


class Judge(nn.Module):
    """Images ``[B, 3, 32, 32]`` in [-1, 1] → shape logits ``[B, S+1]`` and colour logits ``[B, C+1]``
    (the last class is ``none``)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.shape_head = nn.Linear(256, len(SHAPES) + 1)
        self.color_head = nn.Linear(256, len(COLORS) + 1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(images)
        return self.shape_head(h), self.color_head(h)

    @torch.no_grad()
    def read(self, images: Tensor, threshold: float = 0.6) -> list[tuple[str, str]]:
        """``(shape, colour)`` per image, ``none`` where the judge is not confident or sees no concept."""
        shape_p, color_p = (F.softmax(logits, -1) for logits in self(images.float()))
        names_s, names_c = [*SHAPES, NONE], [*COLORS, NONE]

        def pick(p: Tensor, names: list[str]) -> list[str]:
            conf, idx = p.max(-1)
            return [names[i] if c >= threshold else NONE for c, i in zip(conf.tolist(), idx.tolist())]
        return list(zip(pick(shape_p, names_s), pick(color_p, names_c)))

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        return atomic_write(path, lambda tmp: save_file(state, str(tmp)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Judge":
        from ..sae.formats import read_safetensors

        judge = cls()
        judge.load_state_dict(read_safetensors(path))
        return judge.eval()


def no_concept_images(n: int, seed: int) -> Tensor:
    """Images that show no planted concept: noise, blank backgrounds, soft blobs, mixtures of two half-shapes."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(5, size=n)
    out = np.empty((n, 3, 32, 32), np.float32)
    mix = make_dataset(2 * n, seed + 1).images
    for i, kind in enumerate(kinds):
        if kind == 0:
            out[i] = rng.normal(0, rng.uniform(0.2, 1.0), (3, 32, 32))
        elif kind == 1:
            out[i] = rng.uniform(-1, 1, (3, 32, 32))
        elif kind == 2:
            out[i] = rng.uniform(-0.9, -0.4) + rng.normal(0, 0.03, (3, 32, 32))
        elif kind == 3:
            yy, xx = np.mgrid[:32, :32]
            blob = np.exp(-((xx - rng.uniform(4, 28)) ** 2 + (yy - rng.uniform(4, 28)) ** 2) / rng.uniform(20, 120))
            out[i] = -0.7 + blob * rng.uniform(0.5, 1.7, (3, 1, 1))
        else:
            left, right = mix[2 * i], mix[2 * i + 1]
            out[i] = np.concatenate([left[:, :, :16], right[:, :, 16:]], axis=2)
    return torch.from_numpy(np.clip(out, -1, 1))


def train_judge(n: int = 12000, steps: int = 1500, seed: int = 0,
                on_step: Callable[[int, int], None] | None = None) -> tuple[Judge, dict[str, float]]:
    """Train on the world (labelled) plus no-concept images (label ``none`` on both heads); report held-out
    accuracies."""
    torch.manual_seed(seed)
    data = make_dataset(n, seed + 10)
    none = no_concept_images(n // 4, seed + 20)
    images = torch.cat([torch.from_numpy(data.images).float(), none])
    shapes = torch.cat([torch.from_numpy(data.shapes), torch.full((len(none),), len(SHAPES))]).long()
    colors = torch.cat([torch.from_numpy(data.colors), torch.full((len(none),), len(COLORS))]).long()
    judge = Judge()
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(images), (128,), generator=gen)
        x = images[idx] + 0.05 * torch.randn(images[idx].shape, generator=gen)  # robust to slight noise
        s_logits, c_logits = judge(x)
        loss = F.cross_entropy(s_logits, shapes[idx]) + F.cross_entropy(c_logits, colors[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step + 1, steps)
    judge.eval()
    test = make_dataset(2000, seed + 30)
    reads = judge.read(torch.from_numpy(test.images).float())
    shape_acc = float(np.mean([r[0] == SHAPES[s] for r, s in zip(reads, test.shapes)]))
    color_acc = float(np.mean([r[1] == list(COLORS)[c] for r, c in zip(reads, test.colors)]))
    noise_reads = judge.read(no_concept_images(1000, seed + 40))
    rejected = float(np.mean([r[0] == NONE for r in noise_reads]))
    return judge, {"shape_accuracy": round(shape_acc, 4), "color_accuracy": round(color_acc, 4),
                   "no_concept_rejected": round(rejected, 4)}
