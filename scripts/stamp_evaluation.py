"""Store a checkpoint's evaluation in the checkpoint itself, so the dashboard reads its headline numbers from
the file instead of a typed copy: `python scripts/stamp_evaluation.py checkpoints/fer_best.pt --data fer2013.zip`.

Runs fer_core.evaluate (single pass and flip TTA) on the split and adds ckpt["evaluation"] = {split, split_name,
n, accuracy, macro_f1, tta_accuracy, tta_macro_f1, device, torch, precision: "fp32", bf16: {the same four numbers
with bf16 inference}}: the dashboard shows the numbers of the precision this CPU predicts in
(fer_core.inference.inference_precision). The weights are not touched."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from fer_core.evaluate import evaluate  # noqa: E402

SPLIT_NAMES = {"train": "FER2013 Training", "val": "FER2013 PublicTest", "test": "FER2013 PublicTest"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--split-name", help="how the dashboard names the split (default: FER2013's name for it)")
    a = ap.parse_args(argv)
    def numbers(precision: str) -> dict:
        plain = evaluate(a.checkpoint, a.data, a.split, tta=False, precision=precision)
        tta = evaluate(a.checkpoint, a.data, a.split, tta=True, precision=precision)
        return {"n": plain["n"], "accuracy": round(plain["accuracy"], 4), "macro_f1": round(plain["macro_f1"], 4),
                "tta_accuracy": round(tta["accuracy"], 4), "tta_macro_f1": round(tta["macro_f1"], 4)}

    ev = {"split": a.split, "split_name": a.split_name or SPLIT_NAMES.get(a.split, a.split), **numbers("fp32"),
          "device": "cpu", "torch": str(torch.__version__),  # a plain str: weights_only loads
          "precision": "fp32", "bf16": numbers("bf16")}
    ckpt = read_checkpoint(a.checkpoint)
    ckpt["evaluation"] = ev
    save_checkpoint(ckpt, a.checkpoint)
    print(ev)
    return 0


if __name__ == "__main__":
    sys.exit(main())
