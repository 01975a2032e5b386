"""Calibrate the YuNet box-to-crop mapping (fer_core.faces.CROP_SCALE, CROP_DY) on FER2013 faces.

    python scripts/calibrate_crop.py --data fer2013.zip [--n 600] [--seed 0]

Each Training face is upscaled 4x (192 px) into the middle of a 480x480 gray canvas and re-detected with YuNet;
the original 48x48 frame is then known in the detector's coordinates. Prints the medians (and IQR) of the frame's
side over max(box w, h) and of the frame centre's offset from the box centre in box heights, plus the median
landmark positions in the frame. Measured (n=600, seed 0): 580 found, scale 0.970 (IQR 0.881-1.073), dy -0.015.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_core.data import load_split  # noqa: E402
from fer_core.faces import detect_yunet  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="FER2013 data (CSV, image folder, .zip)")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    x = load_split(a.data, "train").x
    pick = np.random.default_rng(a.seed).choice(len(x), min(a.n, len(x)), replace=False)
    size, canvas_side = 192, 480
    off = (canvas_side - size) // 2
    rows = []
    for i in pick:
        canvas = np.full((canvas_side, canvas_side), 128, np.uint8)
        canvas[off : off + size, off : off + size] = cv2.resize(x[i], (size, size), interpolation=cv2.INTER_CUBIC)
        found = detect_yunet(canvas, pad=0)
        if len(found) != 1:
            continue
        (bx, by, bw, bh), _, lm = found[0]
        # box and landmarks in units of the original frame (0..1)
        rows.append([(bx - off) / size, (by - off) / size, bw / size, bh / size, *((lm - off) / size).ravel()])
    r = np.array(rows)  # (found, 14)
    scale = 1 / np.maximum(r[:, 2], r[:, 3])
    dy = (0.5 - (r[:, 1] + r[:, 3] / 2)) / r[:, 3]
    dx = (0.5 - (r[:, 0] + r[:, 2] / 2)) / r[:, 2]
    print(f"found {len(r)} of {len(pick)}")
    print(f"box in the frame (median x, y, w, h): {np.median(r[:, :4], 0).round(3).tolist()}")
    print(f"CROP_SCALE {np.median(scale):.3f} (IQR {np.percentile(scale, 25):.3f}-{np.percentile(scale, 75):.3f})")
    print(f"CROP_DY {np.median(dy):.3f} (IQR {np.percentile(dy, 25):.3f}-{np.percentile(dy, 75):.3f}); "
          f"dx {np.median(dx):.3f}")
    print(f"landmarks in the frame (median): {np.median(r[:, 4:], 0).reshape(5, 2).round(3).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
