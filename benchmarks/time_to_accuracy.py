"""Wall time until PublicTest (val) accuracy first reaches a target (default 0.65, the report's final number).

Trains with a named recipe (default: "best", the shipped model's) through fer_core.train, evaluating on the
val split after every epoch, and stops at the first epoch at or above the target. The clock starts before
the data is loaded (from the decoded cache; decode it once beforehand) and the model is built.

  python benchmarks/time_to_accuracy.py --data ../shared/data/fer2013.zip [--recipe best] [--epochs 30]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from fer_core.data import load_split  # noqa: E402
from fer_core.recipes import RECIPES, recipe_config  # noqa: E402
from fer_core.devices import resolve_device  # noqa: E402
from fer_core.train import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--recipe", default=None, choices=sorted(RECIPES),
                    help="default: 'cpu' when training on the CPU, else 'best'")
    ap.add_argument("--epochs", type=int, default=None, help="schedule length (default: the recipe's)")
    ap.add_argument("--target", type=float, default=0.65)
    ap.add_argument("--max-seconds", type=float, default=3600, help="give up after this long")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="keep the run directory here (default: a temp dir)")
    ap.add_argument("--full", action="store_true",
                    help="train the whole schedule after the target is reached (the final epoch's accuracy is printed "
                         "too; the time to the target is measured the same way)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    a.recipe = a.recipe or ("cpu" if resolve_device(a.device).type == "cpu" else "best")
    cfg = recipe_config(a.recipe, data=a.data, device=a.device, seed=a.seed)
    if a.epochs:
        cfg.epochs = a.epochs
    cfg.checkpoint_every = cfg.epochs  # checkpoint I/O is not what this measures
    cfg.validate()
    device = resolve_device(cfg.device)
    t_decode = time.perf_counter()
    load_split(a.data, "train"), load_split(a.data, cfg.val_split)  # decode the images once (cached on disk)
    t_decode = time.perf_counter() - t_decode
    hit, last = {}, {}
    t0 = time.perf_counter()

    def on_epoch(m):
        now = time.perf_counter() - t0
        last.update(epoch=m["epoch"], seconds=now, val_acc=m["val_acc"])
        if m["val_acc"] >= a.target and not hit:
            hit.update(epoch=m["epoch"], seconds=now, val_acc=m["val_acc"])
            return not a.full
        return now > a.max_seconds

    out = a.out or tempfile.mkdtemp(prefix="tta-")
    train(cfg, out_dir=out, run_dir=f"time_to_{a.target}", callback=on_epoch)
    total = time.perf_counter() - t0
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        from fer_core.inference import cpu_native_bf16

        from fer_core.calibrate import cpu_name

        name = (f"{cpu_name()} ({torch.get_num_threads()} threads, native bf16: {cpu_native_bf16()}, "
                f"capability {torch.backends.cpu.get_cpu_capability()})")
    res = {"device": name, "recipe": a.recipe, "model": cfg.model, "epochs_schedule": cfg.epochs, "target": a.target,
           "reached": bool(hit), "decode_s": round(t_decode, 1), **({"epoch": hit["epoch"], "seconds": round(hit["seconds"], 2),
                                     "val_acc": hit["val_acc"]} if hit else {"gave_up_after_s": round(total, 1)}),
           "final": {**last, "seconds": round(last.get("seconds", 0.0), 2)}}
    if a.json:
        print(json.dumps(res))
    elif hit:
        print(f"{name}: recipe '{a.recipe}' ({cfg.model}, {cfg.epochs}-epoch schedule) reached val acc "
              f"{hit['val_acc']:.4f} >= {a.target} at epoch {hit['epoch']} after {hit['seconds']:.1f} s (wall time from "
              f"the start of training: reading the cached faces, building the model, every epoch and its evaluation; "
              f"the one-time JPEG decode before it took {t_decode:.1f} s)")
    else:
        print(f"{name}: recipe '{a.recipe}' did not reach {a.target} within {total:.0f} s")
    if last and (a.full or not hit) and not a.json:
        print(f"final epoch {last['epoch']}: val acc {last['val_acc']:.4f} after {last['seconds']:.1f} s")


if __name__ == "__main__":
    main()
