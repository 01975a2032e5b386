"""An audit of the data itself: near-duplicate faces within and across splits, and label-noise suspects.

    python -m fer_core.audit --data D [--threshold 24] [--checkpoint C [--split test]] [--json]

Near duplicates: each face gets a 255-bit perceptual hash (pHash): its 16x16 lowest 2-D DCT frequencies less the
DC term, one bit per coefficient (above the face's median coefficient or not), so neither a brightness shift (the
DC term) nor a contrast change (a scale) moves a bit. Two faces whose hashes differ in at most THRESHOLD bits are a
pair. Flat faces (no content: pixel standard deviation below FLAT_STD grey levels) have no hash and pair with each
other when their grey levels are within FLAT_LEVELS.

THRESHOLD = 24 comes from distances measured on FER2013 (fer2013.zip's 32,298 faces, `scripts/audit_card.py
--measure`). A PublicTest face and its own JPEG quality-60 re-encoding differ in at most 24 bits (99.9% of the
3,588 faces with content in at most 16; the 24 is a face with almost no contrast, pixel std 4.2 grey levels). A
brightness shift of 3 or 5 grey levels either way moves at most 20 bits (where pixels clip at 0 or 255), 8 levels
brighter at most 8 (8 darker: 26, the same low-contrast face). Of a million random pairs of faces, 1 in 10,000 is
within 88 bits. Over all pairs of faces with content (distances are even: every hash has 127 bits set): 1,891 at 0
bits, 13 to 41 at each distance from 2 to 18, a plateau of 61 to 228 per distance from 20 to 70 (mostly one photo
cropped differently or with another watermark, some look-alikes), and the bulk of distinct faces from 72 bits on
(341 at 72, 1,053,258 at 100). 24, the largest distance of a copy measured, keeps every re-encoded and shifted
copy and stays at the near end of the plateau, where the pairs looked at were all one picture.

Suspects (with --checkpoint): confident learning (Northcutt et al., 2021). Per class j the threshold t_j is the
model's mean probability of j over the faces labelled j; a face is a suspect when, of the classes whose
probability reaches their threshold, the most probable is not its label. Ranked by how much more probable that
class is than the given label. On the split a model was trained on it has seen (and fitted) these labels, so
its suspects mean most on held-out faces.
"""
from __future__ import annotations

import argparse
import io
import json
import sys

import numpy as np

from .data import FaceSet, available_splits, load_split
from .images import DataError
from .sources import CLASSES, source_kind
from .splits import HOLDOUT, SPLIT_NAMES, holdout_mask
from .text import csv_writer

THRESHOLD = 24  # bits of 255 (see the module doc for the measurements behind it)
HASH_FREQS = 16  # the hash keeps the HASH_FREQS x HASH_FREQS lowest DCT frequencies (less DC): 255 bits
FLAT_STD = 2.0  # grey levels: a face with less pixel spread than this is flat (blank)
FLAT_LEVELS = 8.0  # two flat faces pair when their grey levels are this close (a brightness shift)
PAIR_FIELDS = ("distance", "split_a", "index_a", "id_a", "label_a", "split_b", "index_b", "id_b", "label_b",
               "same_label", "flat")
SUSPECT_FIELDS = ("rank", "split", "index", "id", "label", "suggested", "p_label", "p_suggested", "margin")


# ----------------------------------------------------------------------------------------------
# The perceptual hash and the pair search


def spread(x) -> np.ndarray:
    """Pixel standard deviation of each face (N, ...) -> (N,) float32, in grey levels."""
    x = np.asarray(x)
    return x.reshape(len(x), -1).std(1, dtype=np.float32)


def _dct_basis(n: int, k: int) -> np.ndarray:  # (k, n): the k lowest DCT-II frequencies over n pixels
    return np.cos(np.pi * (np.arange(n)[None] + 0.5) * np.arange(k)[:, None] / n).astype(np.float32)


def phash(x) -> np.ndarray:
    """uint8 faces (N, H, W) -> hashes (N, 4) uint64: 255 bits (the last bit of the last word is always 0).
    The face is not standardised first: that would change no bit (the DC term is dropped, and each bit compares
    a coefficient with the face's median, which a positive scale keeps)."""
    z = np.asarray(x, np.float32)
    n, h, w = z.shape
    bh, bw = _dct_basis(h, HASH_FREQS), _dct_basis(w, HASH_FREQS)
    c = (z.reshape(n * h, w) @ bw.T).reshape(n, h, HASH_FREQS)  # two GEMMs: rows, then columns
    c = (c.transpose(0, 2, 1).reshape(n * HASH_FREQS, h) @ bh.T).reshape(n, -1)[:, 1:]  # (N, 255), DC dropped
    bits = c > np.median(c, 1, keepdims=True)
    bits = np.concatenate([bits, np.zeros((n, 1), bool)], 1)  # 256 bits
    return np.packbits(bits, 1, bitorder="little").view(np.uint64)  # (N, 4)


