"""Pictures of analysis results with PIL only: activity over timesteps, and image grids with labels.

Every picture a command or node writes is built from one small kit, so that each explains itself the same way: a
:func:`title_bar` (what this is, of which model and block), headers over columns and beside rows, a caption under
each image, a :func:`colour_bar` where colour encodes a number, and a :func:`legend_strip` that says in words what
each number is. :func:`framed` stacks them and records the title and legend in ``image.info`` (tests read them).
One word means one thing in every caption (:data:`WORDS`); the font has no ``×`` or ``÷``, so ratios read ``0.84x``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..analysis.activity import ActivityAnalysis
from ..analysis.examples import colorize
from ..errors import LVOError

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


INK, MUTED, BAND = (0, 0, 0), (70, 70, 70), (236, 236, 236)
WORDS = {
    "activation": "activation: the unit's value on the image at timestep t (mean over the block's positions), in "
                  "the unit's own units",
    "ratio": "x dataset max: that activation divided by the largest one the activity analysis saw at t over the "
             "model's own generations (1.00 = as strong as the strongest generation)",
    "lift": "x bank mean: that activation divided by the unit's mean over the sample bank's images",
    "bank": "activation (bank): the unit's activation on a sample-bank image noised to t (mean of the bank's draws)",
    "heatmap": "heatmap: where on the image the unit fires at t (colour scale below; white contour at half the "
               "scale's top)",
}


def ratio_or_activation(metrics: dict) -> str:
    """The one number under an LVO image: its ratio to the dataset max when known, else its raw activation —
    always named, never a bare ``x``."""
    if metrics.get("ratio") is not None:
        return f"{metrics['ratio']:.2f}x dataset max"
    return f"activation {metrics['activation']:.3g}"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def activity_chart(analysis: ActivityAnalysis, units: Sequence[int], width: int = 720, height: int = 360,
                   title: str | None = None, labels: dict[int, str] | None = None) -> Image.Image:
    """Activity profile of each unit over timesteps (1000 on the left, as sampling runs), peaks marked and their
    labels kept apart; ``labels`` adds a name per unit to the legend (e.g. its concept). Framed: a title bar over
    the chart and a line under it that says what the curve and the circles are."""
    small = _font(11)
    legend_rows = (len(units) + 2) // 3
    height = max(height, 120 + 14 * legend_rows + 200)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 64, width - 16, 12, height - 44 - 14 * legend_rows
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
    kind = "feature" if analysis.unit_kind == "sae" else "channel"
    return framed(img, title or f"Activity over timesteps of {len(units)} {kind}{'s' * (len(units) > 1)} at "
                                f"{analysis.hookpoint}",
                  legend=[f"curve: in what share of the analysis's {analysis.num_generations} generations the unit is "
                          f"among the {analysis.top_n} most active units at that timestep; circles: its peaks, "
                          f"labelled t (the timesteps LVO visualizes at)."])


def image_grid(images: Sequence[np.ndarray], labels: Sequence[str] | None = None, columns: int | None = None,
               cell: int | None = None, *, title: str = "", subtitle: str = "", legend: Sequence[str] = (),
               column_titles: Sequence[str] | None = None, row_titles: Sequence[str] | None = None,
               colour: Image.Image | None = None) -> Image.Image:
    """Lay ``[H, W, 3]`` float images in [0, 1] side by side with a caption under each, wrapped to the cell's
    width (never cut); a header over each column and beside each row when given. With a ``title`` the grid is
    :func:`framed` (title bar, colour bar, legend); without one it is a panel of a bigger picture."""
    if not len(images):
        raise LVOError("image_grid needs at least one image")
    columns = columns or len(images)
    size = cell or max(int(images[0].shape[0]), 96)
    font, small = _font(13), _font(11)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(label, size, small, scratch) for label in labels] if labels else []
    caption = 2 + 13 * max((len(w) for w in wrapped), default=0) if labels else 0
    rows = (len(images) + columns - 1) // columns
    left = 110 if row_titles else 0
    head = 24 if column_titles else 0
    grid = Image.new("RGB", (left + columns * (size + 4) + 4, head + rows * (size + caption + 4) + 4), "white")
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(column_titles or []):
        x = left + 4 + c * (size + 4)
        draw.rectangle([x, 4, x + size, head - 2], fill=BAND)
        text = _wrap(name, size - 4, small, draw)[0]
        draw.text((x + (size - draw.textlength(text, font=small)) / 2, 7), text, fill=INK, font=small)
    for r, name in enumerate(row_titles or []):
        for k, line in enumerate(_wrap(name, left - 10, font, draw)):
            draw.text((6, head + 4 + r * (size + caption + 4) + 4 + 15 * k), line, fill=INK, font=font)
    for i, image in enumerate(images):
        tile = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).resize((size, size),
                                                                                             Image.NEAREST)
        x, y = left + 4 + (i % columns) * (size + 4), head + 4 + (i // columns) * (size + caption + 4)
        grid.paste(tile, (x, y))
        for k, line in enumerate(wrapped[i] if wrapped else []):
            draw.text((x, y + size + 2 + 13 * k), line, fill=INK, font=small)
    return framed(grid, title, subtitle, legend, colour) if title else grid


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
    sheet.info.update({"title": title, "legend": footer})
    return sheet


# ------------------------------------------------------------------ the kit every picture is framed with
def title_bar(width: int, title: str, subtitle: str = "") -> Image.Image:
    """A grey band with the picture's title (what, of which model and block) and an optional second line."""
    big, small = _font(16), _font(11)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = _wrap(title, width - 12, big, scratch)
    subs = _wrap(subtitle, width - 12, small, scratch) if subtitle else []
    band = Image.new("RGB", (width, 8 + 20 * len(lines) + 14 * len(subs) + 4), BAND)
    draw = ImageDraw.Draw(band)
    for k, line in enumerate(lines):
        draw.text((6, 5 + 20 * k), line, fill=INK, font=big)
    for k, line in enumerate(subs):
        draw.text((6, 6 + 20 * len(lines) + 14 * k), line, fill=MUTED, font=small)
    return band


