"""Add a `train` split to the bundled sample: a seeded, stratified subset of FER2013 Training.

  python scripts/build_sample.py [--zip ../shared/data/fer2013.zip] [--n 1200] [--seed 0]

Reads the image-folder zip in place (train/<class>/*.jpg), picks `n` faces with each class in its Training
proportion (at least one per class), and rewrites samples/fer2013_sample.npz keeping its test faces
byte for byte. The quick check of the Train page trains on this split, so a fresh checkout can train.
"""
import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.data import atomic_write_bytes  # noqa: E402
from fer_core.images import open_image, to_face48  # noqa: E402
from fer_core.sources import CLASSES  # noqa: E402
from fer_core.images import DataError  # noqa: E402
from fer_core.paths import check_output_file  # noqa: E402

SAMPLE = ROOT / "samples" / "fer2013_sample.npz"


def stratified_pick(names_by_class: dict, n: int, seed: int) -> list[tuple[int, str]]:
    """(label, name) pairs: each class gets round(n * its share) faces (at least 1), chosen by a seeded rng."""
    total = sum(len(v) for v in names_by_class.values())
    rng = np.random.default_rng(seed)
    out = []
    for k, c in enumerate(CLASSES):
        names = sorted(names_by_class.get(c, []))  # sorted first: the pick does not depend on zip order
        take = min(len(names), max(1, round(n * len(names) / total)))
        out += [(k, names[i]) for i in sorted(rng.choice(len(names), take, replace=False))]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", default=str(ROOT.parent / "shared" / "data" / "fer2013.zip"))
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(SAMPLE))
    a = ap.parse_args()
    try:  # the FER2013 zip is never the file written over
        check_output_file(a.out, [a.zip], "--out")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with np.load(SAMPLE, allow_pickle=False) as z:  # keep what the sample already holds (its test faces)
        keep = {k: z[k] for k in z.files if not k.startswith("train_")}
    by_class: dict[str, list[str]] = {}
    with zipfile.ZipFile(a.zip) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) >= 3 and parts[-3] == "train" and parts[-2] in CLASSES and name.lower().endswith(".jpg"):
                by_class.setdefault(parts[-2], []).append(name)
        picked = stratified_pick(by_class, a.n, a.seed)
        x = np.stack([to_face48(open_image(zf.read(n), name=n)) for _, n in picked])  # (n, 48, 48) uint8
    y = np.array([k for k, _ in picked], dtype=np.int64)
    ids = np.array([n for _, n in picked])  # zip member names, as the test faces have
    buf = io.BytesIO()
    np.savez_compressed(buf, **keep, train_x=x, train_y=y, train_ids=ids)
    atomic_write_bytes(a.out, buf.getvalue())
    counts = dict(zip(CLASSES, np.bincount(y, minlength=len(CLASSES)).tolist()))
    print(f"{a.out}: train {len(y)} faces {counts}; kept {sorted(keep)}; {len(buf.getvalue()) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
