"""Pictures of analysis results with PIL only: activity over timesteps, and image grids with labels."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..analysis.activity import ActivityAnalysis
from ..errors import LVOError

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def activity_chart(analysis: ActivityAnalysis, units: Sequence[int], width: int = 720, height: int = 360,
                   title: str | None = None, labels: dict[int, str] | None = None) -> Image.Image:
    """Activity profile of each unit over timesteps (1000 on the left, as sampling runs), peaks marked and their
    labels kept apart; ``labels`` adds a name per unit to the legend (e.g. its concept)."""
    font, small = _font(14), _font(11)
    legend_rows = (len(units) + 2) // 3
    height = max(height, 120 + 14 * legend_rows + 200)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 64, width - 16, 30, height - 44 - 14 * legend_rows
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    x_of = lambda t: left + (1000 - t) / 1000 * (right - left)  # noqa: E731
    y_of = lambda v: bottom - v * (bottom - top)  # noqa: E731
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(frac)
        draw.line([left, y, right, y], fill=(230, 230, 230))
        draw.text((left - 30, y - 6), f"{frac:.2f}", fill=(60, 60, 60), font=small)
    axis = Image.new("RGB", (bottom - top, 14), "white")
    ImageDraw.Draw(axis).text((4, 1), f"share of generations in the top {analysis.top_n}", fill=(40, 40, 40),
                              font=small)
    img.paste(axis.rotate(90, expand=True), (4, top))
    for t in range(0, 1001, 200):
        draw.text((x_of(t) - 10, bottom + 4), str(t), fill=(60, 60, 60), font=small)
    draw.text((left + (right - left) // 2 - 60, bottom + 18), "timestep (sampling runs ->)", fill=(40, 40, 40), font=small)
    draw.text((left, 8), title or f"activity (top-{analysis.top_n} frequency) at {analysis.hookpoint}",
              fill=(0, 0, 0), font=font)
    peaks = []  # markers first, so that no label lands on any unit's marker
    for i, unit in enumerate(units):
        color = PALETTE[i % len(PALETTE)]
        profile = analysis.profile(unit)
        draw.line([(x_of(t), y_of(profile[t])) for t in range(0, 1001, 4)], fill=color, width=2)
        for t in analysis.peaks(unit):
            cx, cy = x_of(t), y_of(profile[t])
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], outline=color, width=2)
            peaks.append((cx, cy, t, color))
        name = f"{'feature' if analysis.unit_kind == 'sae' else 'channel'} {unit}"
        if labels and unit in labels:
            name += f": {labels[unit]}"
        draw.text((left + 8 + (right - left) // 3 * (i % 3), bottom + 34 + 14 * (i // 3)), name, fill=color,
                  font=small)
    taken = [(cx - 5, cy - 5, 10, 10) for cx, cy, _, _ in peaks]
    for cx, cy, t, color in peaks:
        text = f"t {t}"
        w = draw.textlength(text, font=small)
        x, y = (cx + 6 if cx + 6 + w < right - 2 else cx - 8 - w), max(top + 2, cy - 18)
        while any(x < bx + bw and bx < x + w and y < by + bh and by < y + 12 for bx, by, bw, bh in taken):
            y -= 12 if y - 12 > top else -24
        taken.append((x, y, w, 12))
        draw.text((x, y), text, fill=color, font=small)
    return img


def image_grid(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int | None = None,
               cell: int | None = None) -> Image.Image:
    """Lay ``[H, W, 3]`` float images in [0, 1] side by side with a caption under each, wrapped to the cell's
    width (never cut)."""
    if not len(images):
        raise LVOError("image_grid needs at least one image")
    columns = columns or len(images)
    size = cell or max(int(images[0].shape[0]), 96)
    small = _font(11)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(label, size, small, scratch) for label in labels] if labels else []
    caption = 2 + 13 * max((len(w) for w in wrapped), default=0) if labels else 0
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * (size + 4) + 4, rows * (size + caption + 4) + 4), "white")
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        tile = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).resize((size, size),
                                                                                             Image.NEAREST)
        x, y = 4 + (i % columns) * (size + 4), 4 + (i // columns) * (size + caption + 4)
        grid.paste(tile, (x, y))
        for k, line in enumerate(wrapped[i] if wrapped else []):
            draw.text((x, y + size + 2 + 13 * k), line, fill=(0, 0, 0), font=small)
    return grid


def _wrap(text: str, width: int, font: ImageFont.ImageFont, draw: ImageDraw.ImageDraw) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels (words kept whole where they fit)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}".strip()
            if line and draw.textlength(trial, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def table_sheet(cells: Sequence[Sequence[tuple[np.ndarray, str]]], row_titles: Sequence[str],
                groups: Sequence[tuple[str, int]], cell: int = 128, title: str = "",
                footer: str = "") -> Image.Image:
    """A labelled table of images: a header per column group (e.g. ``("paper", 2)``), a title per row, and under
    every image its caption, wrapped rather than cut. ``cells[r][c]`` is ``(image [H, W, 3] in [0, 1], caption)``."""
    font, small, big = _font(13), _font(11), _font(16)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    columns = sum(n for _, n in groups)
    if any(len(row) != columns for row in cells):
        raise LVOError(f"every row needs {columns} cells (the column groups' total)")
    gap, label_w = 6, 150
    caption_lines = max((len(_wrap(c, cell, small, scratch)) for row in cells for _, c in row), default=0)
    row_h = cell + 4 + 13 * caption_lines + gap
    head = (26 if title else 0) + 24
    foot_lines = _wrap(footer, label_w + columns * (cell + gap), small, scratch) if footer else []
    width = label_w + columns * (cell + gap) + gap
    height = head + len(cells) * row_h + 14 * len(foot_lines) + gap
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((gap, 6), title, fill=(0, 0, 0), font=big)
    x = label_w
    for name, n in groups:
        span = n * (cell + gap) - gap
        draw.rectangle([x, head - 22, x + span, head - 4], fill=(236, 236, 236))
        draw.text((x + (span - draw.textlength(name, font=font)) / 2, head - 20), name, fill=(0, 0, 0), font=font)
        x += n * (cell + gap)
    for r, (row, row_title) in enumerate(zip(cells, row_titles)):
        y = head + r * row_h
        for k, line in enumerate(_wrap(row_title, label_w - 2 * gap, font, draw)):
            draw.text((gap, y + 4 + 15 * k), line, fill=(0, 0, 0), font=font)
        for c, (image, caption) in enumerate(row):
            x = label_w + c * (cell + gap)
            tile = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
            sheet.paste(tile.resize((cell, cell), Image.NEAREST), (x, y))
            for k, line in enumerate(_wrap(caption, cell, small, draw)):
                draw.text((x, y + cell + 3 + 13 * k), line, fill=(40, 40, 40), font=small)
    for k, line in enumerate(foot_lines):
        draw.text((gap, head + len(cells) * row_h + 14 * k), line, fill=(70, 70, 70), font=small)
    return sheet
