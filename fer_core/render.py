"""What the Filters page (and the Saliency page's class averages) show, composed from fer_core results without
Streamlit: kernels and feature maps as mosaics, one filter's kernel and top patches at a common size with their
captions, a face of a split with its label, the mean face of each class. The image primitives (colour maps,
mosaics, labels) are in fer_core.draw."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .draw import colorize, labelled, mosaic, text_strip, upscale
from .filters import TopPatches
from .sources import CLASSES


def filter_grid(weights, ncols: int = 8, scale: int = 12, numbered: bool = False, pad: int = 2) -> np.ndarray:
    """First-layer kernels (F, kh, kw) -> one RGB mosaic, each kernel on a symmetric blue-white-red scale
    (red excites, blue inhibits); `numbered` writes each kernel's index under it."""
    tiles = []
    for w in np.asarray(weights):
        lim = max(abs(w).max(), 1e-12)
        tiles.append(upscale(colorize(w, "bwr", -lim, lim), scale))
    tiles = np.stack(tiles)
    if numbered:
        tiles = labelled(tiles, range(len(tiles)))
    return mosaic(tiles, ncols, pad=pad)


def response_grid(responses, ncols: int = 8, scale: int = 2, cmap: str = "viridis", numbered: bool = False,
                  pad: int = 2) -> np.ndarray:
    """Feature maps (F, h, w) -> one RGB mosaic, each map on its own range; `numbered` as in filter_grid."""
    tiles = np.stack([upscale(colorize(r, cmap), scale) for r in np.asarray(responses)])
    if numbered:
        tiles = labelled(tiles, range(len(tiles)))
    return mosaic(tiles, ncols, pad=pad)


def filter_rows(weights, patches, values=None, size: int = 48, pad: int = 6, label_width: int = 64) -> np.ndarray:
    """One labelled row per filter: "filter i" on the left, its kernel, then its top patches, every tile
    size x size (kernel and patches enlarged to the same size). weights (F, kh, kw), patches (F, k, P, P)
    uint8 -> RGB image. values (F, k), if given, are written under the patches."""
    from PIL import Image

    weights, patches = np.asarray(weights), np.asarray(patches)
    n, k = patches.shape[:2]

    def fit(img):  # nearest-neighbour resize to size x size (kernels are 3x3, patches 9x9 or so)
        return np.asarray(Image.fromarray(img).resize((size, size), Image.NEAREST))

    rows = []
    for i in range(n):
        lim = max(abs(weights[i]).max(), 1e-12)
        tiles = [fit(colorize(weights[i], "bwr", -lim, lim))]
        tiles += [fit(np.repeat(p[..., None], 3, -1)) for p in patches[i]]
        labels = ["kernel"] + ([f"{v:.2f}" for v in values[i]] if values is not None else [""] * k)
        row = mosaic(labelled(np.stack(tiles), labels), k + 1, pad=pad)
        name = text_strip(f"filter {i}", label_width, row.shape[0], align="left")
        rows.append(np.concatenate([name, row], 1))
    return mosaic(np.stack(rows), 1, pad=pad)


@dataclass
class FilterDetail:
    kernel: np.ndarray  # (kh * kernel_scale, kw * kernel_scale, 3) uint8, blue-white-red like filter_grid
    patches: list[np.ndarray]  # k x (P * patch_scale, P * patch_scale) uint8, strongest first
    captions: list[str]  # "#face · response" under each patch


def filter_detail(weights, top: TopPatches, f: int, kernel_scale: int = 24, patch_scale: int = 8,
                  field: bool = False) -> FilterDetail:
    """Filter f's kernel and its top-activating patches, each enlarged (nearest neighbour) so they keep one
    displayed size whatever the column width, and captioned with the face they come from and the response.
    With `field`, each patch is RGB with its receptive field outlined (with_field)."""
    weights = np.asarray(weights)
    if not 0 <= f < len(weights):
        raise IndexError(f"filter {f} of {len(weights)}")
    kernel = filter_grid(weights[f : f + 1], ncols=1, scale=kernel_scale)
    patches = [with_field(p, top.context, top.field, patch_scale) if field else upscale(p, patch_scale)
               for p in top.patches[f]]
    captions = [f"#{i} · {v:.2f}" for i, v in zip(top.face_index[f], top.values[f])]
    return FilterDetail(kernel, patches, captions)


FIELD_COLOR = (255, 200, 0)


def with_field(patch, context: int, size: int, scale: int = 1) -> np.ndarray:
    """A gray patch (P, P) -> RGB (P * scale, P * scale, 3) with the receptive field (`size` pixels from
    `context` in) outlined in FIELD_COLOR, one enlarged pixel wide inside its border."""
    img = upscale(np.repeat(np.asarray(patch, np.uint8)[..., None], 3, 2), scale).copy()
    if size > 0:
        a, b = context * scale, (context + size) * scale - 1
        img[a, a : b + 1] = img[b, a : b + 1] = img[a : b + 1, a] = img[a : b + 1, b] = FIELD_COLOR
    return img


def filter_choice(top: TopPatches, f: int) -> str:
    """A filter in the picker: "filter 3 (peak response 1.25)", its strongest response over the faces scanned."""
    return f"filter {f} (peak response {top.values[f, 0]:.2f})"


def split_face(x, y, k: int, classes=CLASSES) -> tuple[np.ndarray, str]:
    """(face k of a split, "#k · class")."""
    return x[k], f"#{k} · {classes[int(y[k])]}"


def class_mean_faces(x, y, n_classes: int = len(CLASSES)) -> np.ndarray:
    """The mean face of each class -> (C, H, W) float64; zeros for a class without faces."""
    x, y = np.asarray(x), np.asarray(y)
    out = np.zeros((n_classes, *x.shape[1:]))
    for k in range(n_classes):
        if (y == k).any():
            out[k] = x[y == k].mean(0)
    return out
