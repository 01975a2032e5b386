"""First-convolution whitening init (`--whiten-init`, airbench's lesson): the first 3x3 filters start as the
patch-whitening transform of the training faces, so the first layer decorrelates its input from step one
instead of learning to.

The 3x3 patches of (normalized) training faces have a 9x9 covariance C = V diag(lam) V^T; the filters
W = diag(1 / sqrt(lam + eps)) V^T map a patch to uncorrelated unit-variance responses (W C W^T ~ I). Their
negatives follow (after a ReLU, +w and -w keep both signs of each component), so 18 filters are set; a wider
layer keeps its random init for the rest. Only the init: the filters train like the others.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 3
EPS = 5e-4  # on eigenvalues of unit-variance pixels: keeps the flattest components from blowing up
SAMPLE_FACES = 5000  # enough for a 9x9 covariance; a fixed slice, so every run with these faces gets the same init


@torch.no_grad()
def patch_whitening(x_u8: np.ndarray, prep, n: int = SAMPLE_FACES, eps: float = EPS) -> torch.Tensor:
    """(2 * 9, 1, 3, 3) filters: the whitening transform of 3x3 patches of the faces x_u8 (N, 48, 48) uint8, as
    `prep` normalizes them, then its negatives. Rows ordered by decreasing eigenvalue."""
    step = max(1, len(x_u8) // n)
    xb = prep.normalize(torch.from_numpy(np.ascontiguousarray(x_u8[::step][:n]))[:, None].float() / 255.0)
    patches = F.unfold(xb, PATCH).transpose(1, 2).reshape(-1, PATCH * PATCH).double()  # (P, 9)
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / len(patches)  # (9, 9)
    lam, vec = torch.linalg.eigh(cov)  # ascending
    lam, vec = lam.flip(0), vec.flip(1)
    w = (vec / torch.sqrt(lam.clamp_min(0) + eps)).T  # (9, 9): row i = v_i / sqrt(lam_i + eps)
    w = w.float().reshape(-1, 1, PATCH, PATCH)
    return torch.cat([w, -w])


@torch.no_grad()
def whiten_first_conv(model, filters: torch.Tensor) -> int:
    """Copy `filters` into the model's first convolution (as many as it has outputs) -> how many were set."""
    conv = model.first_conv
    if tuple(conv.weight.shape[1:]) != tuple(filters.shape[1:]):
        raise ValueError(f"--whiten-init needs a 3x3 first convolution on 1 channel, got {tuple(conv.weight.shape)}")
    k = min(conv.out_channels, len(filters))
    conv.weight[:k] = filters[:k].to(conv.weight)
    if conv.bias is not None:
        conv.bias[:k] = 0.0
    return k
