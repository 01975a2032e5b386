"""One face's saliency map by each of the eight methods (default settings), as a ratio to the vanilla gradient
measured in the same run, so a busy machine shifts all of them alike.

  python benchmarks/saliency_methods.py [--checkpoint checkpoints/fer_best.pt] [--repeats 5]
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core import load_model, load_split, saliency  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "fer_best.pt"))
ap.add_argument("--data", default=str(ROOT / "samples" / "fer2013_sample.npz"))
ap.add_argument("--repeats", type=int, default=5)
a = ap.parse_args()

model, prep = load_model(a.checkpoint)
faces = load_split(a.data, "test")
print(f"{Path(a.checkpoint).name} on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
      f"median of {a.repeats} faces, ms per map")
times = {}
for method in saliency.METHODS:
    saliency.saliency(model, prep, faces.x[0], int(faces.y[0]), method)  # warm-up
    ts = []
    for i in range(a.repeats):
        t0 = time.perf_counter()
        saliency.saliency(model, prep, faces.x[i + 1], int(faces.y[i + 1]), method)
        ts.append((time.perf_counter() - t0) * 1e3)
    times[method] = float(np.median(ts))
for method, ms in times.items():
    print(f"{saliency.METHOD_NAMES[method]:<22}{ms:8.1f} ms   {ms / times['vanilla']:6.1f}x vanilla")
