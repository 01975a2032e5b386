"""Ensembles of checkpoints (issue 22): accuracy of the mean probability of every combination of up to --max
models, on a FER2013 split (all faces and, for a test split, without the faces that have a near copy in Training)
and on labelled photo folders, beside each model alone.

Every model sees the same faces: each photo is detected and cropped once (the default YuNet crop, first face, or
the whole-image fallback of a tight crop), as `evaluate --photos` does for its accuracy over all photos; a photo
without a face counts wrong for every combination. Each model's probabilities are computed once, with its own
preprocessing; a combination only averages them.

  python benchmarks/ensembles.py --checkpoints best=checkpoints/fer_best.pt cpu=checkpoints/fer_cpu.pt \\
      --split test --photos ../shared/data/real_photos_dev_agreed ../shared/data/real_photos_dev

An analysis, not a way to choose: choose on holdout (`--split holdout`, with models trained without it).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fer_core.audit import dedup_mask  # noqa: E402
from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.checkpoint import CheckpointError, load_model  # noqa: E402
from fer_core.data import load_split  # noqa: E402
from fer_core.evaluate import photo_labels  # noqa: E402
from fer_core.faces import find_faces  # noqa: E402
from fer_core.images import DataError, open_image  # noqa: E402
from fer_core.inference import predict_proba  # noqa: E402


def photo_crops(folder) -> tuple[np.ndarray, list]:
    """Labels (N,) and the first face's 48x48 crop of each photo (None where there is none)."""
    ys, crops = [], []
    for path, k in photo_labels(folder):
        try:
            faces = find_faces(open_image(str(path), name=path.name), name=path.name)
        except DataError:  # NoFaceError included: the photo counts wrong
            faces = []
        ys.append(k)
        crops.append(faces[0].face48 if faces else None)
    return np.array(ys), crops


def crop_probs(model, prep, crops, precision) -> np.ndarray:
    """(N, C) probabilities of the crops; NaN rows where there is no crop (never right, never averaged away)."""
    c = len(model.classes)
    out = np.full((len(crops), c), np.nan, np.float32)
    idx = [i for i, x in enumerate(crops) if x is not None]
    if idx:
        out[idx] = predict_proba(model, prep, np.stack([crops[i] for i in idx]), precision=precision)
    return out


def accuracy(probs: list[np.ndarray], y: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Accuracy of the mean of the models' probabilities; a row with NaN (no face) counts wrong."""
    p = np.mean(probs, 0)
    right = (np.nan_to_num(p, nan=-1.0).argmax(1) == y) & ~np.isnan(p).any(1)
    return float(right[mask].mean() if mask is not None else right.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", nargs="+", required=True, help="NAME=PATH (or PATH: named by its stem)")
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--split", default="test", help="test (PublicTest), holdout (to choose), ...")
    ap.add_argument("--photos", nargs="*", default=[], help="labelled photo folders (labels.csv or <class>/)")
    ap.add_argument("--max", type=int, default=3, help="largest combination (default 3)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--no-dedup", action="store_true", help="skip the without-near-copies column")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.max < 1:
        ap.error("--max must be at least 1")
    named = {}
    for spec in a.checkpoints:
        name, _, path = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)
        if name in named:
            ap.error(f"two checkpoints named {name!r}")
        named[name] = path
    if len({Path(f).name for f in a.photos}) < len(a.photos):
        ap.error("two photo folders with the same name: their columns would share it")
    try:
        faces = load_split(a.data, a.split)
        keep = None if a.no_dedup or a.split in ("train", "holdout") else dedup_mask(a.data, a.split)
        photos = {Path(f).name: photo_crops(f) for f in a.photos}
    except (DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    probs, seconds = {}, {}
    for name, path in named.items():
        t0 = time.perf_counter()
        try:
            model, prep = load_model(path)
        except (CheckpointError, OSError) as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            return 2
        probs[name] = {a.split: predict_proba(model, prep, faces.x, precision=a.precision)}
        for folder, (_, crops) in photos.items():
            probs[name][folder] = crop_probs(model, prep, crops, a.precision)
        seconds[name] = round(time.perf_counter() - t0, 1)
    rows = []
    for r in range(1, min(a.max, len(named)) + 1):
        for combo in itertools.combinations(named, r):
            row = {"models": list(combo), a.split: round(accuracy([probs[n][a.split] for n in combo], faces.y), 4)}
            if keep is not None:
                row["without_near_copies"] = round(accuracy([probs[n][a.split] for n in combo], faces.y, keep), 4)
            for folder, (y, _) in photos.items():
                row[folder] = round(accuracy([probs[n][folder] for n in combo], y), 4)
            rows.append(row)
    meta = {"split": a.split, "n": len(faces.y), "removed_near_copies": None if keep is None else int((~keep).sum()),
            "photos": {f: len(y) for f, (y, _) in photos.items()},
            "photos_without_face": {f: sum(c is None for c in cr) for f, (_, cr) in photos.items()},
            "checkpoints": named, "seconds": seconds, "precision": a.precision, "cpu": cpu_name()}
    if a.json:
        print(json.dumps({**meta, "rows": rows}))
        return 0
    cols = [c for c in rows[0] if c != "models"]
    print(f"{a.split}: {len(faces.y)} faces ({a.precision}, {cpu_name()}); photos: {meta['photos']}")
    print(f"{'models':40s} " + " ".join(f"{c[:20]:>20s}" for c in cols))
    for row in rows:
        print(f"{' + '.join(row['models']):40s} " + " ".join(f"{row[c]:20.4f}" for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
