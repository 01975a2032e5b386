"""The kinds of FER2013 source and how each is read: Kaggle CSVs, an image folder <split>/<class>/*, a .zip of
one (read in place), this project's .npz. fer_core.data caches what these return; fer_core.splits names the
splits. Limits guard against a wrong folder or a zip bomb."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .images import SIZE, DataError, open_image, to_face48
from .splits import split_of_dir

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CACHE_VERSION = 1
MAX_ZIP_MEMBER_BYTES = 20_000_000  # one image inside a .zip may expand to this much, not more
MAX_WALK_ENTRIES = 200_000  # files and folders looked at under a folder source (FER2013 has ~36k)
PROJECT_ROOT = Path(__file__).resolve().parents[1]

_SYNONYMS = {
    "angry": 0, "anger": 0, "mad": 0,
    "disgust": 1, "disgusted": 1, "disgusting": 1,
    "fear": 2, "fearful": 2, "scared": 2, "afraid": 2,
    "happy": 3, "happiness": 3, "joy": 3,
    "sad": 4, "sadness": 4,
    "surprise": 5, "surprised": 5,
    "neutral": 6, "calm": 6,
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".gif")


def class_index(name: str) -> int | None:
    return _SYNONYMS.get(name.strip().lower())


def source_kind(path) -> str:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    if p.is_dir():
        return "folder"
    name = p.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "csv"
    raise DataError(f"{path}: unsupported data format (expected a FER2013 .csv/.csv.gz, an image folder, a .zip or a .npz)")


def _folder_entries(path: Path) -> list[tuple[str, str, str]]:
    """(split_dir_name, class_dir_name, file) for every image under <split>/<class>/ in a folder."""
    out, seen = [], 0
    for root, dirs, files in os.walk(path):
        seen += len(dirs) + len(files)
        if seen > MAX_WALK_ENTRIES:
            raise DataError(f"{path}: more than {MAX_WALK_ENTRIES:,} files and folders; point the data source at "
                            "the FER2013 folder itself (<split>/<class>/*.png)")
        for f in files:
            if f.lower().endswith(IMAGE_EXTENSIONS):
                rel = os.path.relpath(os.path.join(root, f), path)
                parts = Path(rel).parts
                if len(parts) >= 3:
                    out.append((parts[-3], parts[-2], rel))
    return out


def _zip_entries(zf: zipfile.ZipFile) -> list[tuple[str, str, str]]:
    out = []
    for info in zf.infolist():
        if info.is_dir() or not info.filename.lower().endswith(IMAGE_EXTENSIONS):
            continue
        if info.file_size > MAX_ZIP_MEMBER_BYTES:  # zipfile reads at most file_size bytes of a member
            raise DataError(f"{zf.filename}: member {info.filename} expands to {info.file_size:,} bytes, above "
                            f"the {MAX_ZIP_MEMBER_BYTES:,} byte limit for one image")
        parts = info.filename.split("/")
        if any(p.startswith("__MACOSX") or p.startswith(".") for p in parts):
            continue
        if len(parts) >= 3:
            out.append((parts[-3], parts[-2], info.filename))
    return out


def _select_split(entries, want: str, source: str):
    """Keep the entries of stored split `want` (train/val/test; fer_core.splits resolves a requested name)."""
    present = {split_of_dir(s) for s, _, _ in entries} - {None}
    chosen, unknown = [], set()
    for s, c, f in entries:
        if split_of_dir(s) != want:
            continue
        k = class_index(c)
        if k is not None:
            chosen.append((k, f))
        else:
            unknown.add(c)
    if not chosen and unknown:
        names = ", ".join(sorted(unknown)[:10]) + (", ..." if len(unknown) > 10 else "")
        raise DataError(f"{source}: split '{want}' has no recognised class folders (found: {names}; "
                        f"expected FER2013 class names such as angry, happy, neutral, or 0-6)")
    if not chosen:
        have = ", ".join(sorted(present)) or "none"
        raise DataError(f"{source}: split '{want}' is empty or missing (splits found: {have})")
    chosen.sort(key=lambda kf: kf[1])
    return chosen


def _read_csv(path: Path):
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except Exception as e:  # pandas raises many types for garbage input
        raise DataError(f"{path}: cannot read as CSV ({str(e).splitlines()[0]})") from None
    df.columns = [c.strip().lower() for c in df.columns]
    if "pixels" not in df.columns or "emotion" not in df.columns:
        raise DataError(f"{path}: CSV needs 'emotion' and 'pixels' columns, found {list(df.columns)}")
    return df


def _csv_split(df, usage: str, path: Path, name: str | None = None):
    """Rows whose Usage is `usage` (Training, PublicTest, PrivateTest); a CSV without Usage is all Training."""
    if "usage" in df.columns:
        mask = df["usage"].str.strip() == usage
        rows = np.flatnonzero(mask.to_numpy())
    elif usage == "Training":
        rows = np.arange(len(df))
    else:
        rows = np.array([], dtype=np.int64)
    if len(rows) == 0:
        raise DataError(f"{path}: split '{name or usage}' ({usage}) has no rows")
    return rows


def _parse_labels(df, rows, path):
    col = df["emotion"].to_numpy()[rows]
    y = np.empty(len(rows), dtype=np.int64)
    for i, (r, v) in enumerate(zip(rows, col)):
        try:
            k = int(str(v).strip())
        except ValueError:
            k = -1
        if not 0 <= k < len(CLASSES):
            raise DataError(f"{path}: line {r + 2}: label {v!r} is not an integer in 0..{len(CLASSES) - 1}")
        y[i] = k
    return y


def _decode_csv(path: Path, split: str, name: str | None = None):
    df = _read_csv(path)
    rows = _csv_split(df, split, path, name)
    y = _parse_labels(df, rows, path)
    pix = df["pixels"].to_numpy()[rows]
    x = np.empty((len(rows), SIZE, SIZE), dtype=np.uint8)
    for i, (r, s) in enumerate(zip(rows, pix)):
        try:
            v = np.array(s.split(), dtype=np.int64)
        except ValueError:
            raise DataError(f"{path}: line {r + 2}: pixels are not integers") from None
        if v.size != SIZE * SIZE:
            raise DataError(f"{path}: line {r + 2}: {v.size} pixel values, expected {SIZE * SIZE}")
        if v.min() < 0 or v.max() > 255:
            raise DataError(f"{path}: line {r + 2}: pixel values outside 0..255")
        x[i] = v.reshape(SIZE, SIZE)
    ids = np.array([f"line {r + 2}" for r in rows])
    return x, y, ids


def _decode_images(items, read, source):
    x = np.empty((len(items), SIZE, SIZE), dtype=np.uint8)
    for i, (_, name) in enumerate(items):
        try:
            x[i] = to_face48(open_image(read(name), name=f"{source}:{name}"))
        except DataError:
            raise
    y = np.array([k for k, _ in items], dtype=np.int64)
    ids = np.array([n for _, n in items])
    return x, y, ids


def _decode_npz(path: Path, split: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            want = split
            if f"{want}_x" not in keys:
                have = sorted({k.rsplit("_", 1)[0] for k in keys if k.endswith("_x")})
                raise DataError(f"{path}: split '{split}' is missing (splits found: {', '.join(have) or 'none'})")
            x, y = z[f"{want}_x"], z[f"{want}_y"].astype(np.int64)
            ids = z[f"{want}_ids"] if f"{want}_ids" in keys else np.array([f"{want} {i}" for i in range(len(y))])
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz data file ({e})") from None
    if x.ndim != 3 or x.shape[1:] != (SIZE, SIZE) or x.dtype != np.uint8 or len(x) != len(y):
        raise DataError(f"{path}: split '{split}' must hold uint8 faces of shape (N, 48, 48) and N labels")
    if len(y) == 0:
        raise DataError(f"{path}: split '{split}' is empty")
    if y.min() < 0 or y.max() >= len(CLASSES):
        raise DataError(f"{path}: split '{split}' has labels outside 0..6")
    return x, y, ids.astype(str)


def decode(path: Path, split: str, name: str | None = None):
    """Decode stored split `split`; `name`: the name it was asked for, for messages."""
    kind = source_kind(path)
    if kind == "csv":
        return _decode_csv(path, split, name)
    if kind == "npz":
        return _decode_npz(path, split)
    if kind == "folder":
        items = _select_split(_folder_entries(path), split, str(path))
        return _decode_images(items, lambda n: str(path / n), str(path))
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: corrupt zip file") from None
    with zf:
        items = _select_split(_zip_entries(zf), split, str(path))
        try:
            return _decode_images(items, zf.read, str(path))
        except zipfile.BadZipFile as e:
            raise DataError(f"{path}: corrupt zip member ({e})") from None


def stored_splits(p: Path, kind: str) -> set[str]:
    """The stored splits (train/val/test) a folder, zip or .npz holds (a listing, no decoding)."""
    if kind == "npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k[:-2] for k in z.files if k.endswith("_x")}
        except Exception as e:
            raise DataError(f"{p}: not a readable .npz data file ({e})") from None
    if kind == "folder":
        return {split_of_dir(d) for d, _, _ in _folder_entries(p)} - {None}
    try:
        with zipfile.ZipFile(p) as zf:
            return {split_of_dir(d) for d, _, _ in _zip_entries(zf)} - {None}
    except zipfile.BadZipFile:
        raise DataError(f"{p}: corrupt zip file") from None


def read_labels(p: Path, kind: str, stored: str, name: str | None = None) -> np.ndarray:
    """The labels of stored split `stored`, without decoding images (a listing or the CSV's label column)."""
    if kind == "csv":
        df = _read_csv(p)
        return _parse_labels(df, _csv_split(df, stored, p, name), p)
    if kind == "npz":
        return _decode_npz(p, stored)[1]
    if kind == "folder":
        return np.array([k for k, _ in _select_split(_folder_entries(p), stored, str(p))])
    try:
        with zipfile.ZipFile(p) as zf:
            return np.array([k for k, _ in _select_split(_zip_entries(zf), stored, str(p))])
    except zipfile.BadZipFile:
        raise DataError(f"{p}: corrupt zip file") from None
