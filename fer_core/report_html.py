"""The course report's document, rendered: sections of paragraphs, tables and figures as one self-contained HTML
file (every image a base64 PNG inside it, so it opens offline and prints cleanly) or as Markdown with its PNGs
in a folder. Every piece of text is escaped here (html.escape, fer_core.text.md): run names, paths, class names
and error messages in a report are shown as text, never as markup."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import atomic_write_bytes
from .text import md


@dataclass
class Table:
    headers: list[str]
    rows: list[list]  # cells: text or numbers (shown with str())
    caption: str = ""
    shade: list[list[float]] | None = None  # per cell 0..1: a blue background of that strength (heat maps)


@dataclass
class Figure:
    png: bytes
    caption: str
    width: int | None = None  # displayed width in CSS pixels (None: the image's own)


@dataclass
class Section:
    id: str  # the HTML anchor
    title: str
    blocks: list = field(default_factory=list)  # str (a paragraph), Table, Figure, or a list of Figures (a row)


def png(img) -> bytes:
    """(H, W) or (H, W, 3) uint8 -> PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, "PNG", optimize=False)
    return buf.getvalue()


def curves_png(metrics: list[dict]) -> bytes:
    """Loss and accuracy per epoch (train dotted, validation solid), side by side, as the Train page draws them."""
    from matplotlib.figure import Figure as MplFigure  # no pyplot: no global state, no GUI backend

    fig = MplFigure(figsize=(9, 3.2), dpi=100, layout="constrained")
    epochs = [m["epoch"] for m in metrics]
    for ax, what, title in zip(fig.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy")):
        for part, style in (("train", ":"), ("val", "-")):
            ys = [m.get(f"{part}_{what}") for m in metrics]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], style, label=f"{part} {title}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1040px;margin:2em auto;
padding:0 1em;color:#1d1d1d}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:1px solid #bbb;padding-bottom:.15em;margin-top:1.8em}
.meta{color:#555;margin:.1em 0} nav{margin:1em 0} nav a{margin-right:1em}
table{border-collapse:collapse;margin:.6em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #c8c8c8;padding:.2em .55em;text-align:right;vertical-align:top}
th{background:#f1f1f1} td:first-child,th:first-child{text-align:left}
caption{caption-side:bottom;text-align:left;color:#555;font-size:.88em;padding-top:.3em}
figure{display:inline-block;margin:.3em .8em .7em 0;vertical-align:top;text-align:center}
figcaption{font-size:.85em;color:#444;margin-top:.2em}
.row{display:flex;flex-wrap:wrap;align-items:flex-start}
img{image-rendering:pixelated;max-width:100%;height:auto}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;font-size:10pt} nav{display:none} h2{break-after:avoid}
figure,tr,.row{break-inside:avoid} thead{display:table-header-group}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in t.headers)
    body = []
    for i, row in enumerate(t.rows):
        cells = []
        for j, c in enumerate(row):
            s = t.shade[i][j] if t.shade is not None and t.shade[i][j] is not None else None
            style = (f' style="background:rgba(31,119,180,{s:.3f});color:{"#fff" if s > 0.55 else "inherit"}"'
                     if s is not None else "")
            cells.append(f"<td{style}>{_e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_e(t.caption)}</caption>" if t.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure_html(f: Figure) -> str:
    width = f' width="{int(f.width)}"' if f.width else ""
    src = "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")
    return (f'<figure><img src="{src}"{width} alt="{_e(f.caption)}"><figcaption>{_e(f.caption)}</figcaption>'
            "</figure>")


def _block_html(b) -> str:
    if isinstance(b, str):
        return f"<p>{_e(b)}</p>"
    if isinstance(b, Table):
        return _table_html(b)
    if isinstance(b, Figure):
        return f'<div class="row">{_figure_html(b)}</div>'
    return '<div class="row">' + "".join(_figure_html(f) for f in b) + "</div>"


def to_html(title: str, meta: list[str], sections: list[Section]) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    parts = [f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>' + "".join(_block_html(b) for b in s.blocks)
             + "</section>" for s in sections]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
            + "".join(f'<p class="meta">{_e(m)}</p>' for m in meta)
            + f"<nav>{nav}</nav>" + "".join(parts) + "</body></html>\n")


def _md_cell(c) -> str:
    return md(c) if c != "" else " "


def to_markdown(title: str, meta: list[str], sections: list[Section], folder) -> Path:
    """The report as `folder`/report.md with its figures as `folder`/figure-NN.png beside it; -> report.md."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out, n = [f"# {md(title)}", ""] + [md(m) + "  " for m in meta] + [""], 0

    def figure(f: Figure) -> str:
        nonlocal n
        n += 1
        name = f"figure-{n:02d}.png"
        atomic_write_bytes(folder / name, f.png, fsync=False)
        return f"![{md(f.caption)}]({name})"

    for s in sections:
        out += [f"## {md(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, str):
                out += [md(b), ""]
            elif isinstance(b, Table):
                out += ["| " + " | ".join(_md_cell(h) for h in b.headers) + " |",
                        "|" + "|".join("---" for _ in b.headers) + "|"]
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
                out += ([""] + [f"*{md(b.caption)}*"] if b.caption else []) + [""]
            elif isinstance(b, Figure):
                out += [figure(b), "", f"*{md(b.caption)}*", ""]
            else:
                out += [" ".join(figure(f) for f in b), "", "*" + md("; ".join(f.caption for f in b)) + "*", ""]
    path = folder / "report.md"
    atomic_write_bytes(path, "\n".join(out).encode(), fsync=False)
    return path
