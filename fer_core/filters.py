"""A model's conv layers (the first by default), without Streamlit: their weights, their responses to a face,
their receptive fields and the dataset patches that excite each filter most (the Filters page, the report)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

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
