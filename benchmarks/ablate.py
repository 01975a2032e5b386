"""Ablations of a training recipe: each lever on its own, then together, on the holdout slice of Training.

Every variant is the recipe with some fields changed; each run is a real fer_core.train run (its folder kept
under --out), scored on holdout after every epoch. Prints one row per (variant, seed): final and best holdout
accuracy, the training seconds, and the seconds until holdout first reached --target; and the CPU they ran on.
Results also go, one JSON object a line, to --out/ablations.jsonl (a rerun appends; the table reads it all).

  python benchmarks/ablate.py --recipe cpu --epochs 7 --variants base ema tta alt_flip ls02 all --seeds 0
  python benchmarks/ablate.py --table            # print what ablations.jsonl holds
  python benchmarks/ablate.py --table --photos ../shared/data/real_photos_dev_agreed   # score the runs on photos

--photos DIR also scores each run's final checkpoint on labelled real photos (accuracy over all of them, a photo
without a face counting as wrong; single pass, fp32), for new runs and for the rows that lack that score.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.recipes import RECIPES, recipe_config, with_epochs  # noqa: E402
from fer_core.runfiles import LAST_FILE, read_metrics  # noqa: E402
from fer_core.train import train  # noqa: E402

# name -> TrainConfig fields changed from the recipe's
VARIANTS = {
    "base": {},
    "ema": {"ema": 0.99},
    "ema999": {"ema": 0.999},
    "tta": {"tta": True},
    "alt_flip": {"alternate_flip": True},
    "ls02": {"label_smoothing": 0.2},
    "no_low_res": {"low_res": 0, "low_res_epochs": 0},
    "width24": {"model_args": {"width": 24}},
    "batch256": {"batch_size": 256, "lr": 0.2},
    "whiten": {"whiten_init": True},
    "bn_lr4": {"bn_lr": 4.0},
    "bn_lr16": {"bn_lr": 16.0},
    "ls02_ema": {"label_smoothing": 0.2, "ema": 0.99},
    "all": {"ema": 0.99, "tta": True, "alternate_flip": True, "label_smoothing": 0.2},
    # knowledge distillation from the shipped default (issue 22: distillation's effect on its own)
    "kd_best": {"teacher": "checkpoints/fer_best.pt"},
    "batch256_bn4": {"batch_size": 256, "lr": 0.2, "bn_lr": 4.0},
    "depth1222": {"model_args": {"width": 32, "depths": [1, 2, 2, 2]}},
    # issue 22's "why" ablations: what makes a model good on real photos
    "kd_ens": {"teacher": "checkpoints/fer_best.pt,checkpoints/fer_cpu.pt"},
    "kd_cpu": {"teacher": "checkpoints/fer_cpu.pt"},  # a teacher without fer_best's surprise-as-angry habit on photos
    "width48": {"model_args": {"width": 48}},
    "width64": {"model_args": {"width": 64}},
    "batch256_lr1": {"batch_size": 256},  # fer_best's batch at its peak lr 0.1 (half the lr per face)
    "shipped_aug": {k: RECIPES["best"][k] for k in ("rotation", "zoom", "erase")},  # the shipped model's
    "photometric": {"photometric": 0.5},
    "mixup": {"mixup": 0.2},
    "cutmix": {"cutmix": 1.0},
    "ls0": {"label_smoothing": 0.0},
    # issue 23's batch size and schedule shape (at the recipe's 128 and lr 0.1, 15% warm-up)
    "batch64": {"batch_size": 64, "lr": 0.05},  # twice the steps, the same lr per face
    "batch64_lr1": {"batch_size": 64},  # twice the steps at the same peak lr
    "lr02": {"lr": 0.2},
    "warm04": {"warmup_epochs": 0.4},  # a short warm-up: 5% of an 8-epoch proxy, 3% of 14 epochs
    "low24_most": {"low_res": 24, "low_res_epochs": 13},  # all epochs but the last grow from 24 px (13 of 14, scaled)
}


def run_variant(recipe: str, name: str, seed: int, epochs: int | None, data: str, out: Path, target: float) -> dict:
    cfg = recipe_config(recipe, data=data, seed=seed, val_split="holdout", device="cpu", **VARIANTS[name])
    with_epochs(cfg, epochs)  # the same share of the schedule at low resolution
    cfg.checkpoint_every = cfg.epochs
    cfg.validate()
    run_name = f"{recipe}-{name}-e{cfg.epochs}-s{seed}-{time.strftime('%H%M%S')}"
    t0 = time.time()
    run = train(cfg, out_dir=str(out), run_dir=run_name)
    ms = read_metrics(run)
    if len(ms) < cfg.epochs:  # stopped (Ctrl-C, SIGTERM): a partial run is not a row of the table
        raise SystemExit(f"ablate: {run} stopped after {len(ms)} of {cfg.epochs} epochs; nothing recorded "
                         f"(python -m fer_core.train --resume {run} finishes it)")
    hit = next((m for m in ms if m["val_acc"] >= target), None)
    return {"recipe": recipe, "variant": name, "changes": VARIANTS[name], "seed": seed, "epochs": cfg.epochs,
            "final_holdout": ms[-1]["val_acc"], "best_holdout": max(m["val_acc"] for m in ms),
            "train_seconds": round(sum(m["train_seconds"] for m in ms), 1), "wall_seconds": round(time.time() - t0, 1),
            "seconds_to_target": None if hit is None else round(hit["elapsed"], 1), "target": target,
            "images_per_s": ms[-1]["images_per_s"], "cpu": cpu_name(), "run": str(run)}


def photo_score(row: dict, photos: Path) -> dict:
    """`row` with its run's final checkpoint scored on the labelled photos in `photos` (fp32, single pass)."""
    from fer_core.evaluate import evaluate_photos

    out = evaluate_photos(Path(row["run"]) / LAST_FILE, photos, precision="fp32")
    return {**row, "photos": {"folder": photos.name, "n": out["photos"], "accuracy_all": round(out["accuracy_all"], 4)}}


