"""Interpretability speed on the shipped models: one face's vanilla / Grad-CAM saliency (median of 20, CPU) and
the confusion matrix of a split, first computation and from the disk cache (issue 4's aims: < 100 ms, < 1 s).

  python benchmarks/interpret_speed.py [--data samples/fer2013_sample.npz] [--split test]
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.interpret import bench  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", default=str(ROOT / "samples" / "fer2013_sample.npz"))
ap.add_argument("--split", default="test")
ap.add_argument("--checkpoints", nargs="+", default=[str(ROOT / "checkpoints" / n) for n in ("fer_best.pt", "seed_vgg.pt")])
a = ap.parse_args()
for ckpt in a.checkpoints:
    res = bench(ckpt, a.data, a.split)
    print(Path(ckpt).name, json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in res.items()}))
