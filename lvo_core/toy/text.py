"""Prompts of the toy world ("red circle", "blue", "", …) → conditioning ``[B, 2, dim]`` (colour slot, shape slot).

A tiny learned embedding, trained with the toy UNet; a missing colour or shape (and the empty prompt) uses the null
token, which classifier-free-guidance training teaches to mean "unconditioned". Unknown words are an error that lists
the vocabulary, never silently ignored.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import LVOError
from .world import COLORS, SHAPES

NULL = 0
VOCAB = ("<null>", *COLORS, *SHAPES)


def parse(prompt: str) -> tuple[int, int]:
    """Token ids (colour, shape) of one prompt; words may come in any order, each slot at most once."""
    color, shape = NULL, NULL
    for word in prompt.lower().replace(",", " ").split():
        if word in COLORS and color == NULL:
            color = VOCAB.index(word)
        elif word in SHAPES and shape == NULL:
            shape = VOCAB.index(word)
        else:
            raise LVOError(f"cannot read '{word}' in prompt '{prompt}': the toy world knows one colour "
                           f"({', '.join(COLORS)}) and one shape ({', '.join(SHAPES)})")
    return color, shape


class ToyPromptEncoder(nn.Module):
    """Learned token embeddings for the two slots of a toy prompt."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.embedding = nn.Embedding(len(VOCAB), dim)
        self.slot = nn.Parameter(torch.zeros(2, dim))  # tells the colour slot from the shape slot

    def tokens(self, prompts: list[str]) -> Tensor:
        return torch.tensor([parse(p) for p in prompts], dtype=torch.long, device=self.embedding.weight.device)

    def embed(self, tokens: Tensor) -> Tensor:
        return self.embedding(tokens) + self.slot

    def forward(self, prompts: list[str]) -> Tensor:
        return self.embed(self.tokens(prompts))
