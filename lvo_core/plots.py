"""Pictures of analysis results with PIL only: activity over timesteps, and image grids with labels."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .activity import ActivityAnalysis
from .errors import LVOError

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def activity_chart(analysis: ActivityAnalysis, units: Sequence[int], width: int = 720, height: int = 360,
                   title: str | None = None) -> Image.Image:
    """Activity profile of each unit over timesteps (1000 on the left, as sampling runs), peaks marked."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(14), _font(11)
    left, right, top, bottom = 52, width - 16, 30, height - 58
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    x_of = lambda t: left + (1000 - t) / 1000 * (right - left)  # noqa: E731
    y_of = lambda v: bottom - v * (bottom - top)  # noqa: E731
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(frac)
        draw.line([left, y, right, y], fill=(230, 230, 230))
        draw.text((left - 36, y - 6), f"{frac:.2f}", fill=(60, 60, 60), font=small)
    for t in range(0, 1001, 200):
        draw.text((x_of(t) - 10, bottom + 4), str(t), fill=(60, 60, 60), font=small)
    draw.text((left + (right - left) // 2 - 60, bottom + 18), "timestep (sampling runs ->)", fill=(40, 40, 40), font=small)
    draw.text((left, 8), title or f"activity (top-{analysis.top_n} frequency) at {analysis.hookpoint}",
              fill=(0, 0, 0), font=font)
    for i, unit in enumerate(units):
        color = PALETTE[i % len(PALETTE)]
        profile = analysis.profile(unit)
        points = [(x_of(t), y_of(profile[t])) for t in range(0, 1001, 4)]
        draw.line(points, fill=color, width=2)
        for t in analysis.peaks(unit):
            cx, cy = x_of(t), y_of(profile[t])
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], outline=color, width=2)
            draw.text((cx + 5, cy - 14), str(t), fill=color, font=small)
        draw.text((left + 8 + 90 * (i % 7), bottom + 34 + 14 * (i // 7)),
                  f"{'feature' if analysis.unit_kind == 'sae' else 'channel'} {unit}", fill=color, font=small)
    return img


def image_grid(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int | None = None,
               cell: int | None = None) -> Image.Image:
    """Lay ``[H, W, 3]`` float images in [0, 1] side by side with a caption under each."""
    if not len(images):
        raise LVOError("image_grid needs at least one image")
    columns = columns or len(images)
    size = cell or max(int(images[0].shape[0]), 96)
    caption = 16 if labels else 0
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * (size + 4) + 4, rows * (size + caption + 4) + 4), "white")
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        tile = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).resize((size, size),
                                                                                             Image.NEAREST)
        x, y = 4 + (i % columns) * (size + 4), 4 + (i // columns) * (size + caption + 4)
        grid.paste(tile, (x, y))
        if labels:
            draw.text((x, y + size + 2), labels[i][: size // 6], fill=(0, 0, 0), font=_font(11))
    return grid
