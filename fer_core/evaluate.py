"""Evaluate a checkpoint: `python -m fer_core.evaluate --checkpoint CKPT --data PATH --split test [--tta] [--json]`."""
from __future__ import annotations

import argparse
import json
import sys

import torch

from .checkpoint import CheckpointError, load_model
from .data import CLASSES, DataError, load_split
from .inference import predict_logits


def metrics(y_true, y_pred, classes=CLASSES) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }


def evaluate(checkpoint, data, split="test", tta=False, device="cpu") -> dict:
    if device == "auto":
        from .train import resolve_device

        device = str(resolve_device(device))
    model, prep = load_model(checkpoint, device=device)
    faces = load_split(data, split)
    logits = predict_logits(model, prep, faces.x, tta=tta)
    out = metrics(faces.y, logits.argmax(1), model.classes)
    out.update(checkpoint=str(checkpoint), data=str(data), split=split, tta=tta)
    return out


def check_device(device: str) -> None:
    """A device this machine has, else ValueError with one line (before any model or data is loaded)."""
    from .train import resolve_device

    if device not in ("auto", "cpu", "cuda", "mps") and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
    if device.startswith("cuda:") and torch.cuda.is_available() and int(device[5:]) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    resolve_device(device)


def format_report(m: dict) -> str:
    classes = list(m["per_class"])
    lines = [f"{m['checkpoint']} on {m['data']} [{m['split']}, n={m['n']}{', TTA' if m['tta'] else ''}]",
             f"accuracy {m['accuracy']:.4f}   macro F1 {m['macro_f1']:.4f}", "",
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for c in classes:
        pc = m["per_class"][c]
        lines.append(f"{c:<10}{pc['precision']:>10.4f}{pc['recall']:>10.4f}{pc['f1']:>10.4f}{pc['support']:>9}")
    lines += ["", "confusion matrix (rows true, columns predicted)", " " * 10 + "".join(f"{c[:7]:>8}" for c in classes)]
    for c, row in zip(classes, m["confusion_matrix"]):
        lines.append(f"{c:<10}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_core.evaluate", description=__doc__)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--tta", action="store_true", help="average the logits of each face and its mirror")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    try:
        check_device(a.device)
        m = evaluate(a.checkpoint, a.data, a.split, a.tta, a.device)
    except (DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(m) if a.json else format_report(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
