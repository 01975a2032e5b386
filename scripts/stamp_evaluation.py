"""Store a checkpoint's evaluation in the checkpoint itself, so the dashboard reads its headline numbers from
the file instead of a typed copy: `python scripts/stamp_evaluation.py checkpoints/fer_best.pt --data fer2013.zip`.

Runs fer_core.evaluate (single pass and flip TTA) on the split and adds ckpt["evaluation"] = {split, split_name,
n, accuracy, macro_f1, tta_accuracy, tta_macro_f1, device, torch, precision: "fp32", bf16: {the same four numbers
with bf16 inference}}: the dashboard shows the numbers of the precision this CPU predicts in
(fer_core.inference.inference_precision). The weights are not touched.

With `--photos DIR` (a labelled folder of real photos: labels.csv or <class>/ folders) it also stores
ckpt["photo_evaluation"] = {set, photos, detected, accuracy, macro_f1, detector, precision: "fp32"}: accuracy over
all the photos (a photo without a face counts as wrong), fp32, single pass, the default YuNet crop. Classify and
Video read it to point at the shipped model that does best on real photos:
`python scripts/stamp_evaluation.py checkpoints/fer_cpu.pt --photos ../shared/data/real_photos_dev_agreed
--photos-name "108 real photos where two annotators agree (real_photos_dev_agreed)"`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from fer_core.evaluate import evaluate, evaluate_photos  # noqa: E402

SPLIT_NAMES = {"train": "FER2013 Training", "val": "FER2013 PublicTest", "test": "FER2013 PublicTest"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", help="the FER2013 source to evaluate on (ckpt['evaluation'])")
    ap.add_argument("--split", default="test")
    ap.add_argument("--split-name", help="how the dashboard names the split (default: FER2013's name for it)")
    ap.add_argument("--photos", help="a labelled folder of real photos (ckpt['photo_evaluation'])")
    ap.add_argument("--photos-name", help="how the dashboard names the photos (default: the folder's name)")
    a = ap.parse_args(argv)
    if not (a.data or a.photos):
        ap.error("nothing to stamp: give --data, --photos or both")
    def numbers(precision: str) -> dict:
        plain = evaluate(a.checkpoint, a.data, a.split, tta=False, precision=precision)
        tta = evaluate(a.checkpoint, a.data, a.split, tta=True, precision=precision)
        return {"n": plain["n"], "accuracy": round(plain["accuracy"], 4), "macro_f1": round(plain["macro_f1"], 4),
                "tta_accuracy": round(tta["accuracy"], 4), "tta_macro_f1": round(tta["macro_f1"], 4)}

    ckpt = read_checkpoint(a.checkpoint)
    if a.data:
        ckpt["evaluation"] = {"split": a.split, "split_name": a.split_name or SPLIT_NAMES.get(a.split, a.split),
                              **numbers("fp32"), "device": "cpu",
                              "torch": str(torch.__version__),  # a plain str: weights_only loads
                              "precision": "fp32", "bf16": numbers("bf16")}
        print(ckpt["evaluation"])
    if a.photos:
        out = evaluate_photos(a.checkpoint, a.photos, precision="fp32")
        ckpt["photo_evaluation"] = {"set": a.photos_name or Path(a.photos).name, "photos": out["photos"],
                                    "detected": out["detected"], "accuracy": round(out["accuracy_all"], 4),
                                    "macro_f1": round(out["macro_f1"], 4), "detector": out["detector"],
                                    "precision": "fp32"}
        print(ckpt["photo_evaluation"])
    save_checkpoint(ckpt, a.checkpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
