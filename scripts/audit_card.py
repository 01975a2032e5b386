"""The model card's "Data audit" figures: FER2013's near-duplicate faces and what they do to PublicTest accuracy.

    python scripts/audit_card.py [--data ../shared/data/fer2013.zip] [--measure] [--json]

Duplicates come from fer_core.audit (the same code as `python -m fer_core.audit` and the Data Audit page);
accuracy from fer_core.interpret.predictions in fp32 (the card's single-pass rows), on all PublicTest faces and
on those without a near copy in Training (fer_core.audit.dedup_mask). Writes checkpoints/publictest_near_copies.txt
(or --copies PATH): the file names of the PublicTest faces with a near copy in Training, one a line. --measure adds
the distances behind the threshold: each PublicTest face against its own JPEG quality-60 re-encoding and brightness
shifts, random pairs, and the histogram of all pairs' distances (a minute more on two cores).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FER_PRECISION", "fp32")  # the card's single-pass rows are fp32

from fer_core import audit, load_model  # noqa: E402
from fer_core.data import atomic_write_bytes  # noqa: E402
from fer_core.metrics import metrics  # noqa: E402
from fer_core.interpret import predictions  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "fer2013.zip"
SHIPPED = ["fer_best.pt", "seed_vgg.pt", "fer_cpu.pt", "fer_cpu_v1.pt"]
COPIES_FILE = ROOT / "checkpoints" / "publictest_near_copies.txt"


def figures(data=DATA, checkpoints=SHIPPED) -> dict:
    """Duplicate counts (within Training, across Training and PublicTest, within PublicTest) and each checkpoint's
    PublicTest accuracy on all faces, without the near copies of Training and on the copies alone."""
    sets = audit.load_sets(data, ["train", "test"])
    pairs = audit.find_duplicates(sets)
    rows = {r["kind"]: r for r in audit.summarize(pairs, sets)}
    keep = audit.dedup_mask(data, "test", "train")
    test = sets["test"]
    acc = {}
    for name in checkpoints:
        model, prep = load_model(ROOT / "checkpoints" / name)
        pred = predictions(model, prep, test, checkpoint=ROOT / "checkpoints" / name).pred
        acc[name] = {"all": metrics(test.y, pred)["accuracy"], "dedup": metrics(test.y[keep], pred[keep])["accuracy"],
                     "copies": metrics(test.y[~keep], pred[~keep])["accuracy"] if (~keep).any() else None}
    return {"threshold": audit.THRESHOLD, "faces": {s: len(f) for s, f in sets.items()},
            "train_train": rows["train/train"], "train_test": rows["train/test"], "test_test": rows["test/test"],
            "flat_faces": {s: int((audit.spread(f.x) < audit.FLAT_STD).sum()) for s, f in sets.items()},
            "test_kept": int(keep.sum()), "test_copies": sorted(str(i) for i in test.ids[~keep]), "accuracy": acc}


def _jpeg(face, quality: int = 60):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def measure(data=DATA, seed: int = 0) -> dict:
    """The distances the threshold was chosen from (see fer_core.audit's doc)."""
    sets = audit.load_sets(data, ["train", "test"])
    x = sets["test"].x[audit.spread(sets["test"].x) >= audit.FLAT_STD]
    h = audit.phash(x)
    out = {}
    q60 = audit.hamming(h, audit.phash(np.stack([_jpeg(f) for f in x])))
    worst = int(q60.argmax())
    out["jpeg60"] = {"max": int(q60.max()), "q999": float(np.quantile(q60, 0.999)),
                     "max_but_worst": int(np.sort(q60)[-2]), "worst_std": float(audit.spread(x[worst : worst + 1])[0])}
    for dv in (-8, -5, -3, 3, 5, 8):
        shifted = np.clip(x.astype(np.int16) + dv, 0, 255).astype(np.uint8)
        out[f"brightness{dv:+d}"] = int(audit.hamming(h, audit.phash(shifted)).max())
    allx = np.concatenate([f.x for f in sets.values()])
    allx = allx[audit.spread(allx) >= audit.FLAT_STD]
    ha = audit.phash(allx)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(len(ha), size=(2, 1_000_000))
    d = audit.hamming(ha[a[a != b]], ha[b[a != b]])
    out["random_pairs_1e-4"] = float(np.quantile(d, 1e-4))
    out["all_pairs_histogram"] = all_pairs_histogram(ha)[:101].tolist()  # pairs at 0..100 bits
    return out


def all_pairs_histogram(h, block: int = 256) -> np.ndarray:
    """(256,) how many pairs of the hashes h (N, 4) differ in each number of bits (every pair once)."""
    hT = np.ascontiguousarray(h.T)
    hist = np.zeros(256, np.int64)
    for s in range(0, hT.shape[1], block):
        a, b = hT[:, s : s + block, None], hT[:, None, s:]
        d = sum(np.bitwise_count(a[w] ^ b[w]).astype(np.uint16) for w in range(4))  # (B, M)
        upper = np.arange(d.shape[1])[None] > np.arange(d.shape[0])[:, None]  # j > i: each pair once
        hist += np.bincount(d[upper], minlength=256)
    return hist


def card_text(f: dict) -> str:
    tt, tp, pp = f["train_train"], f["train_test"], f["test_test"]
    n_copies = len(f["test_copies"])
    lines = ["| pairs | pairs | labels differ | faces with a copy |", "|---|---:|---:|---:|",
             f"| within Training | {tt['pairs']:,} | {tt['conflicting']:,} | {tt['faces_a']:,} |",
             f"| Training / PublicTest | {tp['pairs']:,} | {tp['conflicting']:,} | {tp['faces_b']:,} PublicTest "
             f"({tp['faces_a']:,} Training) |",
             f"| within PublicTest | {pp['pairs']:,} | {pp['conflicting']:,} | {pp['faces_a']:,} |", "",
             f"| checkpoint | PublicTest ({f['faces']['test']:,}) | without the near copies ({f['test_kept']:,}) "
             f"| on the {n_copies} copies |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {a['all']:.4f} | {a['dedup']:.4f} | {a['copies']:.4f} |"
              for name, a in f["accuracy"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--measure", action="store_true", help="also the distances behind the threshold")
    ap.add_argument("--copies", default=str(COPIES_FILE), help="where to write the near copies' names")
    ap.add_argument("--json", action="store_true", help="one JSON object, with the card's tables as 'card'")
    a = ap.parse_args(argv)
    f = figures(a.data)
    f["card"] = card_text(f)
    atomic_write_bytes(a.copies, ("\n".join(f["test_copies"]) + "\n").encode())
    if a.measure:
        f["measure"] = measure(a.data)
    if a.json:
        print(json.dumps(f))
    else:
        print(f["card"])
        print(f"\nflat faces {f['flat_faces']}; {a.copies}: {len(f['test_copies'])} names")
        if a.measure:
            print(json.dumps(f["measure"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
