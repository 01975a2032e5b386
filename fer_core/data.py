"""FER2013 data in every form users have, decoded once into a uint8 cache.

Sources, detected from the path (fer_core.sources; the CSVs read by fer_core.csvfaces):
  * Kaggle CSVs: fer2013.csv (emotion,pixels,Usage; .gz too), icml_face_data.csv (" pixels"), train.csv
    (emotion,pixels: all rows are the train split);
  * an image folder <root>/<split>/<class>/*.jpg|png, or a .zip of it, read in place;
  * this project's own .npz (keys <split>_x uint8 (N,48,48), <split>_y), e.g. the bundled sample.
Splits: train, public_test, private_test (FER2013's Training, PublicTest, PrivateTest), the source's own val
and test, and holdout (a fixed 10% of Training); fer_core.splits says which faces each name reads in each kind
of source.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import DataError
from .csvfaces import csv_rows, decode_csv, parse_labels, read_csv
from .sources import (CLASSES, decode_images, decode_npz, folder_entries, open_source, open_zip, read_image_file,
                      select_split, source_kind, warn_skipped, zip_entries)
from .splits import (HOLDOUT, Resolved, check_name, holdout_mask, resolve_csv, resolve_holdout, resolve_stored,
                     split_of_dir, warn_fallback)

CACHE_VERSION = 2  # 2: what a split skipped is cached with it
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class FaceSet:
    x: np.ndarray  # (N, 48, 48) uint8
    y: np.ndarray  # (N,) int64 in FER2013 label order
    ids: np.ndarray  # (N,) str: file name inside the source, or "line N" for CSVs
    source: str
    split: str  # the name asked for
    resolved: Resolved | None = None  # what was read for it, and FER2013's name for it (fer_core.splits)
    # what the source holds but this split left out (SkippedDataWarning): {"unknown_class_folders": {name: n},
    # "rows_without_usage": n, "not_regular_files": n}; {} when nothing
    skipped: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(CLASSES))
        return {c: int(n) for c, n in zip(CLASSES, counts)}

    def subset(self, idx) -> "FaceSet":
        return FaceSet(self.x[idx], self.y[idx], self.ids[idx], self.source, self.split, self.resolved, self.skipped)


# ----------------------------------------------------------------------------------------------
# Cache


def cache_dir() -> Path:
    d = os.environ.get("FER_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fer-dashboard"


def read_face_cache(cfile, faces, key: str):
    """The array `key` of a per-face cache file (predictions, embeddings) if it was written for these faces (same
    labels in the same order), else None: a missing or damaged file is recomputed by the caller."""
    try:
        with np.load(cfile, allow_pickle=False) as z:
            arr, y = z[key], z["y"]
        if len(y) == len(faces) and np.array_equal(y, faces.y):
            return arr
    except Exception:
        pass
    return None


def write_face_cache(cfile, faces, key: str, arr) -> None:
    """Store `arr` (one row per face of `faces`) for read_face_cache; a read-only cache is skipped (still
    correct, just slower next time)."""
    buf = io.BytesIO()
    np.savez(buf, **{key: arr, "y": faces.y})
    try:
        atomic_write_bytes(cfile, buf.getvalue())
    except OSError:
        pass


def data_roots() -> list[Path]:
    """Folders the dashboard may read data sources from: the bundled samples, the project's data folders,
    `shared` and `data` folders beside the project (../shared/data/fer2013.zip), and every folder in
    $FER_DATA_ROOT (os.pathsep-separated)."""
    roots = [PROJECT_ROOT / "samples", PROJECT_ROOT / "data", PROJECT_ROOT / "data_local",
             PROJECT_ROOT.parent / "shared", PROJECT_ROOT.parent / "data"]
    roots += [Path(os.path.expanduser(r)) for r in os.environ.get("FER_DATA_ROOT", "").split(os.pathsep) if r.strip()]
    return [Path(os.path.realpath(r)) for r in roots]


def check_data_source(path, roots=None) -> str:
    """The real path of a data source a server user typed, if it lies inside a data root and is a regular file
    or a folder of a known kind within its size limit (source_kind); DataError otherwise. Outside the roots
    nothing is looked at, so the message tells nothing about what exists there. The one guard of every path
    typed in the dashboard."""
    roots = data_roots() if roots is None else [Path(os.path.realpath(r)) for r in roots]
    real = Path(os.path.realpath(os.path.expanduser(str(path))))
    if not any(real == r or real.is_relative_to(r) for r in roots):
        raise DataError(f"{path}: outside the allowed data folders (samples/, data/, ../shared, ../data and "
                        "$FER_DATA_ROOT; the server's admin can add one with FER_DATA_ROOT)")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise DataError(f"{path}: no such file or directory") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DataError(f"{path}: not a regular file or folder")
    try:
        source_kind(real)  # format and size, from stat (a 4-byte look at a file of unknown name)
    except DataError as e:
        raise DataError(f"{path}: {str(e).split(': ', 1)[-1]}") from None
    return str(real)


def file_key(path, deep: bool = True) -> str:
    """The one identity of a file or folder for every cache (decoded data, predictions, loaded models):
    absolute path + size + mtime, and for a folder with `deep` the newest mtime and file count under it, so a
    rewritten checkpoint or a changed data set is a new key. Raises OSError when the path is missing."""
    p = Path(path).resolve()
    st = p.stat()
    ident = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    if deep and p.is_dir():
        newest, count = 0, 0
        for root, dirs, files in os.walk(p):
            newest = max(newest, os.stat(root).st_mtime_ns)
            count += len(files)
        ident += f"|{newest}|{count}"
    return hashlib.sha1(ident.encode()).hexdigest()[:16]


def atomic_write_bytes(path, data: bytes, fsync: bool = True) -> None:
    """Write via a temp file + rename, so a reader or a killed writer never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# Reading a source: the reader for its kind (fer_core.sources, fer_core.csvfaces)


