"""Interpretability core (no Streamlit): predictions over a split cached on disk, the confusion matrix and
its cells, conv-layer filters (the first by default), and small numpy renderers (colormaps, overlays, mosaics) for the pages.
Saliency maps and their trust signals (fer_core.saliency) and face regions (fer_core.regions) are
re-exported here."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .data import CLASSES, FaceSet, cache_dir, file_key, read_face_cache, write_face_cache
from .metrics import metrics
from .inference import inference_precision, predict_logits
from .regions import REGIONS, ClassAverage, area_shares, class_average, region_masks, region_shares  # noqa: F401
from .saliency import (BASELINES, METHOD_NAMES, METHOD_SETTINGS, METHODS, SANITY_MAX_RHO,  # noqa: F401
                       attribute, check_gradcam, deletion_insertion, randomization_check, randomized_model, saliency,
                       spearman, trust)

PRED_CACHE_VERSION = 2  # 2: logits stored (TTA reuses the plain pass)


# ----------------------------------------------------------------------------------------------
# Predictions over a split, cached on disk


@dataclass
class Predictions:
    probs: np.ndarray  # (N, C) float32 softmax
    true: np.ndarray  # (N,) int64
    from_cache: bool = False
    seconds: float = 0.0  # time to compute or to read from the cache
    logits: np.ndarray | None = None  # (N, C) float32; a TTA pass reuses the plain pass's

    @property
    def pred(self) -> np.ndarray:  # (N,) int64
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:  # (N,) probability of the predicted class
        return self.probs.max(1)

    def __len__(self) -> int:
        return len(self.true)


def predictions_cache_file(checkpoint, source, split: str, tta: bool, precision: str | None = None) -> Path:
    # the precision is part of the key: bf16 and fp32 predictions differ for a few faces in a thousand
    precision = precision or inference_precision("cpu")
    return cache_dir() / "predictions" / (
        f"{file_key(checkpoint)}-{file_key(source)}-{split}-{'tta' if tta else 'plain'}-{precision}"
        f"-v{PRED_CACHE_VERSION}.npz")


def _probs(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), 1).numpy().astype(np.float32)  # (N, C)


def predictions(model, prep, faces: FaceSet, tta: bool = False, checkpoint=None, batch_size: int | None = None,
                cache: bool = True, progress=None) -> Predictions:
    """Probabilities of `model` on every face of a split, in batches; cached on disk per (checkpoint file,
    data source, split, TTA). checkpoint defaults to model.checkpoint["path"]; without a checkpoint file
    or an on-disk source nothing is cached. TTA reuses the plain pass (cached or computed first) and adds
    only the mirrored pass. progress(done, total, what) is called after every batch."""
    t0 = time.perf_counter()
    checkpoint = checkpoint or getattr(model, "checkpoint", {}).get("path")
    cfile = None
    if cache and checkpoint and faces.source and os.path.exists(checkpoint) and os.path.exists(faces.source):
        precision = inference_precision(next(model.parameters()).device)
        cfile = predictions_cache_file(checkpoint, faces.source, faces.split, tta, precision)
        logits = read_face_cache(cfile, faces, "logits")
        if logits is not None:
            return Predictions(_probs(logits), faces.y, True, time.perf_counter() - t0, logits)
    if tta:
        plain = predictions(model, prep, faces, False, checkpoint, batch_size, cache,
                            progress and (lambda d, n, _w: progress(d, 2 * n, "plain pass")))
        done = 0 if plain.from_cache else len(faces)  # a cached plain pass leaves only the mirror to compute
        total = len(faces) + done
        mirror = predict_logits(model, prep, faces.x, batch_size=batch_size, mirror=True,
                                progress=progress and (lambda d, n: progress(done + d, total, "mirrored pass")))
        logits = (plain.logits + mirror) / 2
    else:
        logits = predict_logits(model, prep, faces.x, batch_size=batch_size,
                                progress=progress and (lambda d, n: progress(d, n, "faces")))
    logits = logits.astype(np.float32)  # (N, C)
    if cfile is not None:
        write_face_cache(cfile, faces, "logits", logits)
    return Predictions(_probs(logits), faces.y, False, time.perf_counter() - t0, logits)


def precompute(checkpoints, source, split: str = "test", tta: bool = False) -> list[Path]:
    """Fill the disk cache with the predictions of each checkpoint over a split (the dashboard does this for
    the shipped checkpoints on the bundled sample at first start, so its first views open at once).
    Returns the cache files written or found; a checkpoint that does not load is skipped."""
    from .checkpoint import CheckpointError, load_model
    from .data import load_split

    faces = load_split(source, split)
    out = []
    for ckpt in checkpoints:
        try:
            model, prep = load_model(ckpt)
        except (CheckpointError, OSError):
            continue
        predictions(model, prep, faces, tta=tta, checkpoint=ckpt)
        out.append(predictions_cache_file(ckpt, source, split, tta))
    return out


def predict_proba_face(model, prep, face) -> np.ndarray:
    """Class probabilities (C,) of one face (48, 48) uint8."""
    logits = predict_logits(model, prep, np.array(face, dtype=np.uint8)[None])  # (1, C)
    return torch.softmax(torch.from_numpy(logits), 1)[0].numpy()


# ----------------------------------------------------------------------------------------------
# Confusion matrix and its cells


def confusion(y_true, y_pred, n_classes: int = len(CLASSES)) -> tuple[np.ndarray, np.ndarray]:
    """-> counts (C, C) int64 (rows true, columns predicted) and row-normalized (C, C) float (recall rows;
    a class without samples is a row of zeros)."""
    from sklearn.metrics import confusion_matrix  # the one evaluate's metrics use too

    counts = confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).astype(np.int64)
    rows = counts.sum(1, keepdims=True)
    return counts, counts / np.maximum(rows, 1)


def class_table(y_true, y_pred, classes=CLASSES) -> list[dict]:
    """Per-class precision, recall, F1 and support (fer_core.metrics.metrics), one dict per class."""
    m = metrics(y_true, y_pred, classes)
    return [{"class": c, **m["per_class"][c]} for c in classes]


def most_confused(counts, classes=CLASSES, k: int = 10) -> list[dict]:
    """Off-diagonal cells with the most faces: dicts true, pred (indices), true_name, pred_name, count, rate
    (share of the true class sent to pred). Empty cells are left out."""
    counts = np.asarray(counts)
    rows = np.maximum(counts.sum(1), 1)
    n = len(counts)
    cells = [(int(counts[i, j]), i, j) for i in range(n) for j in range(n) if i != j and counts[i, j]]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [{"true": i, "pred": j, "true_name": classes[i], "pred_name": classes[j], "count": c,
             "rate": float(c / rows[i])} for c, i, j in cells[:k]]


def cell_samples(preds: Predictions, true: int, pred: int) -> np.ndarray:
    """Indices of the faces of class `true` predicted as `pred`, most confident prediction first; an empty
    array when the cell has no faces."""
    idx = np.flatnonzero((preds.true == true) & (preds.pred == pred))
    conf = preds.probs[idx, pred]
    return idx[np.argsort(-conf, kind="stable")]


# ----------------------------------------------------------------------------------------------
# Conv layers (the first by default): weights, responses to a face, top-activating patches

_ACTS = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU, nn.ReLU6, nn.Tanh)


def conv_layers(model) -> list[int]:
    """Positions in model.features of its nn.Conv2d layers: conv layer i of the filter views is features[out[i]]."""
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise ValueError("filter views need a model with a `features` nn.Sequential")
    return [i for i, m in enumerate(feats) if isinstance(m, nn.Conv2d)]


def _conv_block(model, layer: int, activation: bool) -> tuple[nn.Module, nn.Conv2d]:
    """model.features up to conv layer `layer` (activation=False) or through its BN + activation."""
    convs = conv_layers(model)
    if not convs:
        raise ValueError("the model has no convolutional first layer")
    if not 0 <= layer < len(convs):
        raise ValueError(f"conv layer {layer} does not exist: the model has {len(convs)} (0-{len(convs) - 1})")
    feats, i = model.features, convs[layer]
    j = i + 1
    while activation and j < len(feats) and isinstance(feats[j], _ACTS):
        j += 1
    return feats[:j], feats[i]


def receptive_field(model, layer: int = 0) -> tuple[int, int, int]:
    """(size, stride, offset) of conv layer `layer` in the face: its output at (r, c) sees the square of `size`
    pixels whose top-left corner is (r * stride - offset, c * stride - offset); convs and poolings compose."""
    _, conv = _conv_block(model, layer, False)
    size, stride, offset = 1, 1, 0
    for m in model.features:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
            d = m.dilation if isinstance(getattr(m, "dilation", 1), int) else m.dilation[0]
            size, offset, stride = size + (d * (k - 1)) * stride, offset + p * stride, stride * s
        if m is conv:
            return size, stride, offset
    raise ValueError("conv layer not found in model.features")


def filter_weights(model, layer: int = 0) -> np.ndarray:
    """Conv layer `layer`'s kernels -> (F, kh, kw) float32, averaged over input channels (the first layer has
    one: FER faces are gray)."""
    _, conv = _conv_block(model, layer, False)
    return conv.weight.detach().float().mean(1).cpu().numpy()


@torch.no_grad()
def filter_responses(model, prep, face, activation: bool = True, layer: int = 0) -> np.ndarray:
    """Every filter's feature map of conv layer `layer` for one face (48, 48) uint8 -> (F, h, w) float32, after
    the conv's batch norm and activation when `activation`, else the raw convolution."""
    block, _ = _conv_block(model, layer, activation)
    x = prep(np.array(face, dtype=np.uint8)[None]).to(next(model.parameters()).device)  # (1, 1, 48, 48)
    return block(x)[0].float().cpu().numpy()


