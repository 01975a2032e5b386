"""Checkpoints are plain dicts of tensors and primitives, loaded with weights_only=True.

keys: format_version, model_name, model_args, state_dict, normalization {mode, mean, std}, classes,
train_config, metrics, epoch; training state (optimizer, rng, ...) only in a run's last.pt.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from .data import CLASSES, atomic_write_bytes
from .models import create_model
from .preprocess import Preprocess

FORMAT_VERSION = 1
REQUIRED = ("format_version", "model_name", "model_args", "state_dict", "normalization", "classes")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(ckpt: dict, path) -> None:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write_bytes(path, buf.getvalue(), fsync=False)  # rename keeps it atomic; fsync costs seconds per save


def read_checkpoint(path, map_location="cpu") -> dict:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if p.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: corrupt, truncated or unsafe checkpoint ({msg[:200]})") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not a fer_core checkpoint (no format_version)")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt['format_version']} is not supported (this fer_core reads {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def model_from_checkpoint(ckpt: dict, path="checkpoint"):
    try:
        model = create_model(ckpt["model_name"], **ckpt["model_args"])
        # fp16-stored weights (shipped checkpoints) are cast back to the model's fp32
        sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        model.load_state_dict(sd)
    except (ValueError, RuntimeError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: weights do not fit model {ckpt.get('model_name')!r} ({str(e).splitlines()[0][:200]})") from None
    return model.eval()


def load_model(path, device="cpu"):
    """-> (model in eval mode on `device`, Preprocess). model.checkpoint holds the checkpoint's metadata."""
    ckpt = read_checkpoint(path)
    # channels_last: oneDNN's faster convolution layout on CPUs (and tensor cores on GPUs); inputs follow it
    model = model_from_checkpoint(ckpt, path).to(device, memory_format=torch.channels_last)
    model.checkpoint = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "rng")}
    model.checkpoint["path"] = str(path)
    model.classes = tuple(ckpt.get("classes") or CLASSES)
    return model, Preprocess(ckpt["normalization"]).to(device)


def export_checkpoint(src, dst, half: bool = True, **extra) -> dict:
    """A shippable copy of a run's checkpoint: no optimizer state, fp16 weights if `half`."""
    ckpt = read_checkpoint(src)
    out = {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng", "step")}
    if half:
        out["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    out.update(extra)
    save_checkpoint(out, dst)
    return out
