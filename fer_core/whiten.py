"""First-convolution whitening init (`--whiten-init`, airbench's lesson): the first 3x3 filters start as the
patch-whitening transform of the training faces, so the first layer decorrelates its input from step one
instead of learning to.

The 3x3 patches of (normalized) training faces have a 9x9 covariance C = V diag(lam) V^T; the filters
W = diag(1 / sqrt(lam + eps)) V^T map a patch to uncorrelated unit-variance responses (W C W^T ~ I). Their
negatives follow (after a ReLU, +w and -w keep both signs of each component), so 18 filters are set; a wider
layer keeps its random init for the rest, a narrower one takes the strongest components and their negatives.
A model whose first convolution reads a weightless transform of the face (vgg_s2d's space-to-depth: 4 channels
at half the resolution) gets the whitening of that input's 3x3x4 patches (36 components). Only the init: the
filters train like the others.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 3
EPS = 5e-4  # on eigenvalues of unit-variance pixels: keeps the flattest components from blowing up
SAMPLE_FACES = 5000  # enough for a 9x9 covariance; a fixed slice, so every run with these faces gets the same init


def first_conv_input(model) -> torch.nn.Sequential:
    """The weightless modules of model.features before its first convolution (vgg_s2d: the space-to-depth
    stem; vgg_bn: none): what turns a face into the first convolution's input."""
    mods = []
    for m in model.features:
        if isinstance(m, torch.nn.Conv2d):
            break
        if any(True for _ in m.parameters()):
            raise ValueError(f"--whiten-init: {type(m).__name__} before the first convolution has weights")
        mods.append(m)
    return torch.nn.Sequential(*mods)


@torch.no_grad()
def patch_whitening(x_u8: np.ndarray, prep, n: int = SAMPLE_FACES, eps: float = EPS,
                    stem: torch.nn.Module | None = None) -> torch.Tensor:
    """(2 * D, C, 3, 3) filters: the whitening transform of the 3x3 patches (D = 9C values) of the faces x_u8
    (N, 48, 48) uint8 as `prep` normalizes them and `stem` (weightless; None: the face itself, C = 1) turns them
    into C channels, then its negatives. Rows ordered by decreasing eigenvalue."""
    step = max(1, len(x_u8) // n)
    xb = prep.normalize(torch.from_numpy(np.ascontiguousarray(x_u8[::step][:n]))[:, None].float() / 255.0)
    if stem is not None:
        xb = stem(xb)  # (n, C, h, w)
    c = xb.shape[1]
    d = c * PATCH * PATCH
    patches = F.unfold(xb, PATCH).transpose(1, 2).reshape(-1, d).double()  # (P, D)
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / len(patches)  # (D, D)
    lam, vec = torch.linalg.eigh(cov)  # ascending
    lam, vec = lam.flip(0), vec.flip(1)
    w = (vec / torch.sqrt(lam.clamp_min(0) + eps)).T  # (D, D): row i = v_i / sqrt(lam_i + eps)
    w = w.float().reshape(-1, c, PATCH, PATCH)
    return torch.cat([w, -w])


@torch.no_grad()
def whiten_first_conv(model, filters: torch.Tensor) -> int:
    """Copy `filters` (patch_whitening's: D components, then their negatives) into the model's first convolution:
    the strongest min(D, outputs // 2) components and their negatives -> how many filters were set."""
    conv = model.first_conv
    if tuple(conv.weight.shape[1:]) != tuple(filters.shape[1:]):
        raise ValueError(f"--whiten-init needs filters shaped like the first convolution's {tuple(conv.weight.shape)}, "
                         f"got {tuple(filters.shape)}")
    d = len(filters) // 2
    k = min(d, conv.out_channels // 2)
    chosen = torch.cat([filters[:k], filters[d:d + k]])
    conv.weight[:2 * k] = chosen.to(conv.weight)
    if conv.bias is not None:
        conv.bias[:2 * k] = 0.0
    return 2 * k