def decode(path: Path, split: str, name: str | None = None):
    """Decode stored split `split`; `name`: the name it was asked for, for messages. -> (x, y, ids, skipped):
    skipped counts what the split left out (see SkippedDataWarning), {} when nothing."""
    kind = source_kind(path)
    skipped: dict = {}
    if kind == "csv":
        return (*decode_csv(path, split, name, skipped), skipped)
    if kind == "npz":
        return (*decode_npz(path, split), skipped)
    if kind == "folder":
        irregular: list = []
        items = select_split(folder_entries(path, irregular), split, str(path), skipped, irregular)
        return (*decode_images(items, read_image_file(path), str(path)), skipped)
    with open_zip(path) as zf:
        items = select_split(zip_entries(zf), split, str(path), skipped)
        try:
            return (*decode_images(items, zf.read, str(path)), skipped)
        except zipfile.BadZipFile as e:
            raise DataError(f"{path}: corrupt zip member ({e})") from None


def stored_splits(p: Path, kind: str) -> set[str]:
    """The stored splits (train/val/test) a folder, zip or .npz holds (a listing, no decoding)."""
    if kind == "npz":
        try:
            with open_source(p, "npz") as f, np.load(f, allow_pickle=False) as z:
                return {k[:-2] for k in z.files if k.endswith("_x")}
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{p}: not a readable .npz data file ({e})") from None
    if kind == "folder":
        return {split_of_dir(d) for d, _, _ in folder_entries(p)} - {None}
    with open_zip(p) as zf:
        return {split_of_dir(d) for d, _, _ in zip_entries(zf)} - {None}


def read_labels(p: Path, kind: str, stored: str, name: str | None = None) -> np.ndarray:
    """The labels of stored split `stored`, without decoding images (a listing or the CSV's label column)."""
    if kind == "csv":
        df = read_csv(p)
        return parse_labels(df, csv_rows(df, stored, p, name), p)
    if kind == "npz":
        return decode_npz(p, stored)[1]
    if kind == "folder":
        return np.array([k for k, _ in select_split(folder_entries(p), stored, str(p))])
    with open_zip(p) as zf:
        return np.array([k for k, _ in select_split(zip_entries(zf), stored, str(p))])