def table(rows: list[dict]) -> str:
    head = (f"{'recipe':9s} {'variant':12s} {'ep':>3s} {'seed':>4s} {'final':>7s} {'best':>7s} {'train s':>8s} "
            f"{'to target':>9s} {'photos':>7s}  cpu")
    lines = [head]
    for r in rows:
        tt = "-" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.0f}"
        ph = f"{r['photos']['accuracy_all']:.3f}" if r.get("photos") else "-"
        lines.append(f"{r['recipe']:9s} {r['variant']:12s} {r['epochs']:3d} {r['seed']:4d} {r['final_holdout']:7.4f} "
                     f"{r['best_holdout']:7.4f} {r['train_seconds']:8.0f} {tt:>9s} {ph:>7s}  {r['cpu']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--variants", nargs="+", default=["base"], choices=sorted(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=None, help="a shorter schedule as a proxy (default: the recipe's)")
    ap.add_argument("--target", type=float, default=0.60, help="holdout accuracy whose first epoch is timed")
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--out", default="runs/ablations")
    ap.add_argument("--table", action="store_true", help="only print the table of --out/ablations.jsonl")
    ap.add_argument("--photos", type=Path, default=None,
                    help="also score each run's final checkpoint on these labelled photos (labels.csv)")
    a = ap.parse_args()
    out = Path(a.out)
    log = out / "ablations.jsonl"
    if not a.table:
        out.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            for v in a.variants:
                r = run_variant(a.recipe, v, seed, a.epochs, a.data, out, a.target)
                if a.photos:
                    r = photo_score(r, a.photos)
                with open(log, "a") as f:
                    f.write(json.dumps(r) + "\n")
                print(table([r]).splitlines()[1], flush=True)
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()] if log.exists() else []
    if a.photos and any(not r.get("photos") for r in rows):  # backfill the rows scored without photos
        rows = [r if r.get("photos") or not (Path(r["run"]) / LAST_FILE).exists() else photo_score(r, a.photos)
                for r in rows]
        tmp = log.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(log)  # atomic: a killed backfill leaves the old file
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
