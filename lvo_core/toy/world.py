"""A synthetic world where the truth is known: small images of one coloured shape on a dark background.

Every image carries its labels (shape, colour, position, size), so concept purity of SAE features and the concept
an LVO image shows can be measured instead of eyeballed. Rendering is plain numpy with 2× supersampling
(anti-aliased edges), deterministic for a seed, and fast enough to make tens of thousands of images in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LVOError

SHAPES = ("circle", "square", "triangle", "ring", "cross")
COLORS = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.80, 0.20),
    "blue": (0.20, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.15),
    "white": (0.95, 0.95, 0.95),
}
SIZE = 32


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int = SIZE, supersample: int = 2) -> np.ndarray:
    """Coverage ``[size, size]`` in [0, 1] of a shape centred at (cx, cy) with radius r (pixels)."""
    n = size * supersample
    coords = (np.arange(n) + 0.5) / supersample
    x, y = np.meshgrid(coords, coords)
    dx, dy = x - cx, y - cy
    d = np.hypot(dx, dy)
    if shape == "circle":
        inside = d < r
    elif shape == "ring":
        inside = (d < r) & (d > 0.55 * r)
    elif shape == "square":
        inside = (np.abs(dx) < 0.85 * r) & (np.abs(dy) < 0.85 * r)
    elif shape == "cross":
        arm = 0.32 * r
        inside = ((np.abs(dx) < arm) & (np.abs(dy) < r)) | ((np.abs(dy) < arm) & (np.abs(dx) < r))
    elif shape == "triangle":
        # pointing up: apex above the centre, base below; inside all three edges
        ax, ay, bx, by, qx, qy = cx, cy - r, cx - 0.95 * r, cy + 0.75 * r, cx + 0.95 * r, cy + 0.75 * r
        def side(px, py, ux, uy, vx, vy):
            return (vx - ux) * (py - uy) - (vy - uy) * (px - ux)
        s1, s2, s3 = side(x, y, ax, ay, bx, by), side(x, y, bx, by, qx, qy), side(x, y, qx, qy, ax, ay)
        inside = ((s1 <= 0) & (s2 <= 0) & (s3 <= 0)) | ((s1 >= 0) & (s2 >= 0) & (s3 >= 0))
    else:
        raise LVOError(f"unknown shape '{shape}'; known: {', '.join(SHAPES)}")
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def render(shape: str, color: str, cx: float, cy: float, r: float, background: float,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """One ``[SIZE, SIZE, 3]`` image in [0, 1]: a dark, slightly noisy background and the shape in its colour."""
    if color not in COLORS:
        raise LVOError(f"unknown colour '{color}'; known: {', '.join(COLORS)}")
    rng = rng or np.random.default_rng(0)
    image = np.full((SIZE, SIZE, 3), background, np.float32) + rng.normal(0, 0.02, (SIZE, SIZE, 3)).astype(np.float32)
    cover = shape_mask(shape, cx, cy, r)[..., None]
    image = image * (1 - cover) + np.asarray(COLORS[color], np.float32) * cover
    return np.clip(image, 0, 1)


@dataclass
class Dataset:
    """Images ``[N, 3, SIZE, SIZE]`` in [-1, 1] (diffusion convention) with their concept labels."""

    images: np.ndarray
    shapes: np.ndarray
    colors: np.ndarray
    centers: np.ndarray
    radii: np.ndarray

    def prompts(self) -> list[str]:
        return [f"{list(COLORS)[c]} {SHAPES[s]}" for s, c in zip(self.shapes, self.colors)]


def make_dataset(n: int, seed: int) -> Dataset:
    """``n`` images with uniformly drawn shape and colour, position jitter ±4 px and radius 7–11 px."""
    rng = np.random.default_rng(seed)
    shapes = rng.integers(len(SHAPES), size=n)
    colors = rng.integers(len(COLORS), size=n)
    centers = SIZE / 2 + rng.uniform(-4, 4, size=(n, 2))
    radii = rng.uniform(7, 11, size=n)
    backgrounds = rng.uniform(0.08, 0.25, size=n)
    names = list(COLORS)
    images = np.stack([render(SHAPES[s], names[c], cx, cy, r, b, rng)
                       for s, c, (cx, cy), r, b in zip(shapes, colors, centers, radii, backgrounds)])
    return Dataset(images.transpose(0, 3, 1, 2) * 2 - 1, shapes, colors, centers, radii)
