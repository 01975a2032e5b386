"""Batched prediction shared by evaluation, the interpretability views and the photo/webcam path."""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def predict_logits(model, prep, faces, tta: bool = False, batch_size: int = 512, device=None) -> np.ndarray:
    """faces: uint8 (N, 48, 48) -> logits (N, C). TTA averages the logits of each face and its mirror."""
    device = device or next(model.parameters()).device
    out = []
    for i in range(0, len(faces), batch_size):
        x = prep(faces[i : i + batch_size]).to(device).contiguous(memory_format=torch.channels_last)  # (B, 1, 48, 48)
        logits = model(x).float()
        if tta:
            logits = (logits + model(torch.flip(x, dims=[3])).float()) / 2
        out.append(logits.cpu())
    if not out:
        return np.zeros((0, len(getattr(model, "classes", range(7)))), dtype=np.float32)
    return torch.cat(out).numpy()


def predict_proba(model, prep, faces, tta: bool = False, batch_size: int = 512) -> np.ndarray:
    logits = torch.from_numpy(predict_logits(model, prep, faces, tta, batch_size))
    return torch.softmax(logits, 1).numpy()
