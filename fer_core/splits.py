"""Split names that mean one thing.

FER2013 has three splits, named by its CSV's Usage column: Training, PublicTest and PrivateTest. Their names
here are `train`, `public_test` and `private_test`, and they mean the same faces in every kind of source.

The short names `val` and `test` are kept as aliases (the commands, recipes and links that use them keep
working), but `test` names the source's own test split, which is not the same faces everywhere:
  * in the CSV, `val` is PublicTest and `test` is PrivateTest;
  * Kaggle's image-folder download (the zip every command here uses) has `train/` and `test/` only, and its
    `test/` holds PublicTest. There `val` is read from `test/` (a fallback: it warns, and the trainer and
    `evaluate --json` record it), and there is no PrivateTest;
  * an image folder, zip or .npz with `val` and `test` is read as the CSV: val PublicTest, test PrivateTest.
`resolve()` turns a requested name into what is read and what FER2013 calls it; the run files and evaluation
results carry that record.

`holdout` is a fixed slice of Training for honest selection: 10% of each class, the faces whose hashed file name
(or CSV line) ranks lowest, so the same faces in every run, seed and machine, whatever order the source lists them
in. A run validated on `holdout` trains on the other 90%; PublicTest stays untouched until the final report.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .images import DataError

SPLITS = ("train", "public_test", "private_test")  # FER2013's Training, PublicTest, PrivateTest
ALIASES = ("val", "test")  # the source's own validation and test splits (see above)
HOLDOUT = "holdout"  # a fixed, stratified slice of Training (see above)
HOLDOUT_FRACTION = 0.1
HOLDOUT_SALT = "fer-dashboard holdout v1"  # changing it would change the slice: a new name, not a new salt
SPLIT_NAMES = SPLITS + ALIASES + (HOLDOUT,)  # every name load_split accepts
USAGE = {"train": "Training", "public_test": "PublicTest", "private_test": "PrivateTest"}
# folder (and .npz key) names that mean each stored split
DIR_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "publictest"),
    "test": ("test", "testing", "privatetest"),
}


class SplitFallbackWarning(UserWarning):
    """A requested split was read from another one (e.g. `val` from `test/`)."""


@dataclass(frozen=True)
class Resolved:
    requested: str  # the name asked for
    stored: str  # what is read: a folder or .npz split (train/val/test), or the CSV's Usage value
    usage: str  # FER2013's name for those faces (Training, PublicTest, PrivateTest), "" when not known
    note: str = ""  # why `stored` differs from `requested`, when it is a fallback

    def as_dict(self) -> dict:
        return asdict(self)


def split_of_dir(name: str) -> str | None:
    """A folder (or .npz key) name -> the stored split it holds (train/val/test), or None."""
    n = name.strip().lower()
    for split, aliases in DIR_ALIASES.items():
        if n in aliases:
            return split
    return None


def check_name(split: str, source) -> None:
    if split not in SPLIT_NAMES:
        raise DataError(f"{source}: unknown split '{split}' (use one of {', '.join(SPLIT_NAMES)})")


def resolve_csv(split: str) -> Resolved:
    """In the CSV the Usage column names every split; `test` is PrivateTest."""
    usage = {"train": "Training", "val": "PublicTest", "public_test": "PublicTest", "test": "PrivateTest",
             "private_test": "PrivateTest"}[split]
    return Resolved(split, usage, usage)


def resolve_stored(split: str, present: set[str], source) -> Resolved:
    """For a folder, zip or .npz holding the stored splits `present` (a subset of train/val/test)."""
    layout_3 = "val" in present  # train/val/test: read as the CSV (val PublicTest, test PrivateTest)
    if split == "train":
        return Resolved(split, "train", "Training")
    if split in ("val", "public_test"):
        if layout_3 or "test" not in present:
            return Resolved(split, "val", "PublicTest" if layout_3 else "")
        note = ("" if split == "public_test" else
                f"{source} has no val split: val is read from its test split, PublicTest (as in Kaggle's image-folder "
                "download); the same faces as split 'test' here. Name it public_test to say so")
        return Resolved(split, "test", "PublicTest", note)
    if split == "test":
        return Resolved(split, "test", "PrivateTest" if layout_3 else "PublicTest")
    if layout_3 and "test" in present:  # private_test
        return Resolved(split, "test", "PrivateTest")
    raise DataError(f"{source}: no PrivateTest split (a folder, zip or .npz holds PrivateTest only as test/ beside "
                    f"a val/ split; Kaggle's image-folder download has Training and PublicTest only)")


def holdout_mask(ids, y, fraction: float = HOLDOUT_FRACTION) -> np.ndarray:
    """(N,) bool: the holdout faces among Training's `ids` (file names or "line N") with labels `y`.

    Per class, the round(fraction * n) faces whose salted SHA-1 of the file's base name ranks lowest: stratified,
    independent of the source's order and of any seed, and the same for a zip and its extracted folder."""
    y = np.asarray(y)
    keys = np.array([hashlib.sha1(f"{HOLDOUT_SALT}:{str(i).replace(chr(92), '/').rsplit('/', 1)[-1]}".encode())
                     .hexdigest() for i in ids])
    mask = np.zeros(len(y), dtype=bool)
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        take = int(round(fraction * len(idx)))
        mask[idx[np.argsort(keys[idx], kind="stable")[:take]]] = True
    return mask


def resolve_holdout() -> Resolved:
    return Resolved(HOLDOUT, "train", "Training", "")


def warn_fallback(r: Resolved) -> None:
    if r.note:
        warnings.warn(r.note, SplitFallbackWarning, stacklevel=3)


def label(r: Resolved) -> str:
    """'test (PublicTest)': the name with the FER2013 split it holds, for menus and captions."""
    plain = not r.usage or r.requested == "train" or r.usage.lower() == r.requested.replace("_", "")
    return r.requested if plain else f"{r.requested} ({r.usage})"
