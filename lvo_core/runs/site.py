"""The atlas as a static, self-contained site: open ``index.html`` from a folder or any file host, no server, no GPU.

``index.html`` lists every unit with its best label, that label's detection score and the atlas score, sortable,
with a search box (plain JavaScript over ``search.js``, ranking as
:meth:`~lvo_core.analysis.labels.LabelTable.search` does, which holds the index as data so that ``file://`` works
without fetch). Each unit has a stable page ``f/<unit>.html``: its faithful pictures, top sample-bank images,
dataset examples, activation density over the bank, activity over timesteps, labels with lift and score, and the
visualization metrics. Images are copied (or written) into ``img/`` so the folder can be zipped and shared.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import torch

from ..analysis.bank import SampleBank
from ..analysis.metrics import display_images
from ..fileio import atomic_write
from ..progress import StepFn
from .feature_page import feature_card
from .report import save_png

STYLE = ("body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}"
         "header{background:#223;color:#fff;padding:10px 18px}header a{color:#9cf}main{padding:12px 18px}"
         "table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}"
         "th{cursor:pointer;background:#eee}.ok{color:#161}.weak{color:#a50}.none{color:#999}"
         "figure{display:inline-block;margin:4px;text-align:center;font-size:12px;vertical-align:top}"
         "figure img{width:128px;height:128px;image-rendering:pixelated;border:1px solid #ccc;display:block}"
         "section{margin:14px 0}h2{font-size:17px;margin:8px 0}#q{font-size:15px;padding:4px 8px;width:260px}"
         "svg{background:#fff;border:1px solid #ccc}")


def page(title: str, body: str, depth: int = 0, script: str = "") -> str:
    up = "../" * depth
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><header><a href=\"{up}index.html\">LVO atlas</a>"
            f"{'' if depth == 0 else ' · ' + html.escape(title)}</header>"
            f"<main>{body}</main>{script}</html>")


def score_class(score: float | None, trusted: float) -> str:
    return "none" if score is None else "ok" if score >= trusted else "weak"


def line_chart(values: Sequence[float], step: int, title: str, width: int = 420, height: int = 140) -> str:
    """An inline SVG line over timesteps 0…1000 (x) with its maximum on the y axis."""
    peak = max(max(values, default=0.0), 1e-12)
    pts = " ".join(f"{40 + i * step / 1000 * (width - 50):.1f},{height - 20 - v / peak * (height - 40):.1f}"
                   for i, v in enumerate(values))
    return (f'<svg width={width} height={height} role=img aria-label="{html.escape(title)}">'
            f'<text x=40 y=14 font-size=12>{html.escape(title)}</text>'
            f'<polyline fill=none stroke="#2a6fdb" stroke-width=2 points="{pts}"/>'
            f'<text x=4 y=28 font-size=10>{peak:.3g}</text><text x=4 y={height - 20} font-size=10>0</text>'
            f'<text x=40 y={height - 4} font-size=10>t 0</text>'
            f'<text x={width - 50} y={height - 4} font-size=10>t 1000</text></svg>')


def bar_chart(counts: Sequence[int], edges: Sequence[float], title: str, width: int = 420, height: int = 140) -> str:
    """An inline SVG histogram."""
    peak = max(max(counts, default=0), 1)
    bar = (width - 50) / max(len(counts), 1)
    bars = "".join(f'<rect x={40 + i * bar + 1:.1f} y={height - 20 - c / peak * (height - 40):.1f} '
                   f'width={bar - 2:.1f} height={c / peak * (height - 40):.1f} fill="#e07a1f"/>'
                   for i, c in enumerate(counts))
    return (f'<svg width={width} height={height} role=img aria-label="{html.escape(title)}">'
            f'<text x=40 y=14 font-size=12>{html.escape(title)}</text>{bars}'
            f'<text x=4 y=28 font-size=10>{peak}</text><text x=40 y={height - 4} font-size=10>{edges[0]:.3g}</text>'
            f'<text x={width - 50} y={height - 4} font-size=10>{edges[-1]:.3g}</text></svg>')


def _figures(items: Sequence[tuple[str, str]]) -> str:
    return "".join(f'<figure><img src="../{html.escape(src)}" alt="{html.escape(cap)}">'
                   f'<figcaption>{html.escape(cap)}</figcaption></figure>' for src, cap in items)


def feature_page(entry: Mapping[str, Any], kind: str, hookpoint: str, trusted: float) -> str:
    unit = entry["unit"]
    parts = []
    labels = entry.get("labels") or []
    if labels:
        rows = "".join(f"<tr><td>{html.escape(lab['phrase'])}</td><td>{lab['lift']:.4g}</td>"
                       f"<td>{lab['normalised']:.2f}</td><td class={score_class(lab.get('score'), trusted)}>"
                       f"{'-' if lab.get('score') is None else format(lab['score'], '.2f')}</td></tr>"
                       for lab in labels)
        verdict = ("" if any((lab.get("score") or 0) >= trusted for lab in labels) else
                   f"<p class=weak>No label predicts this {kind}: no detection score reaches {trusted}.</p>")
        parts.append(f"<section><h2>Labels</h2>{verdict}<table><tr><th>phrase</th><th>lift</th><th>normalised</th>"
                     f"<th>detection AUROC (held-out)</th></tr>{rows}</table></section>")
    else:
        parts.append(f"<section><h2>Labels</h2><p class=none>No phrase of the vocabulary raises this {kind}.</p>"
                     "</section>")
    for name, title in (("faithful", "Faithful visualizations"), ("bank", "Top sample-bank images"),
                        ("examples", "Dataset examples")):
        if entry.get("images", {}).get(name):
            parts.append(f"<section><h2>{title}</h2>{_figures(entry['images'][name])}</section>")
    card = entry.get("card") or {}
    examples = (card.get("activity") or {}).get("examples") or []
    if examples and not entry.get("images", {}).get("examples"):
        rows = "".join(f"<tr><td>{e['rank']}</td><td>{_fmt(e.get('prompt'))}</td><td>{_fmt(e.get('seed'))}</td>"
                       f"<td>{e['timestep']}</td><td>{e['value']:.4g}</td></tr>" for e in examples)
        parts.append("<section><h2>Dataset examples</h2><table><tr><th>#</th><th>prompt</th><th>seed</th>"
                     f"<th>timestep</th><th>activation</th></tr>{rows}</table></section>")
    charts = []
    if card.get("bank"):
        b = card["bank"]
        charts.append(bar_chart(b["histogram"]["counts"], b["histogram"]["edges"],
                                f"activation over {b['size']} samples at t {b['timestep']} "
                                f"(density {b['density']:.0%})"))
    if card.get("activity"):
        a = card["activity"]
        charts.append(line_chart(a["profile"], a["grid_step"], f"top-{a['top_n']} frequency over timesteps"))
    if charts:
        parts.append(f"<section><h2>Density and activity</h2>{' '.join(charts)}</section>")
    metrics = entry.get("metrics") or []
    if metrics:
        keys = [k for k in ("timestep", "seed", "activation", "dataset_max", "ratio", "selectivity", "rank")
                if any(k in m for m in metrics)]
        rows = "".join("<tr>" + "".join(f"<td>{_fmt(m.get(k))}</td>" for k in keys) + "</tr>" for m in metrics)
        parts.append(f"<section><h2>Metrics</h2><table><tr>{''.join(f'<th>{k}</th>' for k in keys)}</tr>{rows}"
                     "</table></section>")
    nav = (f'<p><a href="{entry["prev"]}.html">← {kind} {entry["prev"]}</a> ' if entry.get("prev") is not None
           else "<p>") + (f'<a href="{entry["next"]}.html">{kind} {entry["next"]} →</a></p>'
                          if entry.get("next") is not None else "</p>")
    head = f"<h1>{kind} {unit}</h1><p>{html.escape(hookpoint)}" + (
        f" · atlas score {entry['score']:.3f}" if entry.get("score") is not None else "") + "</p>"
    return page(f"{kind} {unit}", head + nav + "".join(parts), depth=1)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else html.escape(str(value))


INDEX_SCRIPT = r"""<script src="search.js"></script><script>
const rows=document.getElementById('rows'),q=document.getElementById('q'),n=document.getElementById('n');
function cls(s){return s===null?'none':(s>=LVO.trusted?'ok':'weak')}
function draw(list){rows.innerHTML=list.map(e=>'<tr><td><a href="f/'+e.unit+'.html">'+LVO.kind+' '+e.unit+
'</a></td><td>'+(e.labels.map(l=>l.phrase).slice(0,3).join(', ')||'—')+'</td><td class='+cls(e.best)+'>'+
(e.best===null?'-':e.best.toFixed(2))+'</td><td>'+(e.score===null?'-':e.score.toFixed(3))+'</td></tr>').join('');
n.textContent=list.length+' of '+LVO.units.length}
function find(text){text=text.trim().toLowerCase().split(/\s+/).join(' ');if(!text)return LVO.units;
return LVO.units.map(e=>{let m=null;e.labels.forEach(l=>{if((' '+l.phrase.toLowerCase()+' ').includes(' '+text+' '))
m=(m||0)+(l.score===null?0.5:l.score)});return [m===null?null:m/e.labels.length,e]})
.filter(p=>p[0]!==null).sort((a,b)=>b[0]-a[0]).map(p=>p[1])}
let key='score';function sortBy(k){key=k;const l=[...find(q.value)];
l.sort((a,b)=>k==='unit'?a.unit-b.unit:((b[k]??-1)-(a[k]??-1)));draw(l)}
q.addEventListener('input',()=>draw(find(q.value)));
const h=new URLSearchParams(location.search).get('q');if(h){q.value=h}draw(find(q.value));
</script>"""


def write_site(out: str | Path, entries: Sequence[Mapping[str, Any]], *, kind: str = "feature", hookpoint: str = "",
               trusted: float = 0.85, title: str = "LVO atlas") -> Path:
    """Write the site into ``out``. Each entry: ``unit``, optional ``score`` (atlas), ``labels`` (label dicts,
    best first), ``card`` (:func:`~lvo_core.runs.feature_page.feature_card`), ``metrics`` (rows) and ``images``
    (section → list of ``(path under out, caption)``; the files must already be in ``out``)."""
    out = Path(out)
    (out / "f").mkdir(parents=True, exist_ok=True)
    units = [int(e["unit"]) for e in entries]
    data = []
    for i, e in enumerate(entries):
        labels = list(e.get("labels") or [])
        scores = [lab["score"] for lab in labels if lab.get("score") is not None]
        data.append({"unit": int(e["unit"]), "score": e.get("score"), "best": max(scores) if scores else None,
                     "labels": [{"phrase": lab["phrase"], "score": lab.get("score")} for lab in labels]})
        full = {**e, "prev": units[i - 1] if i > 0 else None, "next": units[i + 1] if i + 1 < len(units) else None}
        text = feature_page(full, kind, hookpoint, trusted)
        atomic_write(out / "f" / f"{int(e['unit'])}.html", lambda tmp, text=text: tmp.write_text(text, "utf-8"))
    blob = json.dumps({"kind": kind, "hookpoint": hookpoint, "trusted": trusted, "units": data})
    atomic_write(out / "search.js", lambda tmp: tmp.write_text(f"const LVO={blob};\n", "utf-8"))
    body = (f"<h1>{html.escape(title)}: {len(entries)} {kind}s at {html.escape(hookpoint)}</h1>"
            "<p><input id=q type=search placeholder='search labels, e.g. red' aria-label=search> "
            "<span id=n></span> · sort: <button onclick=\"sortBy('score')\">atlas score</button> "
            "<button onclick=\"sortBy('best')\">label score</button> <button onclick=\"sortBy('unit')\">unit</button>"
            f"</p><p>Label score: held-out detection AUROC of the {kind}'s activation for the label's generations "
            f"against other phrases' (0.5 = chance; green ≥ {trusted}).</p>"
            f"<table><thead><tr><th>{kind}</th><th>labels</th><th>label score</th><th>atlas score</th></tr></thead>"
            "<tbody id=rows></tbody></table>")
    atomic_write(out / "index.html", lambda tmp: tmp.write_text(page(title, body, script=INDEX_SCRIPT), "utf-8"))
    return out / "index.html"


def save_images(out: Path, name: str, images: Sequence[np.ndarray], captions: Sequence[str]) -> list[tuple[str, str]]:
    """Write ``[H, W, 3]`` images in [0, 1] to ``out/img/<name>-<i>.png``; returns ``(path, caption)`` pairs."""
    (out / "img").mkdir(parents=True, exist_ok=True)
    items = []
    for i, (image, caption) in enumerate(zip(images, captions)):
        rel = f"img/{name}-{i}.png"
        save_png(np.asarray(image), out / rel)
        items.append((rel, caption))
    return items


def copy_image(src: Path, out: Path, name: str) -> str:
    (out / "img").mkdir(parents=True, exist_ok=True)
    rel = f"img/{name}{src.suffix}"
    shutil.copyfile(src, out / rel)
    return rel


def atlas_site(out: str | Path, index: Mapping[str, Any] | None, *, atlas_dir: str | Path | None = None,
               labels: Any = None, cards: Mapping[int, Mapping[str, Any]] | None = None,
               images: Mapping[int, Mapping[str, list[tuple[np.ndarray, str]]]] | None = None,
               kind: str = "feature", units: Sequence[int] | None = None) -> Path:
    """A site from an atlas ``index`` (its faithful pictures copied from ``atlas_dir``), a
    :class:`~lvo_core.analysis.labels.LabelTable`, feature cards and extra images (bank, examples) per unit."""
    out = Path(out)
    by_unit = {int(e["unit"]): e for e in (index or {}).get("units", [])}
    order = list(units) if units is not None else (list(by_unit) if by_unit else sorted((labels.labels or {})))
    entries = []
    for unit in order:
        e = by_unit.get(int(unit), {})
        pics: dict[str, list[tuple[str, str]]] = {}
        if atlas_dir is not None and e.get("rows"):
            pics["faithful"] = [(copy_image(Path(atlas_dir) / r["image"], out, f"{unit}-faithful-{i}"),
                                 f"t{r['timestep']} seed {r['seed']}: " + (
                                     f"{r['metrics']['ratio']:.2f}x max" if r["metrics"].get("ratio") is not None
                                     else f"{r['metrics']['activation']:.3g}"))
                                for i, r in enumerate(e["rows"])]
        for name, items in ((images or {}).get(int(unit)) or {}).items():
            pics[name] = save_images(out, f"{unit}-{name}", [a for a, _ in items], [c for _, c in items])
        entries.append({"unit": int(unit), "score": e.get("score"),
                        "labels": labels.labels.get(int(unit), []) if labels is not None else [],
                        "card": (cards or {}).get(int(unit)), "images": pics,
                        "metrics": [r["metrics"] | {"timestep": r["timestep"], "seed": r["seed"]}
                                    for r in e.get("rows", [])]})
    hookpoint = (index or {}).get("hookpoint") or (labels.hookpoint if labels is not None else "")
    trusted = labels.settings.trusted if labels is not None else 0.85
    return write_site(out, entries, kind=kind, hookpoint=str(hookpoint), trusted=trusted)


def write_atlas_site(out: str | Path, index: Mapping[str, Any], backend: Any, *, sae: Any, analysis: Any,
                     bank: SampleBank | None, labels: Any = None, top: int = 4, kind: str = "feature",
                     on_progress: StepFn | None = None) -> Path:
    """The atlas's static site in ``out``: labels, feature cards from the bank and the analysis, each unit's top
    ``top`` bank images (decoded with ``backend``), the atlas's pictures from ``index``."""
    if labels is not None:
        labels.check_matches(sae)
    bank_t = None
    if bank is not None:  # the bank's scores of this block and these units, at the first timestep it has them
        bank.check_matches(backend, sae)
        mine = bank.key(0, sae)[:3]
        bank_t = next((key[3] for key in sorted(bank.scores) if key[:3] == mine), None)
    hookpoint = backend.hookpoint.diffusers_name
    cards, images = {}, {}
    units = [e["unit"] for e in index["units"]]
    for i, unit in enumerate(units):
        use_bank = bank if bank_t is not None else None
        cards[unit] = feature_card(unit, hookpoint=hookpoint, sae=sae, analysis=analysis, bank=use_bank,
                                   bank_t=bank_t or 200, top=top)
        if use_bank is not None and backend.can_decode:
            chosen = cards[unit]["bank"]["top"]
            with torch.no_grad():
                pics = display_images(backend.decode(use_bank.latents[[e["index"] for e in chosen]]
                                                     .to(backend.device)).float().cpu()).numpy()
            images[unit] = {"bank": [(p, f"pool {e['index']}: {e['score']:.3g}") for p, e in zip(pics, chosen)]}
        if on_progress is not None:
            on_progress(i + 1, len(units))
    return atlas_site(Path(out) / "site", index, atlas_dir=out, labels=labels, cards=cards, images=images,
                      kind=kind, units=units)
