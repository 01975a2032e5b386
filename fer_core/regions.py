"""Where saliency falls on the aligned FER2013 face: the face regions (eyes and brows, nose, mouth, other) with
their colours and outlines, class-average maps and the share of saliency per region."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sources import CLASSES
from .saliency import attribute

# Fixed regions on the aligned 48x48 FER2013 face, (row0, row1, col0, col1) half-open, read off the mean
# face of the PublicTest sample: eyes sit on rows ~16-22, the nose tip ~row 29, the mouth on rows ~33-40.
# They do not overlap; everything else counts as "other" (forehead, cheeks, chin, hair, background).
REGIONS = {
    "eyes_brows": (10, 23, 7, 41),
    "nose": (23, 31, 17, 31),
    "mouth": (31, 42, 13, 35),
}


# each region's colour in the pages' outlines and charts ("other" too)
REGION_COLORS = {"eyes_brows": (255, 80, 80), "nose": (80, 200, 80), "mouth": (80, 120, 255), "other": (150, 150, 150)}


def region_hex() -> dict[str, str]:
    """REGION_COLORS as '#rrggbb' strings, for chart libraries."""
    return {k: "#%02x%02x%02x" % c for k, c in REGION_COLORS.items()}


def region_image(face) -> np.ndarray:
    """A gray face with the outlines of the saliency REGIONS drawn in color -> (48, 48, 3) uint8."""
    img = np.repeat(np.clip(np.asarray(face, np.float64), 0, 255).astype(np.uint8)[..., None], 3, 2)
    for name, (r0, r1, c0, c1) in REGIONS.items():
        color = REGION_COLORS.get(name, (255, 255, 0))
        img[r0, c0:c1] = img[r1 - 1, c0:c1] = color
        img[r0:r1, c0] = img[r0:r1, c1 - 1] = color
    return img


@dataclass
class ClassAverage:
    maps: np.ndarray  # (C, 48, 48) float32, each face's map normalized to sum 1 before averaging
    counts: np.ndarray  # (C,) faces averaged per class
    method: str
    target: str  # "true" or "pred"


def class_average(model, prep, faces, labels, method: str = "vanilla", per_class: int = 30, targets=None,
                  target_kind: str = "true", seed: int = 0, **opts) -> ClassAverage:
    """Mean normalized saliency of up to `per_class` faces of each class (chosen at random with `seed`).
    Faces are aligned, so the average shows where the model looks for each expression. targets: the class
    each face is explained for (default: its label)."""
    faces, labels = np.asarray(faces), np.asarray(labels)
    targets = labels if targets is None else np.asarray(targets)
    n_classes = len(CLASSES)
    rng = np.random.default_rng(seed)
    pick = []
    for k in range(n_classes):
        idx = np.flatnonzero(labels == k)
        pick.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else idx)
    sel = np.concatenate(pick).astype(np.int64)
    maps = np.zeros((n_classes, 48, 48), np.float32)
    counts = np.array([len(p) for p in pick])
    if len(sel):
        m = attribute(model, prep, faces[sel], targets[sel], method, **opts)  # (n, 48, 48)
        m = m / np.maximum(m.sum((1, 2), keepdims=True), 1e-12)
        np.add.at(maps, labels[sel], m)
        maps /= np.maximum(counts, 1)[:, None, None]
    return ClassAverage(maps, counts, method, target_kind)


def region_masks() -> dict[str, np.ndarray]:
    """Boolean (48, 48) masks of REGIONS plus "other" (the rest of the image)."""
    masks, used = {}, np.zeros((48, 48), bool)
    for name, (r0, r1, c0, c1) in REGIONS.items():
        m = np.zeros((48, 48), bool)
        m[r0:r1, c0:c1] = True
        masks[name], used = m, used | m
    masks["other"] = ~used
    return masks


def region_shares(maps) -> np.ndarray:
    """Share of saliency per region: maps (N, 48, 48) or (48, 48) -> (N, R) or (R,), rows sum to 1.
    Columns follow region_masks() order (eyes_brows, nose, mouth, other); area_shares() is the uniform-map
    reference (a region "attracts" saliency when its share is above its area share)."""
    m = np.asarray(maps, dtype=np.float64)
    single = m.ndim == 2
    m = m[None] if single else m
    masks = region_masks()
    tot = np.maximum(m.sum((1, 2)), 1e-12)
    out = np.stack([(m * mk).sum((1, 2)) / tot for mk in masks.values()], 1)
    return out[0] if single else out


def area_shares() -> np.ndarray:
    return np.array([mk.mean() for mk in region_masks().values()])
