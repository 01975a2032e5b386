"""Checkpoints are plain dicts of tensors and primitives, loaded with weights_only=True.

keys: format_version, model_name, model_args, state_dict, normalization {mode, mean, std}, classes,
train_config, metrics, epoch; training state (optimizer, rng, ...) only in a run's last.pt.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from .data import atomic_write_bytes
from .sources import CLASSES
from .models import create_model
from .preprocess import NORM_MODES, Preprocess

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
        raise CheckpointError(f"{path}: {_load_failure(e)}") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not a fer_core checkpoint (no format_version)")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt['format_version']} is not supported (this fer_core reads {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    problem = malformed(ckpt)
    if problem:
        raise CheckpointError(f"{path}: malformed checkpoint: {problem}")
    return ckpt


def _load_failure(e: Exception) -> str:
    """torch.load's error as one line, without its advice to retry with weights_only=False."""
    text = str(e).strip()
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else ""
        detail = " ".join(detail.split("Check the documentation")[0].split())  # e.g. "Unsupported global: ..."
        # garbage and pickled code both end here: the weights-only reader cannot tell them apart
        return "corrupt or unsafe checkpoint, not loaded: only tensors and plain data are allowed" + (
            f" ({detail[:200]})" if detail else "")
    msg = text.splitlines()[0] if text else type(e).__name__
    return f"corrupt or truncated checkpoint ({msg[:200]})"


def malformed(ckpt: dict) -> str | None:
    """What is wrong with a checkpoint that loaded but cannot be used as one (None if nothing)."""
    if not isinstance(ckpt["model_name"], str):
        return f"model_name is a {type(ckpt['model_name']).__name__}, not a string"
    if not isinstance(ckpt["model_args"], dict):
        return f"model_args is a {type(ckpt['model_args']).__name__}, not a dict"
    sd = ckpt["state_dict"]
    if not isinstance(sd, dict) or not sd:
        return "state_dict is not a non-empty dict of tensors"
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        return f"weight {bad[0]!r} is a {type(sd[bad[0]]).__name__}, not a tensor"
    norm = ckpt["normalization"]
    if not isinstance(norm, dict) or not {"mode", "mean", "std"} <= set(norm):
        return f"normalization is a {type(norm).__name__}, not a dict with mode, mean and std"
    if norm["mode"] not in NORM_MODES:
        return f"normalization mode {norm['mode']!r} is not one of {', '.join(NORM_MODES)}"
    for k in ("mean", "std"):
        v = norm[k]
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            return f"normalization {k} is a {type(v).__name__}, not a float tensor"
        if v.dim() not in (2, 3) or v.numel() not in (1, 48 * 48) or tuple(v.shape[-2:]) not in ((1, 1), (48, 48)):
            # global or per-pixel statistics
            return f"normalization {k} has shape {tuple(v.shape)}, expected (1, 1, 1) or (1, 48, 48)"
    for k in ("mean", "std"):
        if not torch.isfinite(norm[k]).all():
            return f"normalization {k} holds NaN or infinite values"
    if not (norm["std"] > 0).all():
        return "normalization std is not positive everywhere"
    bad = next((k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # NaN weights give every face the same class with nan probabilities: refuse
        return f"weight {bad!r} holds NaN or infinite values"
    classes = ckpt["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        return f"classes is a {type(classes).__name__}, not a list of class names"
    return None


def shape_mismatch(ckpt: dict) -> str | None:
    """Build the model on the meta device (no memory) and compare its tensors with the state dict's, so that
    model_args that ask for a huge model are refused before anything is allocated."""
    try:
        with torch.device("meta"):
            meta = create_model(ckpt["model_name"], **ckpt["model_args"])
    except (TypeError, ValueError) as e:  # unknown model or arguments it does not take
        return " ".join(str(e).split())
    want = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
    wrong = [f"size mismatch for {k}: {have[k]} in the file, {want[k]} in the model its model_args describe"
             for k in want if k in have and have[k] != want[k]]
    if wrong:  # every mismatched tensor, so the whole story is on the one line
        return "; ".join(wrong)
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or extra:
        return (f"missing keys {missing[:3]}" if missing else "") + (" " if missing and extra else "") + (
            f"unexpected keys {extra[:3]}" if extra else "")
    return None


def model_from_checkpoint(ckpt: dict, path="checkpoint"):
    try:
        problem = shape_mismatch(ckpt)
        if problem:
            raise ValueError(problem)
        model = create_model(ckpt["model_name"], **ckpt["model_args"])
        # fp16-stored weights (shipped checkpoints) are cast back to the model's fp32
        sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        model.load_state_dict(sd)
    except (ValueError, RuntimeError, TypeError, KeyError) as e:
        msg = " ".join(str(e).split())  # the whole message (every mismatched key), on one line
        raise CheckpointError(f"{path}: weights do not fit model {ckpt.get('model_name')!r} ({msg})") from None
    with torch.no_grad():
        n_out = model.eval()(torch.zeros(1, 1, 48, 48)).shape[-1]  # (1, classes)
    if n_out != len(ckpt["classes"]):
        raise CheckpointError(f"{path}: malformed checkpoint: the model has {n_out} outputs but the checkpoint "
                              f"names {len(ckpt['classes'])} classes")
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
    # resume state only: the optimizer, RNG, step and, under --ema, the trained (not averaged) weights
    out = {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng", "step", "train_state_dict")}
    if half:
        out["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    out.update(extra)
    save_checkpoint(out, dst)
    return out