def legend_strip(width: int, lines: Sequence[str]) -> Image.Image:
    """The "how to read this" lines under a picture, wrapped to its width, each starting on its own line."""
    small = _font(11)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [piece for line in lines for piece in _wrap(line, width - 12, small, scratch)]
    strip = Image.new("RGB", (width, 8 + 13 * len(wrapped) + 4), "white")
    draw = ImageDraw.Draw(strip)
    draw.line([6, 2, width - 6, 2], fill=(200, 200, 200))
    for k, line in enumerate(wrapped):
        draw.text((6, 6 + 13 * k), line, fill=MUTED, font=small)
    return strip


def colour_bar(width: int, vmax: float | None, label: str) -> Image.Image:
    """The heatmaps' colour scale from 0 to ``vmax`` (None: each tile scaled to its own maximum), labelled."""
    small = _font(11)
    left, right = 6, min(width - 6, 6 + 260)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    below = right + 16 + scratch.textlength(label, font=small) > width
    lines = _wrap(label, width - 12, small, scratch) if below else [label]
    strip = Image.new("RGB", (width, 32 + 13 * len(lines) if below else 34), "white")
    draw = ImageDraw.Draw(strip)
    ramp = (colorize(np.linspace(0, 1, right - left)[None, :], 1.0)[0] * 255).round().astype(np.uint8)
    strip.paste(Image.fromarray(np.repeat(ramp[None], 10, axis=0)), (left, 4))
    top = "its own max" if vmax is None else f"{vmax:.3g}"
    draw.text((left, 16), "0", fill=MUTED, font=small)
    draw.text((right - draw.textlength(top, font=small), 16), top, fill=MUTED, font=small)
    for k, line in enumerate(lines):
        draw.text((left, 30 + 13 * k) if below else (right + 10, 2), line, fill=INK, font=small)
    return strip


