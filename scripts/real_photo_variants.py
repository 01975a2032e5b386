"""Accuracy on labelled real photos under changes made at inference only: crop pixels (contrast, histogram,
gamma, blur), a class-prior correction, other crop scales and offsets, several crops averaged, and the shipped
checkpoints averaged. Each row: accuracy on the faces found (first YuNet face, as `evaluate --photos`), single
pass and flip TTA, then the two seeded, stratified halves of the photos (TTA) to show what is noise.

    python scripts/real_photo_variants.py --photos ../shared/data/real_photos_dev --data ../shared/data/fer2013.zip

The results for fer_best are in checkpoints/README.md ("What else was tried ..."); nothing here is used by the
dashboard: none of these changes raised dev-set accuracy beyond noise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_core.checkpoint import load_model  # noqa: E402
from fer_core.data import load_split  # noqa: E402
from fer_core.evaluate import photo_labels  # noqa: E402
from fer_core.faces import crop_aligned, find_faces  # noqa: E402
from fer_core.images import open_image, to_gray  # noqa: E402
from fer_core.inference import predict_logits  # noqa: E402

SHIPPED = ["checkpoints/fer_best.pt", "checkpoints/seed_vgg.pt", "checkpoints/fer_cpu_v1.pt"]  # the card's table


def detections(folder):
    """[(gray, (box, score, landmarks), label)]: the first face find_faces gives each photo, where YuNet found it
    (the crops below are YuNet's; evaluate --photos scores the same faces)."""
    out = []
    for path, k in photo_labels(folder):
        g = to_gray(open_image(path))
        faces = find_faces(g, path.name, whole_image=False, required=False)
        if faces and faces[0].detector == "yunet":
            f = faces[0]
            out.append((g, (f.box, f.score, f.landmarks), k))
    return out


def crops(dets, scale_k=1.0, dy=None):
    from fer_core.faces import CROP_DY, CROP_SCALE

    return np.stack([crop_aligned(g, d[0], d[2], CROP_SCALE * scale_k, CROP_DY if dy is None else dy)
                     for g, d, _ in dets])  # (N, 48, 48) uint8


def per_face(fn):
    return lambda x: np.stack([fn(c) for c in x])


def stretch(lo, hi):
    def f(c):
        a, b = np.percentile(c, [lo, hi])
        return np.clip((c - a) * 255.0 / max(b - a, 1), 0, 255).astype(np.uint8)
    return per_face(f)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", required=True)
    ap.add_argument("--data", default="../shared/data/fer2013.zip", help="FER2013 (Training's histogram and prior)")
    ap.add_argument("--checkpoint", action="append", help="default: the three shipped checkpoints")
    a = ap.parse_args(argv)
    ckpts = a.checkpoint or SHIPPED
    dets = detections(a.photos)
    y = np.array([k for _, _, k in dets])
    half = np.zeros(len(y), bool)  # two stratified halves, seeded
    rng = np.random.default_rng(0)
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        rng.shuffle(idx)
        half[idx[: len(idx) // 2]] = True
    tr = load_split(a.data, "train")
    prior = np.bincount(tr.y, minlength=7) / len(tr.y)
    cdf_ref = np.cumsum(np.bincount(tr.x.ravel(), minlength=256)) / tr.x.size
    flat = tr.x.reshape(len(tr.x), -1).astype(np.float32)
    m_ref, s_ref = float(np.median(flat.mean(1))), float(np.median(flat.std(1)))

    def hist_match(c):
        cdf = np.cumsum(np.bincount(c.ravel(), minlength=256)) / c.size
        return np.searchsorted(cdf_ref, cdf).clip(0, 255).astype(np.uint8)[c]

    def mean_std(c):
        c = c.astype(np.float32)
        return np.clip((c - c.mean()) / max(c.std(), 1) * s_ref + m_ref, 0, 255).astype(np.uint8)

    clahe = cv2.createCLAHE(2.0, (4, 4))
    base = crops(dets)
    pixel = {
        "none (as shipped)": lambda x: x,
        "contrast stretched 0-255 (min-max)": stretch(0, 100),
        "contrast stretched, 1st-99th percentile": stretch(1, 99),
        "histogram matched to Training's": per_face(hist_match),
        "mean/std set to Training's median face": per_face(mean_std),
        "histogram equalization": per_face(cv2.equalizeHist),
        "CLAHE (clip 2, 4x4 tiles)": per_face(clahe.apply),
        "gamma 0.7": lambda x: (255 * (x / 255.0) ** 0.7).astype(np.uint8),
        "gamma 1.4": lambda x: (255 * (x / 255.0) ** 1.4).astype(np.uint8),
        **{f"Gaussian blur sigma {s} px": per_face(lambda c, s=s: cv2.GaussianBlur(c, (0, 0), s))
           for s in (0.5, 0.8, 1.2)},
    }
    print(f"{len(dets)} faces found in {a.photos}; accuracy single / flip TTA  (halves A / B, TTA)")

    def row(name, logits1, logits2):
        ok1, ok2 = logits1.argmax(1) == y, logits2.argmax(1) == y
        print(f"| {name} | {ok1.mean():.3f} | {ok2.mean():.3f} | {ok2[half].mean():.3f} / {ok2[~half].mean():.3f} |",
              flush=True)

    probs = []
    for ck in ckpts:
        model, prep = load_model(ck)
        print(f"\n{ck}\n| change at inference | single | flip TTA | halves (TTA) |\n|---|---:|---:|---:|")
        for name, fn in pixel.items():
            x = fn(base)
            row(name, predict_logits(model, prep, x), predict_logits(model, prep, x, tta=True))
        l1, l2 = predict_logits(model, prep, base), predict_logits(model, prep, base, tta=True)
        row("class-prior correction: logits - log(Training share)", l1 - np.log(prior), l2 - np.log(prior))
        for sk in (0.85 / 0.97, 1.1 / 0.97, 1.25 / 0.97):
            x = crops(dets, sk)
            row(f"crop scale x{sk:.2f}", predict_logits(model, prep, x), predict_logits(model, prep, x, tta=True))
        p9 = [torch.softmax(torch.from_numpy(predict_logits(model, prep, crops(dets, sk, dy), tta=t)), 1).numpy()
              for sk in (0.85 / 0.97, 1.0, 1.1 / 0.97) for dy in (-0.1, -0.015, 0.08) for t in (False, True)]
        row("mean of 9 crops (3 scales x 3 offsets)", np.log(np.mean(p9[0::2], 0)), np.log(np.mean(p9[1::2], 0)))
        probs.append((torch.softmax(torch.from_numpy(l1), 1).numpy(), torch.softmax(torch.from_numpy(l2), 1).numpy()))
    if len(probs) > 1:
        print("\nall checkpoints above, mean probabilities\n| | single | flip TTA | halves (TTA) |\n|---|---:|---:|---:|")
        row("ensemble", np.log(np.mean([p[0] for p in probs], 0)), np.log(np.mean([p[1] for p in probs], 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
