"""Interpretability core (no Streamlit): a model's predictions over a split, cached on disk, and the confusion
matrix and its cells. Conv-layer filters are fer_core.filters, saliency maps and their trust signals
fer_core.saliency, face regions fer_core.regions, the image primitives fer_core.draw."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data import FaceSet, cache_dir, file_key, read_face_cache, write_face_cache
from .inference import inference_precision, predict_logits
from .metrics import metrics
from .sources import CLASSES

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