def hamming(a, b) -> np.ndarray:
    """Bits that differ between hashes a and b (..., 4) -> (...,) int."""
    return np.bitwise_count(np.asarray(a) ^ np.asarray(b)).sum(-1).astype(np.int64)


def near_pairs(h, threshold: int = THRESHOLD, other=None, block: int = 256):
    """(i, j, d) int64 arrays: every pair of hashes within `threshold` bits, among h (i < j) or between h and
    `other` (i in h, j in other); sorted by distance, then i, j. Exact and all pairs: a block of rows against
    all columns, bit-packed; the two words of the lowest vertical frequencies first (their distance is a lower
    bound of the whole), the other two only for the pairs that pass."""
    hT = np.ascontiguousarray(np.asarray(h, np.uint64).T)  # (4, N): one contiguous row per word
    oT = hT if other is None else np.ascontiguousarray(np.asarray(other, np.uint64).T)
    found = []
    for s in range(0, hT.shape[1], block):
        c0 = s if other is None else 0
        a, b = hT[:, s : s + block, None], oT[:, None, c0:]
        d = np.bitwise_count(a[0] ^ b[0])
        d += np.bitwise_count(a[1] ^ b[1])  # (B, M) uint8, at most 128
        r, c = np.nonzero(d <= threshold)
        if other is None:
            keep = c > r  # each pair once, no face with itself
            r, c = r[keep], c[keep]
        i, j = r + s, c + c0
        full = d[r, c] + np.bitwise_count(hT[2, i] ^ oT[2, j]) + np.bitwise_count(hT[3, i] ^ oT[3, j])
        keep = full <= threshold
        found.append(np.stack([i[keep], j[keep], full[keep]], 1).astype(np.int64))
    out = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    out = out[np.lexsort((out[:, 1], out[:, 0], out[:, 2]))]
    return out[:, 0], out[:, 1], out[:, 2]


def _flat_pairs(levels_a, levels_b=None):
    """(i, j) of flat faces whose grey levels are within FLAT_LEVELS (i < j within one set)."""
    la = np.asarray(levels_a, np.float64)
    lb = la if levels_b is None else np.asarray(levels_b, np.float64)
    close = np.abs(la[:, None] - lb[None]) <= FLAT_LEVELS
    if levels_b is None:
        close = np.triu(close, 1)
    return np.nonzero(close)


def match(x, other=None, threshold: int = THRESHOLD):
    """Near-duplicate pairs of faces (uint8 (N, 48, 48)) among x, or between x and `other`:
    (i, j, d, flat) arrays, d the hash distance (0 for two flat faces), flat True for a pair of flat faces."""
    xs = [np.asarray(x)] + ([] if other is None else [np.asarray(other)])
    flat, level, rows = [], [], []
    for faces in xs:
        flat.append(spread(faces) < FLAT_STD)
        level.append(faces.reshape(len(faces), -1).mean(1))
        rows.append(np.flatnonzero(~flat[-1]))
    hashes = [phash(f[r]) for f, r in zip(xs, rows)]
    i, j, d = near_pairs(hashes[0], threshold, None if other is None else hashes[1])
    i, j = rows[0][i], rows[-1][j]
    fa = np.flatnonzero(flat[0])
    fb = fa if other is None else np.flatnonzero(flat[1])
    fi, fj = _flat_pairs(level[0][fa], None if other is None else level[1][fb])
    cat = lambda u, v: np.concatenate([np.asarray(u, np.int64), np.asarray(v, np.int64)])
    return (cat(i, fa[fi]), cat(j, fb[fj]), cat(d, np.zeros(len(fi))),
            np.concatenate([np.zeros(len(i), bool), np.ones(len(fi), bool)]))


# ----------------------------------------------------------------------------------------------
# Duplicates of a data source


def load_sets(data, splits=None) -> dict[str, FaceSet]:
    """The splits of a source (default: each one it holds once, data.available_splits) as FaceSets."""
    source_kind(data)  # a missing or unreadable source says so (available_splits would only find none)
    names = list(splits) if splits else available_splits(data)
    if HOLDOUT in names and "train" in names:
        raise DataError("holdout is a slice of train: audit one of them, not both")
    if not names:
        raise DataError(f"{data}: no faces found in any split (train, val, test)")
    return {s: load_split(data, s) for s in names}


