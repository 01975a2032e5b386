"""What the Filters page (and the Saliency page's class averages) show, composed from fer_core results without
Streamlit: one filter's kernel and top patches at a common size with their captions, a face of a split with its
label, the mean face of each class. The image primitives (colormaps, mosaics) are in fer_core.interpret."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import CLASSES
from .interpret import TopPatches, filter_grid, upscale


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
