"""Near-duplicate search speed (fer_core.audit): hashing every face, then all pairs within the threshold.

The baseline, measured in the same run on the same hashes, is the plain bit-packed all-pairs comparison (all four
64-bit words of every pair, no lower bound first); fer_core.audit.near_pairs compares two words of every pair
and the other two only for the pairs still within reach. Both find the same pairs (checked here).

  python benchmarks/audit_speed.py [--data ../shared/data/fer2013.zip] [--threshold 24]

Default data: the full FER2013 zip when it is there (32,298 faces, 521 million pairs), else the bundled sample.
Prints CPU seconds beside wall seconds: on a shared machine CPU seconds / threads tells the idle-core time.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core import audit  # noqa: E402

FULL = ROOT.parent / "shared" / "data" / "fer2013.zip"


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def plain_pairs(h, threshold: int, block: int = 256):
    """The baseline: every word of every pair, then the pairs within the threshold."""
    hT = np.ascontiguousarray(h.T)
    found = []
    for s in range(0, hT.shape[1], block):
        a, b = hT[:, s : s + block, None], hT[:, None, s:]
        d = sum(np.bitwise_count(a[w] ^ b[w]) for w in range(4))
        r, c = np.nonzero(d <= threshold)
        keep = c > r
        found += list(zip((r[keep] + s).tolist(), (c[keep] + s).tolist()))
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(FULL if FULL.exists() else ROOT / "samples" / "fer2013_sample.npz"))
    ap.add_argument("--threshold", type=int, default=audit.THRESHOLD)
    a = ap.parse_args(argv)
    sets = audit.load_sets(a.data)
    x = np.concatenate([f.x for f in sets.values()])
    x = x[audit.spread(x) >= audit.FLAT_STD]
    t_hash, c_hash, h = timed(lambda: audit.phash(x))
    t_base, c_base, base = timed(lambda: plain_pairs(h, a.threshold))
    t_pairs, c_pairs, (i, j, _) = timed(lambda: audit.near_pairs(h, a.threshold))
    assert sorted(base) == sorted(zip(i.tolist(), j.tolist())), "near_pairs and the baseline disagree"
    out = {"data": a.data, "faces": len(x), "pairs_compared": len(x) * (len(x) - 1) // 2, "found": len(base),
           "hash_s": round(t_hash, 3), "hash_cpu_s": round(c_hash, 3), "baseline_s": round(t_base, 3),
           "baseline_cpu_s": round(c_base, 3), "near_pairs_s": round(t_pairs, 3), "near_pairs_cpu_s": round(c_pairs, 3),
           "speedup_vs_baseline": round(t_base / max(t_pairs, 1e-9), 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
