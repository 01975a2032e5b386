"""Interpretability speed on the shipped models.

1. Predictions over a whole split (what Confusion Matrix and Saliency wait for the first time): the time for
   every face, plain and with flip TTA reusing the plain pass, at the default CPU batch size, plus a sweep
   of batch sizes as ratios against the default (issue 14's aim: 3,589 PublicTest faces in <= 15 s on 2 cores).
2. One face's vanilla / Grad-CAM saliency (median of 20) and the confusion matrix first / from the disk cache.

  python benchmarks/interpret_speed.py --data fer2013.zip --split test          # the full PublicTest split
  python benchmarks/interpret_speed.py [--data samples/fer2013_sample.npz] [--skip-saliency] [--batch-sizes 32 64 128]

Prints the CPU and torch's thread count beside the figures; pin cores with `taskset -c 0,1` to emulate 2 cores.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import fer_core  # noqa: E402
from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.inference import CPU_BATCH, cpu_native_bf16, inference_precision, predict_logits  # noqa: E402
from fer_core.interpret import class_table, confusion, predictions, predictions_cache_file  # noqa: E402
from fer_core.saliency import saliency  # noqa: E402


def timed(fn):
    """(wall seconds, result); the process's CPU seconds of the last call go to `cpu` (on a busy machine CPU
    seconds / threads tells what the wall time would be on idle cores)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    cpu[0] = time.process_time() - c0
    return time.perf_counter() - t0, out


cpu = [0.0]


def bench(checkpoint, data, split: str = "test", repeats: int = 20) -> dict:
    """Timings in ms: one-face vanilla / Grad-CAM saliency (median and best of `repeats`, after a warm-up),
    and the confusion matrix of the split (first computation, then from the disk cache)."""
    model, prep = fer_core.load_model(checkpoint)
    faces = fer_core.load_split(data, split)
    out = {"faces": len(faces)}
    for method in ("vanilla", "gradcam"):
        saliency(model, prep, faces.x[0], 0, method)
        ts = []
        for i in range(repeats):
            t0 = time.perf_counter()
            saliency(model, prep, faces.x[i % len(faces)], int(faces.y[i % len(faces)]), method)
            ts.append((time.perf_counter() - t0) * 1e3)
        out[f"{method}_ms_median"], out[f"{method}_ms_best"] = float(np.median(ts)), float(min(ts))
    for label, use_cache in (("confusion_first_ms", False), ("confusion_cached_ms", True)):
        if not use_cache:
            f = predictions_cache_file(checkpoint, data, faces.split, False)
            f.unlink(missing_ok=True)
        t0 = time.perf_counter()
        p = predictions(model, prep, faces, checkpoint=checkpoint)
        confusion(p.true, p.pred)
        class_table(p.true, p.pred)
        out[label] = (time.perf_counter() - t0) * 1e3
    return out


@torch.inference_mode()
def baseline_logits(model, prep, x, bs=CPU_BATCH):
    """The path before the fast twin: the fp32 model as loaded (batch norm not folded), batch 64."""
    return torch.cat([model(prep(x[i : i + bs]).contiguous(memory_format=torch.channels_last))
                      for i in range(0, len(x), bs)]).numpy()


ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--data", default=str(ROOT / "samples" / "fer2013_sample.npz"))
ap.add_argument("--split", default="test")
ap.add_argument("--checkpoints", nargs="+", default=[str(ROOT / "checkpoints" / n) for n in ("fer_best.pt", "seed_vgg.pt")])
ap.add_argument("--batch-sizes", nargs="*", type=int, default=[32, 128, 256])
ap.add_argument("--skip-saliency", action="store_true", help="only the full-split prediction times")
a = ap.parse_args()
print(f"CPU: {cpu_name()}; {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} "
      f"usable cores; torch {torch.__version__} with {torch.get_num_threads()} threads; native bf16: "
      f"{cpu_native_bf16()}, so the dashboard predicts in {inference_precision('cpu')}")
faces = fer_core.load_split(a.data, a.split)
for ckpt in a.checkpoints:
    name = Path(ckpt).name
    model, prep = fer_core.load_model(ckpt)
    predict_logits(model, prep, faces.x[:CPU_BATCH])  # warm-up (oneDNN picks its kernels)
    t_base, base = timed(lambda: baseline_logits(model, prep, faces.x))
    cpu_base = cpu[0]
    t_plain, plain = timed(lambda: predictions(model, prep, faces, cache=False))
    cpu_plain = cpu[0]
    agree = float((plain.pred == base.argmax(1)).mean())
    # TTA as the dashboard does it: the plain pass (from the cache) + the mirrored pass only
    t_mirror, _ = timed(lambda: predict_logits(model, prep, faces.x, mirror=True))
    print(f"{name}: predictions over {len(faces):,} {a.split} faces (batch {CPU_BATCH}): {t_plain:.1f} s "
          f"({t_plain / len(faces) * 1e3:.2f} ms/face; {cpu_plain:.1f} CPU s over {torch.get_num_threads()} threads); "
          f"flip TTA after it adds {t_mirror:.1f} s ({cpu[0]:.1f} CPU s)")
    print(f"  {inference_precision('cpu')} twin (batch norm folded, conv+ReLU fused) vs the fp32 model as loaded: {t_base:.1f} s "
          f"({cpu_base:.1f} CPU s) -> {t_plain:.1f} s, {t_base / t_plain:.2f}x faster; same predicted class for "
          f"{agree:.2%} of the faces; accuracy {(base.argmax(1) == faces.y).mean():.4f} -> {(plain.pred == faces.y).mean():.4f}")
    if inference_precision("cpu") != "fp32":
        t32, _ = timed(lambda: predict_logits(model, prep, faces.x, precision="fp32"))
        print(f"  fp32 twin: {t32:.1f} s, {t_base / t32:.2f}x faster than the model as loaded")
    for bs in a.batch_sizes:
        t_bs, _ = timed(lambda: predict_logits(model, prep, faces.x, batch_size=bs))
        print(f"  batch {bs}: {t_bs:.1f} s, {t_bs / t_plain:.2f}x the time of batch {CPU_BATCH}")
    if not a.skip_saliency:
        res = bench(ckpt, a.data, a.split)
        print("  saliency and confusion matrix:", json.dumps({k: round(v, 1) if isinstance(v, float) else v
                                                               for k, v in res.items()}))