def find_duplicates(sets: dict[str, FaceSet], threshold: int = THRESHOLD) -> list[dict]:
    """Every near-duplicate pair over the given splits (within each and across them), one dict per pair
    (PAIR_FIELDS: both faces' split, index in it, name and label; the distance; whether labels agree), closest
    first. A pair across splits names the earlier split (in `sets` order) as a."""
    names = list(sets)
    x = np.concatenate([sets[s].x for s in names])
    split_of = np.concatenate([np.full(len(sets[s]), k) for k, s in enumerate(names)])
    start = np.cumsum([0] + [len(sets[s]) for s in names])
    i, j, d, flat = match(x, threshold=threshold)
    order = np.lexsort((j, i, split_of[j], split_of[i], d))  # closest first, then by split and position
    out = []
    for i_, j_, d_, f_ in zip(i[order], j[order], d[order], flat[order]):
        a, b = sorted((int(i_), int(j_)), key=lambda g: (split_of[g], g))
        sa, sb = names[split_of[a]], names[split_of[b]]
        ia, ib = a - start[split_of[a]], b - start[split_of[b]]
        la, lb = int(sets[sa].y[ia]), int(sets[sb].y[ib])
        out.append(dict(distance=int(d_), split_a=sa, index_a=int(ia), id_a=str(sets[sa].ids[ia]), label_a=CLASSES[la],
                        split_b=sb, index_b=int(ib), id_b=str(sets[sb].ids[ib]), label_b=CLASSES[lb],
                        same_label=la == lb, flat=bool(f_)))
    return out


def summarize(pairs: list[dict], sets: dict[str, FaceSet]) -> list[dict]:
    """Per kind of pair (each split with itself, each two splits): pairs, pairs with conflicting labels, and the
    faces of each side that have a copy."""
    names = list(sets)
    rows = []
    for k, sa in enumerate(names):
        for sb in names[k:]:
            ps = [p for p in pairs if (p["split_a"], p["split_b"]) == (sa, sb)]
            side_a, side_b = {p["index_a"] for p in ps}, {p["index_b"] for p in ps}
            if sa == sb:  # within one split a face with a copy may be on either side
                side_a = side_b = side_a | side_b
            rows.append(dict(kind=f"{sa}/{sb}", split_a=sa, split_b=sb, pairs=len(ps),
                             conflicting=sum(not p["same_label"] for p in ps), flat=sum(p["flat"] for p in ps),
                             faces_a=len(side_a), faces_b=len(side_b)))
    return rows


def dedup_mask(data, split: str = "public_test", against: str = "train", threshold: int = THRESHOLD) -> np.ndarray:
    """(N,) bool over the faces of `split` (load_split order): True for the faces with no near copy in
    `against`; evaluating on faces[mask] reports accuracy without the copies a model may have trained on. For
    the holdout split, `against` Training means the rest of Training (holdout is a slice of it)."""
    faces, ref = load_split(data, split), load_split(data, against)
    if split == HOLDOUT and against == "train":
        rest = ~holdout_mask(ref.ids, ref.y)
        ref = ref.subset(rest)
    i, _, _, _ = match(faces.x, ref.x, threshold)
    keep = np.ones(len(faces), bool)
    keep[i] = False
    return keep


# ----------------------------------------------------------------------------------------------
# Label-noise suspects


def class_thresholds(probs, labels, n_classes: int = len(CLASSES)) -> np.ndarray:
    """(C,) per class j: the mean probability of j over the faces labelled j (inf for a class with none)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    return np.array([probs[labels == j, j].mean() if (labels == j).any() else np.inf for j in range(n_classes)])


def suspects(probs, labels, ids=None, split: str = "", classes=CLASSES) -> list[dict]:
    """Faces whose label the model contradicts with confidence (confident learning, see the module doc), most
    contradicted first: dicts SUSPECT_FIELDS."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    t = class_thresholds(probs, labels, len(classes))
    above = np.where(probs >= t[None], probs, -np.inf)  # (N, C): only the classes past their threshold
    best = above.argmax(1)
    n = np.arange(len(labels))
    idx = np.flatnonzero(np.isfinite(above[n, best]) & (best != labels))
    margin = probs[idx, best[idx]] - probs[idx, labels[idx]]
    idx, margin = idx[np.argsort(-margin, kind="stable")], np.sort(margin)[::-1]
    return [dict(rank=r + 1, split=split, index=int(k), id=str(ids[k]) if ids is not None else str(k),
                 label=classes[labels[k]], suggested=classes[best[k]], p_label=float(probs[k, labels[k]]),
                 p_suggested=float(probs[k, best[k]]), margin=float(m))
            for r, (k, m) in enumerate(zip(idx, margin))]


