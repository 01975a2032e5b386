"""Image primitives in numpy (matplotlib colormaps, PIL's bitmap font), shared by the pages and the report:
colour maps and their legend, a saliency map over a face, nearest-neighbour enlargement, mosaics, text labels."""
from __future__ import annotations

import numpy as np


def colorize(a, cmap: str = "jet", vmin=None, vmax=None) -> np.ndarray:
    """2-D array -> (H, W, 3) uint8 through a matplotlib colormap; range defaults to the array's."""
    import matplotlib

    a = np.asarray(a, dtype=np.float64)
    lo = a.min() if vmin is None else vmin
    hi = a.max() if vmax is None else vmax
    t = np.clip((a - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(a)
    return (matplotlib.colormaps[cmap](t)[..., :3] * 255 + 0.5).astype(np.uint8)


def overlay(face, smap, alpha: float = 0.5, cmap: str = "jet", scale: int = 4) -> np.ndarray:
    """A gray face with its saliency map blended on top -> (48*scale, 48*scale, 3) uint8. The map is scaled
    by its 99th percentile so one extreme pixel does not wash out the rest."""
    face = np.asarray(face, np.float64)
    smap = np.asarray(smap, np.float64)
    hi = np.percentile(smap, 99) if smap.max() > 0 else 1.0
    heat = colorize(np.clip(smap / max(hi, 1e-12), 0, 1), cmap, 0, 1).astype(np.float64)
    rgb = (1 - alpha) * face[..., None] + alpha * heat
    return upscale(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), scale)


def colorbar(cmap: str = "jet", width: int = 192, height: int = 12, symmetric: bool = False) -> np.ndarray:
    """The colour scale of a heat map as a horizontal strip (height, width, 3) uint8, low on the left; with
    `symmetric`, the middle is 0 (for weight maps on a -lim..lim scale). Shown beside maps as their legend."""
    ramp = np.linspace(-1 if symmetric else 0, 1, width)[None].repeat(height, 0)  # (height, width)
    return colorize(ramp, cmap, -1 if symmetric else 0, 1)


def upscale(img, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement so small maps stay crisp in the browser."""
    img = np.asarray(img)
    return img.repeat(scale, 0).repeat(scale, 1) if scale > 1 else img


def mosaic(tiles, ncols: int, pad: int = 1, fill=255) -> np.ndarray:
    """(N, h, w) or (N, h, w, 3) tiles -> one image with `ncols` columns and `pad` pixels between tiles."""
    tiles = np.asarray(tiles)
    n, h, w = tiles.shape[:3]
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad, *tiles.shape[3:]), fill, tiles.dtype)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = t
    return out


def text_strip(text: str, width: int, height: int = 14, align: str = "center") -> np.ndarray:
    """A white (height, width, 3) uint8 strip with `text` in black (PIL's built-in bitmap font): numbers and
    row labels inside rendered mosaics."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    x = (width - (r - l)) // 2 if align == "center" else 2
    draw.text((x - l, (height - (b - t)) // 2 - t), text, fill=(0, 0, 0), font=font)
    return np.asarray(img)


def labelled(tiles, labels, height: int = 14) -> np.ndarray:
    """RGB tiles (N, h, w, 3) -> (N, h + height, w, 3) with each label written under its tile."""
    tiles = np.asarray(tiles)
    return np.stack([np.concatenate([t, text_strip(str(lab), t.shape[1], height)]) for t, lab in zip(tiles, labels)])
