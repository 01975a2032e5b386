"""Batched prediction shared by evaluation, the interpretability views and the photo/webcam path."""
from __future__ import annotations

import numpy as np
import torch

# On a CPU small batches stay in cache (benchmarks/interpret_speed.py --batch-sizes measures it); a GPU wants big ones.
CPU_BATCH = 64
GPU_BATCH = 512


def default_batch_size(device) -> int:
    return CPU_BATCH if torch.device(device).type == "cpu" else GPU_BATCH


@torch.inference_mode()
def predict_logits(model, prep, faces, tta: bool = False, batch_size: int | None = None, device=None,
                   mirror: bool = False, progress=None) -> np.ndarray:
    """faces: uint8 (N, 48, 48) -> logits (N, C). TTA averages the logits of each face and its mirror;
    mirror=True gives the mirror's logits only (so TTA can reuse a plain pass already made).
    progress(done, total) is called after every batch."""
    device = device or next(model.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    out = []
    for i in range(0, len(faces), batch_size):
        x = prep(faces[i : i + batch_size]).to(device).contiguous(memory_format=torch.channels_last)  # (B, 1, 48, 48)
        if mirror:
            x = torch.flip(x, dims=[3])
        logits = model(x).float()
        if tta:
            logits = (logits + model(torch.flip(x, dims=[3])).float()) / 2
        out.append(logits.cpu())
        if progress is not None:
            progress(min(i + batch_size, len(faces)), len(faces))
    if not out:
        return np.zeros((0, len(getattr(model, "classes", range(7)))), dtype=np.float32)
    return torch.cat(out).numpy()


def predict_proba(model, prep, faces, tta: bool = False, batch_size: int | None = None) -> np.ndarray:
    logits = torch.from_numpy(predict_logits(model, prep, faces, tta, batch_size))
    return torch.softmax(logits, 1).numpy()