@dataclass
class TopPatches:
    patches: np.ndarray  # (F, k, P, P) uint8 input patches (receptive field + context; 0 outside the face)
    face_index: np.ndarray  # (F, k) index of the face each patch comes from
    rows: np.ndarray  # (F, k) top-left row of the receptive field in the face (may be < 0 with padding)
    cols: np.ndarray  # (F, k)
    values: np.ndarray  # (F, k) the filter's response there, highest first
    field: int = 0  # side of the receptive field in pixels; it starts `context` pixels into each patch
    context: int = 0


@torch.no_grad()
def top_patches(model, prep, faces, k: int = 8, context: int = 3, activation: bool = True,
                batch_size: int = 128, layer: int = 0) -> TopPatches:
    """For each filter of conv layer `layer`, the k faces that drive it hardest and the input patch (its
    receptive field plus `context` pixels each side) where it peaks. One patch per face, so the k are distinct."""
    faces = np.asarray(faces)
    if len(faces) == 0:
        raise ValueError("top-activating patches need at least one face")
    block, _ = _conv_block(model, layer, activation)
    size, stride, offset = receptive_field(model, layer)
    dev = next(model.parameters()).device
    best_v, best_at = [], []
    for i in range(0, len(faces), batch_size):
        r = block(prep(np.array(faces[i : i + batch_size])).to(dev)).float()  # (B, F, h, w)
        v, at = r.flatten(2).max(2)  # (B, F)
        best_v.append(v.cpu())
        best_at.append(at.cpu())
    v, at = torch.cat(best_v), torch.cat(best_at)  # (N, F)
    w_out = r.shape[-1]
    k = min(k, len(faces))
    top_v, top_i = v.topk(k, dim=0)  # (k, F)
    top_i, top_v = top_i.T.numpy(), top_v.T.numpy()  # (F, k)
    loc = at.T.numpy()[np.arange(at.shape[1])[:, None], top_i]  # (F, k) flat output position
    rows, cols = (loc // w_out) * stride - offset, (loc % w_out) * stride - offset
    m = context + offset + size
    padded = np.pad(faces, ((0, 0), (m, m), (m, m)))  # zeros outside the face
    P = size + 2 * context
    patches = np.empty((*top_i.shape, P, P), np.uint8)
    for f in range(top_i.shape[0]):
        for j in range(top_i.shape[1]):
            r0, c0 = rows[f, j] - context + m, cols[f, j] - context + m
            patches[f, j] = padded[top_i[f, j], r0 : r0 + P, c0 : c0 + P]
    return TopPatches(patches, top_i, rows, cols, top_v, size, context)


# ----------------------------------------------------------------------------------------------
# Rendering helpers (numpy + matplotlib colormaps), shared by the pages


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
