"""How a model arranges faces: its penultimate features over a split (cached on disk like the predictions) and
their projection to 2-D (PCA; t-SNE from scikit-learn).

The penultimate features are the input of the model's last linear layer (FERNet's head less its final
nn.Linear): 512 numbers a face for vgg_bn after global pooling, 2,048 for seed_vgg after its dense layer. They
are computed on the same inference twin as the predictions (fer_core.inference.fast_model), so the last layer
applied to them gives the predicted logits."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .data import FaceSet, cache_dir, file_key, read_face_cache, write_face_cache
from .inference import default_batch_size, fast_model, inference_precision

EMB_CACHE_VERSION = 1
PROJECTIONS = {"pca": "PCA", "tsne": "t-SNE"}
TSNE_PCA_DIMS = 50  # t-SNE runs on the 50 leading principal components (the usual speed-up; little is lost)


@dataclass
class Embedding:
    feats: np.ndarray  # (N, D) float32 penultimate features
    y: np.ndarray  # (N,) int64 labels of the faces
    from_cache: bool = False
    seconds: float = 0.0  # to compute or to read from the cache

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Projection:
    xy: np.ndarray  # (N, 2) float32
    method: str  # a key of PROJECTIONS
    explained: tuple[float, float] | None = None  # PCA: the share of the features' variance on each axis


def penultimate_head(model) -> nn.Module:
    """The part of model.head before its last nn.Linear; ValueError for a model without one."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Sequential) or not len(head) or not isinstance(head[-1], nn.Linear):
        raise ValueError("embeddings need a model whose `head` is an nn.Sequential ending in nn.Linear")
    return head[:-1]


@torch.inference_mode()
def penultimate(model, prep, faces, batch_size: int | None = None, precision: str | None = None,
                progress=None) -> np.ndarray:
    """uint8 faces (N, 48, 48) -> penultimate features (N, D) float32, in batches on the model's inference twin.
    progress(done, total) is called after every batch."""
    penultimate_head(model)  # a clear error before any work
    device = next(model.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    net, dtype = fast_model(model, precision, min(batch_size, max(len(faces), 1)))
    rest = penultimate_head(net)
    out = []
    for i in range(0, len(faces), batch_size):
        x = prep(faces[i : i + batch_size]).to(device, dtype).contiguous(memory_format=torch.channels_last)
        out.append(rest(net.features(x)).float().flatten(1).cpu())  # (B, D)
        if progress is not None:
            progress(min(i + batch_size, len(faces)), len(faces))
    if not out:
        return np.zeros((0, model.head[-1].in_features), np.float32)
    return torch.cat(out).numpy()


def embedding_cache_file(checkpoint, source, split: str, precision: str | None = None) -> Path:
    precision = precision or inference_precision("cpu")
    return cache_dir() / "embeddings" / (
        f"{file_key(checkpoint)}-{file_key(source)}-{split}-{precision}-v{EMB_CACHE_VERSION}.npz")


def embed(model, prep, faces: FaceSet, checkpoint=None, cache: bool = True, batch_size: int | None = None,
          progress=None) -> Embedding:
    """Penultimate features of every face of a split; cached on disk per (checkpoint file, data source, split,
    precision) as interpret.predictions is. checkpoint defaults to model.checkpoint["path"]."""
    t0 = time.perf_counter()
    checkpoint = checkpoint or getattr(model, "checkpoint", {}).get("path")
    cfile = None
    if cache and checkpoint and faces.source and os.path.exists(checkpoint) and os.path.exists(faces.source):
        precision = inference_precision(next(model.parameters()).device)
        cfile = embedding_cache_file(checkpoint, faces.source, faces.split, precision)
        feats = read_face_cache(cfile, faces, "feats")
        if feats is not None:
            return Embedding(feats, faces.y, True, time.perf_counter() - t0)
    feats = penultimate(model, prep, faces.x, batch_size, progress=progress)
    if cfile is not None:
        write_face_cache(cfile, faces, "feats", feats)
    return Embedding(feats, faces.y, False, time.perf_counter() - t0)


def project(feats, method: str = "pca", seed: int = 0) -> Projection:
    """(N, D) features -> a 2-D Projection: PCA (the two directions of most variance) or t-SNE (neighbours kept
    together; on the leading principal components, perplexity min(30, (N - 1) / 3))."""
    from sklearn.decomposition import PCA

    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, not {method!r}")
    feats = np.asarray(feats, np.float32)
    if len(feats) < 3:
        raise ValueError(f"a 2-D projection needs at least 3 faces, got {len(feats)}")
    if method == "pca":
        pca = PCA(n_components=2, random_state=seed).fit(feats)
        ratio = pca.explained_variance_ratio_
        return Projection(pca.transform(feats).astype(np.float32), "pca", (float(ratio[0]), float(ratio[1])))
    from sklearn.manifold import TSNE

    dims = min(TSNE_PCA_DIMS, *feats.shape)
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(feats) if dims < feats.shape[1] else feats
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(feats) - 1) / 3), init="pca", learning_rate="auto",
                random_state=seed)
    return Projection(tsne.fit_transform(reduced).astype(np.float32), "tsne")