def model_suspects(checkpoint, data, split: str = "test") -> tuple[list[dict], np.ndarray]:
    """(suspects, class thresholds) of a checkpoint over one split, from its cached predictions."""
    from .checkpoint import load_model
    from .interpret import predictions

    model, prep = load_model(checkpoint)
    faces = load_split(data, split)
    preds = predictions(model, prep, faces, checkpoint=checkpoint)
    return suspects(preds.probs, faces.y, faces.ids, split), class_thresholds(preds.probs, faces.y)


def to_csv(rows: list[dict], fields) -> str:
    """Rows as CSV text, every text cell safe to open in a spreadsheet (fer_core.text.csv_writer)."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(fields)
    for r in rows:
        w.writerow([r[f] for f in fields])
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Command line


def audit(data, checkpoint=None, split: str = "test", threshold: int = THRESHOLD, splits=None) -> dict:
    """The whole audit as one JSON-able object: duplicates (pairs), summary, and suspects with a checkpoint."""
    sets = load_sets(data, splits)
    pairs = find_duplicates(sets, threshold)
    out = {"data": str(data), "threshold": threshold, "hash_bits": HASH_FREQS**2 - 1,
           "splits": {s: {"faces": len(f), "usage": f.resolved.usage if f.resolved else ""} for s, f in sets.items()},
           "summary": summarize(pairs, sets), "duplicates": pairs, "suspects": [], "suspect_thresholds": None}
    if checkpoint:
        found, t = model_suspects(checkpoint, data, split)
        out.update(checkpoint=str(checkpoint), suspect_split=split, suspects=found,
                   suspect_thresholds={c: float(v) for c, v in zip(CLASSES, t)})
    return out


def format_report(r: dict, top: int = 20) -> str:
    sizes = ", ".join(f"{s} {v['faces']:,}" + (f" ({v['usage']})" if v["usage"] else "")
                      for s, v in r["splits"].items())
    lines = [f"{r['data']}: {sizes} faces; near duplicates within {r['threshold']} of {r['hash_bits']} hash bits", ""]
    lines += [f"{'pairs':<22}{'pairs':>8}{'conflicting':>13}{'faces a':>9}{'faces b':>9}"]
    lines += [f"{s['kind']:<22}{s['pairs']:>8,}{s['conflicting']:>13,}{s['faces_a']:>9,}{s['faces_b']:>9,}"
              for s in r["summary"]]
    if r["duplicates"]:
        lines += ["", f"closest {min(top, len(r['duplicates']))} pairs (bits, a, b):"]
        lines += [f"{p['distance']:>4}  {p['id_a']} [{p['label_a']}]  {p['id_b']} [{p['label_b']}]"
                  + ("" if p["same_label"] else "  labels differ") for p in r["duplicates"][:top]]
    if r.get("checkpoint"):
        lines += ["", f"label-noise suspects of {r['checkpoint']} on {r['suspect_split']}: {len(r['suspects']):,}"]
        lines += [f"{s['rank']:>4}  {s['id']}  labelled {s['label']} ({s['p_label']:.2f}), model says "
                  f"{s['suggested']} ({s['p_suggested']:.2f})" for s in r["suspects"][:top]]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_core.audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 data (CSV, image folder, .zip, .npz)")
    p.add_argument("--splits", nargs="+", choices=SPLIT_NAMES, help="splits to search (default: all the source has)")
    p.add_argument("--threshold", type=int, default=THRESHOLD, help=f"hash bits that may differ (default {THRESHOLD})")
    p.add_argument("--checkpoint", help="also list label-noise suspects by this model")
    p.add_argument("--split", default="test", choices=SPLIT_NAMES, help="split of the suspects (default test)")
    p.add_argument("--top", type=int, default=20, help="pairs and suspects listed in the text report")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if not 0 <= a.threshold <= 128:
        p.error("--threshold must be between 0 and 128 bits")
    from .checkpoint import CheckpointError

    try:
        r = audit(a.data, a.checkpoint, a.split, a.threshold, a.splits)
    except (DataError, CheckpointError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r) if a.json else format_report(r, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
