"""Multi-crop test-time augmentation (issue 23): accuracy of a checkpoint when each face's probabilities are
averaged over shifted copies and their mirrors, against the flip TTA measured in the same run.

A view is the face moved by (dy, dx) pixels, its border repeated (as the trainer's shift augmentation fills it),
mirrored or not. Each view's logits are computed once; every set of views is then scored from them.

  python benchmarks/tta_views.py --checkpoint runs/ablations22/<run>/last.pt --split holdout   # choose on holdout
  python benchmarks/tta_views.py --checkpoint checkpoints/fer_cpu.pt --split test
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.checkpoint import load_model  # noqa: E402
from fer_core.data import load_split  # noqa: E402
from fer_core.inference import predict_logits  # noqa: E402

ONE = [(0, 1), (0, -1), (1, 0), (-1, 0)]
TWO = [(0, 2), (0, -2), (2, 0), (-2, 0)]
DIAG = [(2, 2), (2, -2), (-2, 2), (-2, -2)]
# name -> the shifts (dy, dx) whose face and mirror are averaged; (0, 0) is in every set
VIEW_SETS = {
    "single": None,  # the face alone
    "flip": [],  # the face and its mirror: the baseline
    "flip + 1 px across": [(0, 1), (0, -1)],
    "flip + 1 px, 4 ways": ONE,
    "flip + 2 px, 4 ways": TWO,
    "flip + 2 px diagonals": DIAG,
    "flip + 1 and 2 px, 8 ways": ONE + TWO,
    "all 13 shifts": ONE + TWO + DIAG,
}


def shifted(faces: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """uint8 (N, H, W) -> the faces moved dy pixels down and dx right, the nearest border pixel repeated."""
    if dy == dx == 0:
        return faces
    p = max(abs(dy), abs(dx))
    pad = np.pad(faces, ((0, 0), (p, p), (p, p)), mode="edge")
    h, w = faces.shape[1:]
    return np.ascontiguousarray(pad[:, p - dy : p - dy + h, p - dx : p - dx + w])


def view_logits(model, prep, faces, shifts, precision) -> dict:
    """{(dy, dx, mirrored): logits (N, C)} of every shift in `shifts`, each as it is and mirrored."""
    out = {}
    for dy, dx in shifts:
        v = shifted(faces, dy, dx)
        out[(dy, dx, False)] = predict_logits(model, prep, v, precision=precision)
        out[(dy, dx, True)] = predict_logits(model, prep, v, mirror=True, precision=precision)
    return out


def accuracy(logits: dict, keys, y) -> float:
    """Accuracy of the mean probability over the views `keys`."""
    p = np.mean([torch.softmax(torch.from_numpy(logits[k]), 1).numpy() for k in keys], 0)
    return float((p.argmax(1) == y).mean())


def set_keys(shifts) -> list:
    if shifts is None:
        return [(0, 0, False)]
    return [(dy, dx, m) for dy, dx in [(0, 0)] + list(shifts) for m in (False, True)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--split", default="holdout", help="holdout (to choose), test (PublicTest), ...")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"], help="as the trainer validates")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    model, prep = load_model(a.checkpoint)
    fs = load_split(a.data, a.split)
    faces, y = fs.x, fs.y  # (N, 48, 48) uint8, (N,)
    shifts = sorted({s for v in VIEW_SETS.values() if v for s in v} | {(0, 0)})
    t0 = time.perf_counter()
    logits = view_logits(model, prep, faces, shifts, a.precision)
    per_view = (time.perf_counter() - t0) / len(logits)
    base = accuracy(logits, set_keys([]), y)
    rows = []
    for name, s in VIEW_SETS.items():
        keys = set_keys(s)
        acc = accuracy(logits, keys, y)
        rows.append({"views": name, "n_views": len(keys), "accuracy": round(acc, 4),
                     "vs_flip_points": round(100 * (acc - base), 2), "cost_vs_flip": len(keys) / 2})
    if a.json:
        print(json.dumps({"checkpoint": a.checkpoint, "split": a.split, "n": len(y), "cpu": cpu_name(),
                          "seconds_per_view": round(per_view, 2), "rows": rows}))
        return 0
    print(f"{a.checkpoint} on {a.split} (n={len(y)}, {a.precision}, {cpu_name()}, {per_view:.1f} s per view)")
    print(f"{'views':28s} {'n':>3s} {'accuracy':>9s} {'vs flip':>8s} {'cost':>6s}")
    for r in rows:
        print(f"{r['views']:28s} {r['n_views']:3d} {r['accuracy']:9.4f} {r['vs_flip_points']:+7.2f}p "
              f"{r['cost_vs_flip']:5.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
