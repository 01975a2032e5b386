"""Knowledge distillation (`--teacher A.pt[,B.pt] --distill-alpha a --distill-temperature T`).

The teachers' logits are computed once per training face and its mirror (not per augmented batch): on a CPU a
teacher's forward pass per batch would cost more than the student's whole step (fer_best has 4x the student's
multiply-adds; `benchmarks/distill_cost.py` measures both), whereas the precomputed logits cost two passes over
Training once, and are cached on disk for every later run with the same teacher and faces. The target of an
augmented face is its teacher probabilities, mirrored or not as the face was: the geometric augmentation of the
cpu recipe is small (rotation 10, zoom and shift 0.1) next to what a mirror changes in the teacher's output.

loss = (1 - alpha) * CE(student, label) + alpha * T^2 * KL(teacher_T || student_T), with p_T = softmax(z / T)
averaged over the teachers (Hinton et al. 2015; T^2 keeps the soft term's gradient scale independent of T).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import CheckpointError, load_model
from .data import atomic_write_bytes, cache_dir, file_key
from .sources import CLASSES

# Small batches run faster on a CPU here (2-core AMD EPYC, Zen 4, fp32, channels_last): fer_best 152-178 faces/s at 32
# against 126-139 at 512, fer_cpu 725-750 against 364-392.
TEACHER_BATCH = 32


def _cache_file(path: str, x_u8: torch.Tensor) -> Path:
    faces = hashlib.sha1(x_u8.cpu().numpy().tobytes()).hexdigest()[:16]
    return cache_dir() / "teacher-logits" / f"{file_key(path)}-{faces}.npy"


@torch.no_grad()
def face_and_mirror_logits(path: str, x_u8: torch.Tensor, batch_size: int = TEACHER_BATCH) -> torch.Tensor:
    """Teacher `path`'s fp32 logits of each face and of its mirror: (N, 2, 7), [:, 0] as is, [:, 1] mirrored.
    x_u8: (N, 1, 48, 48) uint8 on any device. Cached on disk by the teacher file's identity and the faces' bytes."""
    cfile = _cache_file(path, x_u8)
    if cfile.exists():
        try:
            out = np.load(cfile, allow_pickle=False)
            if out.shape == (len(x_u8), 2, len(CLASSES)):
                return torch.from_numpy(out).to(x_u8.device)
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed
    model, prep = load_model(path)
    if len(model.classes) != len(CLASSES):
        raise CheckpointError(f"--teacher {path}: it predicts {len(model.classes)} classes, not {len(CLASSES)}")
    out = torch.empty(len(x_u8), 2, len(CLASSES))
    for i in range(0, len(x_u8), batch_size):
        xb = prep.normalize(x_u8[i : i + batch_size].cpu().float() / 255.0)  # (B, 1, 48, 48)
        xb = xb.contiguous(memory_format=torch.channels_last)
        out[i : i + batch_size, 0] = model(xb).float()
        out[i : i + batch_size, 1] = model(xb.flip(-1)).float()
    cfile.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, out.numpy(), allow_pickle=False)
    atomic_write_bytes(cfile, buf.getvalue(), fsync=False)
    return out.to(x_u8.device)


def teacher_targets(paths: list[str], x_u8: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N, 2, 7) probabilities at `temperature` of each face and its mirror, averaged over the teachers."""
    probs = [F.softmax(face_and_mirror_logits(p, x_u8) / temperature, dim=-1) for p in paths]
    return torch.stack(probs).mean(0)


def batch_targets(targets: torch.Tensor, idx: torch.Tensor, mirrored: torch.Tensor | None) -> torch.Tensor:
    """The (B, 7) teacher targets of the faces `idx` of a batch, each mirrored as its augmented face was."""
    if mirrored is None:
        return targets[idx, 0]
    return targets[idx, mirrored.long()]


def distill_loss(student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(target || softmax(student / T)), mean over the batch. student_logits (B, 7), target_probs (B, 7)."""
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(log_q, target_probs, reduction="batchmean") * temperature ** 2
