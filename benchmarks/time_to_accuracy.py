"""Wall time until PublicTest (val) accuracy first reaches a target (default 0.65, the report's final number).

Trains with a named recipe (default: "best", the shipped model's) through fer_core.train, evaluating on the
val split after every epoch, and stops at the first epoch at or above the target. The clock starts before
the data is loaded (from the decoded cache; decode it once beforehand) and the model is built.

  python benchmarks/time_to_accuracy.py --data ../shared/data/fer2013.zip [--recipe best] [--epochs 30]
  python benchmarks/time_to_accuracy.py --device cpu --compare cpu_v1 --seeds 0 1 2   # the cpu recipe before issue 23 beside it
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
from fer_core.recipes import RECIPES, recipe_config, with_epochs  # noqa: E402
from fer_core.devices import resolve_device  # noqa: E402
from fer_core.train import train  # noqa: E402


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from fer_core.calibrate import cpu_name
    from fer_core.inference import cpu_native_bf16

    return (f"{cpu_name()} ({torch.get_num_threads()} threads, native bf16: {cpu_native_bf16()}, "
            f"capability {torch.backends.cpu.get_cpu_capability()})")


def run_recipe(recipe: str, seed: int, a, role: str = "recipe") -> dict:
    """One timed run of `recipe` with `seed` -> its result (the time to the target, or how long it tried)."""
    cfg = recipe_config(recipe, data=a.data, device=a.device, seed=seed)
    with_epochs(cfg, a.epochs)  # the same share of the schedule at low resolution
    cfg.checkpoint_every = cfg.epochs  # checkpoint I/O is not what this measures
    cfg.validate()
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
    train(cfg, out_dir=out, run_dir=f"time_to_{a.target}-{role}-{recipe}-s{seed}", callback=on_epoch)
    total = time.perf_counter() - t0
    return {"device": device_name(resolve_device(cfg.device)), "recipe": recipe, "role": role, "seed": seed, "model": cfg.model,
            "epochs_schedule": cfg.epochs, "target": a.target, "reached": bool(hit), "decode_s": round(t_decode, 1),
            **({"epoch": hit["epoch"], "seconds": round(hit["seconds"], 2), "val_acc": hit["val_acc"]} if hit
               else {"gave_up_after_s": round(total, 1)}),
            "final": {**last, "seconds": round(last.get("seconds", 0.0), 2)}}


def describe(res: dict, a) -> str:
    if res["reached"]:
        text = (f"{res['device']}: recipe '{res['recipe']}' ({res['model']}, {res['epochs_schedule']}-epoch schedule, "
                f"seed {res['seed']}) reached val acc {res['val_acc']:.4f} >= {a.target} at epoch {res['epoch']} after "
                f"{res['seconds']:.1f} s (wall time from the start of training: reading the cached faces, building "
                f"the model, every epoch and its evaluation; the one-time JPEG decode before it took "
                f"{res['decode_s']:.1f} s)")
    else:
        text = f"{res['device']}: recipe '{res['recipe']}' (seed {res['seed']}) did not reach {a.target} within " \
               f"{res['gave_up_after_s']:.0f} s"
    last = res["final"]
    if last and (a.full or not res["reached"]):
        text += f"\nfinal epoch {last['epoch']}: val acc {last['val_acc']:.4f} after {last['seconds']:.1f} s"
    return text


def comparison(results: list[dict], recipe: str, other: str) -> str:
    """Per seed, the two recipes' seconds to the target side by side, and their ratio (same machine, same run)."""
    rows = [f"{'seed':>4}  {recipe + ' (s)':>14}  {other + ' (s)':>14}  speed-up"]
    for seed in sorted({r["seed"] for r in results}):
        new, old = (next(r for r in results if r["seed"] == seed and r["role"] == n) for n in ("recipe", "compare"))
        fmt = lambda r: f"{r['seconds']:.1f}" if r["reached"] else f">{r['gave_up_after_s']:.0f}"  # noqa: E731
        ratio = f"{old['seconds'] / new['seconds']:.2f}x" if new["reached"] and old["reached"] else "-"
        rows.append(f"{seed:>4}  {fmt(new):>14}  {fmt(old):>14}  {ratio}")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--recipe", default=None, choices=sorted(RECIPES),
                    help="default: 'cpu' when training on the CPU, else 'best'")
    ap.add_argument("--compare", default=None, choices=sorted(RECIPES),
                    help="also time this recipe, same seeds, same machine, one after the other, and print the two "
                         "side by side with the speed-up (e.g. --compare cpu_v1: the cpu recipe before issue 23)")
    ap.add_argument("--epochs", type=int, default=None, help="schedule length (default: the recipe's; its low-resolution epochs keep their share of it)")
    ap.add_argument("--target", type=float, default=0.65)
    ap.add_argument("--max-seconds", type=float, default=3600, help="give up after this long")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=None, help="one seed (default 0); --seeds for several")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--out", default=None, help="keep the run directories here (default: a temp dir)")
    ap.add_argument("--full", action="store_true",
                    help="train the whole schedule after the target is reached (the final epoch's accuracy is printed "
                         "too; the time to the target is measured the same way)")
    ap.add_argument("--json", action="store_true", help="one JSON object a line per run")
    a = ap.parse_args()
    a.recipe = a.recipe or ("cpu" if resolve_device(a.device).type == "cpu" else "best")
    seeds = a.seeds or [0 if a.seed is None else a.seed]
    results = []
    for seed in seeds:
        for role, recipe in [("recipe", a.recipe)] + ([("compare", a.compare)] if a.compare else []):
            res = run_recipe(recipe, seed, a, role)
            results.append(res)
            print(json.dumps(res) if a.json else describe(res, a), flush=True)
    if a.compare and not a.json:
        print(comparison(results, a.recipe, a.compare))


if __name__ == "__main__":
    main()
