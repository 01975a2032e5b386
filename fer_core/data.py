"""FER2013 data in every form users have, decoded once into a uint8 cache.

Sources, detected from the path:
  * Kaggle CSVs: fer2013.csv (emotion,pixels,Usage; .gz too), icml_face_data.csv (" pixels"), train.csv
    (emotion,pixels: all rows are the train split);
  * an image folder <root>/<split>/<class>/*.jpg|png, or a .zip of it, read in place;
  * this project's own .npz (keys <split>_x uint8 (N,48,48), <split>_y), e.g. the bundled sample.
Splits: train, public_test, private_test (FER2013's Training, PublicTest, PrivateTest), and the source's
own val and test; fer_core.splits says which faces each name reads in each kind of source.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# one image at a time lives in fer_core.images; re-exported, as the loaders and the pages use them with the data
from .images import MAX_PIXELS, SIZE, UPLOAD_MAX_PIXELS, DataError, open_image, to_face48, to_gray  # noqa: F401
from .splits import (SPLIT_NAMES, SPLITS, Resolved, check_name, resolve_csv, resolve_stored, split_of_dir,  # noqa: F401
                     warn_fallback)

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


@dataclass
class FaceSet:
    x: np.ndarray  # (N, 48, 48) uint8
    y: np.ndarray  # (N,) int64 in FER2013 label order
    ids: np.ndarray  # (N,) str: file name inside the source, or "line N" for CSVs
    source: str
    split: str  # the name asked for
    resolved: Resolved | None = None  # what was read for it, and FER2013's name for it (fer_core.splits)

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(CLASSES))
        return {c: int(n) for c, n in zip(CLASSES, counts)}

    def subset(self, idx) -> "FaceSet":
        return FaceSet(self.x[idx], self.y[idx], self.ids[idx], self.source, self.split, self.resolved)


# ----------------------------------------------------------------------------------------------
# Source detection


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


def _decode(path: Path, split: str, name: str | None = None):
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


# ----------------------------------------------------------------------------------------------
# Cache


def cache_dir() -> Path:
    d = os.environ.get("FER_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fer-dashboard"


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
    or a folder; DataError otherwise. Outside the roots nothing is looked at, so the message tells nothing about
    what exists there."""
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


def _present(p: Path, kind: str) -> set[str]:
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


def resolve_split(path, split: str) -> Resolved:
    """What `split` reads in this source and FER2013's name for it (see fer_core.splits)."""
    check_name(split, path)
    p = Path(path)
    kind = source_kind(p)
    return resolve_csv(split) if kind == "csv" else resolve_stored(split, _present(p, kind), p)


def _cache_file(p: Path, split: str) -> Path:
    return cache_dir() / f"{p.name}-{file_key(p)}-{split}-v{CACHE_VERSION}.npz"


def load_split(path, split: str = "train", cache: bool = True) -> FaceSet:
    """Load one split of a FER2013 source as uint8 faces; decoded once, then read from the cache. A split read
    from another one (val from test/) warns with SplitFallbackWarning; FaceSet.resolved records it."""
    check_name(split, path)
    p = Path(path)
    source_kind(p)  # existence / format check with a clear message
    cfile = _cache_file(p, split)
    if cache and cfile.exists():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                r = Resolved(split, *(str(z[k]) for k in ("stored", "usage", "note"))) if "stored" in z.files else None
                x, y, ids = z["x"], z["y"], z["ids"]
            fs = FaceSet(x, y, ids, str(path), split, r or resolve_split(p, split))
            warn_fallback(fs.resolved)
            return fs
        except DataError:
            raise
        except Exception:
            pass  # a damaged cache is rebuilt below
    r = resolve_split(p, split)
    x, y, ids = _decode(p, r.stored, split)
    if cache:
        buf = io.BytesIO()
        np.savez(buf, x=x, y=y, ids=ids.astype(str), stored=r.stored, usage=r.usage, note=r.note)
        try:
            atomic_write_bytes(cfile, buf.getvalue())
        except OSError:
            pass  # read-only cache dir: still usable, just slower next time
    warn_fallback(r)
    return FaceSet(x, y, ids.astype(str), str(path), split, r)


def class_counts(path, split: str = "train") -> dict[str, int]:
    """Per-class face counts without decoding images (cache, file listing or the CSV label column)."""
    check_name(split, path)
    p = Path(path)
    kind = source_kind(p)
    cfile = _cache_file(p, split)
    if cfile.exists():
        try:
            with np.load(cfile, allow_pickle=False) as z:
                y = z["y"]
            return {c: int(n) for c, n in zip(CLASSES, np.bincount(y, minlength=len(CLASSES)))}
        except Exception:
            pass
    stored = resolve_split(p, split).stored
    if kind == "csv":
        df = _read_csv(p)
        y = _parse_labels(df, _csv_split(df, stored, p, split), p)
    elif kind == "npz":
        y = _decode_npz(p, stored)[1]
    elif kind == "folder":
        y = np.array([k for k, _ in _select_split(_folder_entries(p), stored, str(p))])
    else:
        try:
            with zipfile.ZipFile(p) as zf:
                y = np.array([k for k, _ in _select_split(_zip_entries(zf), stored, str(p))])
        except zipfile.BadZipFile:
            raise DataError(f"{p}: corrupt zip file") from None
    return {c: int(n) for c, n in zip(CLASSES, np.bincount(y, minlength=len(CLASSES)))}


def available_splits(path) -> list[str]:
    """The source's own splits, each once (train, val, test: no val that would only repeat test/), cheaply
    (a listing or the label column); `resolve_split` names the FER2013 split each holds."""
    out = []
    for s in ("train", "val", "test"):
        try:
            if resolve_split(path, s).note:  # read from another split: not one of its own
                continue
            if sum(class_counts(path, s).values()) > 0:
                out.append(s)
        except DataError:
            pass
    return out