def framed(body: Image.Image, title: str, subtitle: str = "", legend: Sequence[str] = (),
           colour: Image.Image | None = None) -> Image.Image:
    """``body`` under its :func:`title_bar`, with the colour bar and the legend below; the title and legend are kept
    in ``info`` so that a test (or a caller) can tell that the picture explains itself."""
    if not title.strip():
        raise LVOError("every picture needs a title (what it shows, of which model and block)")
    width = max(body.width, 520)
    parts = [title_bar(width, title, subtitle), body]
    if colour is not None:
        parts.append(colour)
    if legend:
        parts.append(legend_strip(width, legend))
    sheet = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        sheet.paste(part, (0, y))
        y += part.height
    sheet.info.update({"title": title, "legend": "\n".join(legend)})
    return sheet


def heat_tile(image: np.ndarray, heatmap: np.ndarray, vmax: float | None = None, size: int = 0) -> np.ndarray:
    """A heatmap that shows on any image, even the toy world's bright, flat ones: the image dimmed to grey, the
    heatmap's colour over it in proportion to its value, and a white contour at half of ``vmax`` (None: the map's
    own maximum). ``size`` first enlarges a smaller image (nearest) so that the contour is thin."""
    img = np.asarray(image, np.float32)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise LVOError(f"expected an [H, W, 3] image, got shape {img.shape}")
    if size and max(img.shape[:2]) < size:
        scale = -(-size // max(img.shape[:2]))
        img = img.repeat(scale, 0).repeat(scale, 1)
    h, w = img.shape[:2]
    heat = np.asarray(Image.fromarray(np.asarray(heatmap, np.float32), mode="F").resize((w, h), Image.BILINEAR))
    top = float(vmax) if vmax is not None else float(heat.max())
    norm = np.clip(heat / top, 0, 1) if top > 0 else np.zeros_like(heat)
    grey = 0.12 + 0.4 * (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    weight = (0.2 + 0.8 * norm)[..., None]
    out = grey * (1 - weight) + colorize(norm, 1.0) * weight
    inside = norm >= 0.5
    edge = np.zeros_like(inside)
    edge[1:] |= inside[1:] != inside[:-1]
    edge[:-1] |= inside[1:] != inside[:-1]
    edge[:, 1:] |= inside[:, 1:] != inside[:, :-1]
    edge[:, :-1] |= inside[:, 1:] != inside[:, :-1]
    out[edge] = 1.0
    return np.clip(out, 0, 1)


def search_sheet(images: Sequence[np.ndarray], names: Sequence[str], found: Sequence[Sequence[Any]], *,
                 hookpoint: str, timestep: int, by: str, top: int, source: str = "", cell: int = 128) -> Image.Image:
    """Feature search as one picture: a row per image (the image, then each hit's :func:`heat_tile`, strongest
    first), each hit captioned with its activation and, where known, its lift and ratio; ``by`` is the ranking
    actually used (``lift``, ``ratio`` or ``activation``)."""
    tiles, labels = [], []
    for image, hits in zip(images, found):
        blank = [np.ones_like(image)] * (top - len(hits))
        tiles += [image] + [heat_tile(image, np.asarray(h.heatmap, np.float32), size=cell) for h in hits] + blank
        labels += ["the image"] + [f"feature {h.unit}: activation {h.activation:.3g}"
                                   + (f", {h.lift:.2f}x bank mean" if h.lift is not None else "")
                                   + (f", {h.ratio:.2f}x dataset max" if h.ratio is not None else "")
                                   for h in hits] + [""] * len(blank)
    hits = [h for row in found for h in row]
    legend = [f"Features ranked by {WORDS[by].split(':')[0]}, strongest first.", WORDS["activation"]]
    legend += [WORDS["lift"]] * any(h.lift is not None for h in hits)
    legend += [WORDS["ratio"]] * any(h.ratio is not None for h in hits) + [WORDS["heatmap"]]
    return image_grid(tiles, labels, columns=top + 1, cell=cell, row_titles=list(names),
                      column_titles=["image"] + [f"feature #{k + 1}" for k in range(top)],
                      title=f"Feature search: the SAE features each image drives most, at {hookpoint}",
                      subtitle=f"{source + '; ' if source else ''}the image noised to t = {timestep}", legend=legend,
                      colour=colour_bar(cell * (top + 1), None, "heatmap: the feature's activation at each position, "
                                        "0 to this tile's own maximum"))