def resolve_split(path, split: str) -> Resolved:
    """What `split` reads in this source and FER2013's name for it (see fer_core.splits)."""
    check_name(split, path)
    p = Path(path)
    kind = source_kind(p)
    if split == HOLDOUT:
        resolve_split(p, "train")  # a source without Training has no holdout either
        return resolve_holdout()
    return resolve_csv(split) if kind == "csv" else resolve_stored(split, stored_splits(p, kind), p)


def _cache_file(p: Path, split: str) -> Path:
    return cache_dir() / f"{p.name}-{file_key(p)}-{split}-v{CACHE_VERSION}.npz"


def load_split(path, split: str = "train", cache: bool = True) -> FaceSet:
    """Load one split of a FER2013 source as uint8 faces; decoded once, then read from the cache. A split read
    from another one (val from test/) warns with SplitFallbackWarning; FaceSet.resolved records it."""
    check_name(split, path)
    p = Path(path)
    source_kind(p)  # existence / format check with a clear message
    if split == HOLDOUT:  # a slice of the cached Training faces: nothing of its own to cache
        tr = load_split(p, "train", cache)
        fs = tr.subset(holdout_mask(tr.ids, tr.y))
        fs.split, fs.resolved = HOLDOUT, resolve_holdout()
        return fs
    cfile = _cache_file(p, split)
    if cache and cfile.exists():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                r = Resolved(split, *(str(z[k]) for k in ("stored", "usage", "note"))) if "stored" in z.files else None
                x, y, ids = z["x"], z["y"], z["ids"]
                skipped = json.loads(str(z["skipped"])) if "skipped" in z.files else {}
            fs = FaceSet(x, y, ids, str(path), split, r or resolve_split(p, split), skipped)
            warn_fallback(fs.resolved)
            warn_skipped(path, split, skipped)
            return fs
        except DataError:
            raise
        except Exception:
            pass  # a damaged cache is rebuilt below
    r = resolve_split(p, split)
    x, y, ids, skipped = decode(p, r.stored, split)
    if cache:
        buf = io.BytesIO()
        np.savez(buf, x=x, y=y, ids=ids.astype(str), stored=r.stored, usage=r.usage, note=r.note,
                 skipped=json.dumps(skipped))
        try:
            atomic_write_bytes(cfile, buf.getvalue())
        except OSError:
            pass  # read-only cache dir: still usable, just slower next time
    warn_fallback(r)
    warn_skipped(path, split, skipped)
    return FaceSet(x, y, ids.astype(str), str(path), split, r, skipped)


def class_counts(path, split: str = "train") -> dict[str, int]:
    """Per-class face counts without decoding images (cache, file listing or the CSV label column)."""
    check_name(split, path)
    p = Path(path)
    kind = source_kind(p)
    if split == HOLDOUT:  # chosen by file name, so the names are needed: read through the cache
        return load_split(p, HOLDOUT).class_counts()
    cfile = _cache_file(p, split)
    if cfile.exists():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                y = z["y"]
            return {c: int(n) for c, n in zip(CLASSES, np.bincount(y, minlength=len(CLASSES)))}
        except Exception:
            pass
    y = read_labels(p, kind, resolve_split(p, split).stored, split)
    return {c: int(n) for c, n in zip(CLASSES, np.bincount(y, minlength=len(CLASSES)))}


def available_splits(path) -> list[str]:
    """The source's own splits, each once (train, val, test: no val that would only repeat test/), cheaply
    (one listing, or the CSV's label column); `resolve_split` names the FER2013 split each holds."""
    p = Path(path)
    try:
        kind = source_kind(p)
        present = {"train", "val", "test"} if kind == "csv" else stored_splits(p, kind)  # CSV: by its Usage rows
    except DataError:
        return []
    out = []
    for s in ("train", "val", "test"):
        try:
            if s in present and sum(class_counts(p, s).values()) > 0:
                out.append(s)
        except DataError:
            pass
    return out
