"""The kinds of FER2013 source and how each is read: Kaggle CSVs, an image folder <split>/<class>/*, a .zip of
one (read in place), this project's .npz (the CSVs' rows are read by fer_core.csvfaces). fer_core.data picks
the reader for a source and caches what it returns; fer_core.splits names the splits. Limits guard against a
wrong folder, a zip bomb or a huge file: each source's size is checked from stat before anything is read, and
only regular files are opened (a FIFO or device never blocks a read). What a source holds but a split leaves out
without choosing to (unknown class folders, CSV rows without a known Usage, FIFOs in a folder) is counted and
reported with SkippedDataWarning."""
from __future__ import annotations

import contextlib
import os
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .images import SIZE, DataError, open_image, open_regular, read_regular, to_face48
from .splits import split_of_dir

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CACHE_VERSION = 1
MAX_ZIP_MEMBER_BYTES = 20_000_000  # one image inside a .zip may expand to this much, not more
MAX_WALK_ENTRIES = 200_000  # files and folders looked at under a folder source, members of a zip (FER2013 has ~36k)
# size limits per kind of source, checked from stat before reading (FER2013's own files are far below them)
MAX_CSV_BYTES = 500_000_000  # a CSV, or what a .csv.gz expands to (fer2013.csv is 301 MB)
MAX_NPZ_BYTES = 500_000_000  # an .npz, and what its arrays expand to (all of FER2013 as uint8 is 83 MB)
MAX_ZIP_BYTES = 1_000_000_000  # an image-folder .zip, read in place (FER2013's is 63 MB)
MAX_IMAGE_FILE_BYTES = 20_000_000  # one image file in a folder source
USAGES = ("Training", "PublicTest", "PrivateTest")


class SkippedDataWarning(UserWarning):
    """A split left out part of its source: files in unknown class folders, CSV rows without a known Usage,
    entries that are not regular files. FaceSet.skipped and the run's config.json record the counts."""


def skipped_note(source, split: str, skipped: dict) -> str:
    """One line saying what `skipped` (a FaceSet.skipped dict) left out of `split`; '' when nothing."""
    parts = []
    unknown = skipped.get("unknown_class_folders") or {}
    if unknown:
        n = sum(unknown.values())
        names = ", ".join(f"{k!r}: {v}" for k, v in sorted(unknown.items())[:10]) + (", ..." if len(unknown) > 10 else "")
        parts.append(f"{n:,} image(s) in {len(unknown)} folder(s) with no FER2013 class name ({names})")
    if skipped.get("rows_without_usage"):
        parts.append(f"{skipped['rows_without_usage']:,} CSV row(s) without a Usage of {', '.join(USAGES)}")
    if skipped.get("not_regular_files"):
        parts.append(f"{skipped['not_regular_files']:,} entr(ies) that are not regular files (FIFOs, devices, "
                     "broken links)")
    return f"{source}: split '{split}' skipped " + "; ".join(parts) if parts else ""


def warn_skipped(source, split: str, skipped: dict) -> None:
    note = skipped_note(source, split, skipped)
    if note:
        warnings.warn(note, SkippedDataWarning, stacklevel=3)


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


def size_limit(kind: str) -> tuple[int, str]:
    """(bytes, what) a source file of `kind` may hold (read at call time: tests lower the constants)."""
    return {"csv": (MAX_CSV_BYTES, "a CSV data source"), "npz": (MAX_NPZ_BYTES, "an .npz data source"),
            "zip": (MAX_ZIP_BYTES, "a .zip data source")}[kind]


def open_source(path, kind: str):
    """The source file opened (open_regular: a regular file within its kind's size limit), errors as DataError."""
    limit, what = size_limit(kind)
    try:
        return open_regular(path, limit, what)
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror or e})") from None


def source_kind(path) -> str:
    """folder, zip, npz or csv; DataError when `path` is missing, not a regular file or folder, of no known
    format, or larger than its kind's limit (checked from stat: nothing is read whole before it)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or directory") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file or folder")
    name = p.name.lower()
    kind = None
    if name.endswith(".zip"):
        kind = "zip"
    elif name.endswith(".npz"):
        kind = "npz"
    elif name.endswith(".csv") or name.endswith(".csv.gz"):
        kind = "csv"
    else:
        try:
            with open_regular(p) as f:
                head = f.read(4)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
        if head[:2] == b"PK":
            kind = "zip"
        elif head[:2] == b"\x1f\x8b":
            kind = "csv"
    if kind is None:
        raise DataError(f"{path}: unsupported data format (expected a FER2013 .csv/.csv.gz, an image folder, a .zip or a .npz)")
    limit, what = size_limit(kind)
    if st.st_size > limit:
        raise DataError(f"{path}: {st.st_size:,} bytes, above the {limit:,} byte limit for {what}")
    return kind


def folder_entries(path: Path, irregular: list | None = None) -> list[tuple[str, str, str]]:
    """(split_dir_name, class_dir_name, file) for every image under <split>/<class>/ in a folder. Only regular
    files (or links to them) count: a FIFO, device or broken link named like an image is left out, and added
    to `irregular` (same tuples) so the split that would have held it can say so."""
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
                    try:
                        regular = stat.S_ISREG(os.stat(os.path.join(root, f)).st_mode)
                    except OSError:
                        regular = False
                    if regular:
                        out.append((parts[-3], parts[-2], rel))
                    elif irregular is not None:
                        irregular.append((parts[-3], parts[-2], rel))
    return out


def zip_entries(zf: zipfile.ZipFile) -> list[tuple[str, str, str]]:
    out = []
    if len(zf.infolist()) > MAX_WALK_ENTRIES:
        raise DataError(f"{zf.filename}: more than {MAX_WALK_ENTRIES:,} members; a FER2013 zip holds ~36k images")
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


def select_split(entries, want: str, source: str, skipped: dict | None = None, irregular=()):
    """Keep the entries of stored split `want` (train/val/test; fer_core.splits resolves a requested name).
    `skipped` gets what the split leaves out: files per unknown class folder, entries not regular files."""
    present = {split_of_dir(s) for s, _, _ in entries} - {None}
    chosen, unknown = [], {}
    for s, c, f in entries:
        if split_of_dir(s) != want:
            continue
        k = class_index(c)
        if k is not None:
            chosen.append((k, f))
        else:
            unknown[c] = unknown.get(c, 0) + 1
    if skipped is not None:
        if unknown:
            skipped["unknown_class_folders"] = unknown
        n_irregular = sum(1 for s, _, _ in irregular if split_of_dir(s) == want)
        if n_irregular:
            skipped["not_regular_files"] = n_irregular
    if not chosen and unknown:
        names = ", ".join(sorted(unknown)[:10]) + (", ..." if len(unknown) > 10 else "")
        raise DataError(f"{source}: split '{want}' has no recognised class folders (found: {names}; "
                        f"expected FER2013 class names such as angry, happy, neutral, or 0-6)")
    if not chosen:
        have = ", ".join(sorted(present)) or "none"
        raise DataError(f"{source}: split '{want}' is empty or missing (splits found: {have})")
    chosen.sort(key=lambda kf: kf[1])
    return chosen


def decode_images(items, read, source):
    x = np.empty((len(items), SIZE, SIZE), dtype=np.uint8)
    for i, (_, name) in enumerate(items):
        try:
            x[i] = to_face48(open_image(read(name), name=f"{source}:{name}"))
        except DataError:
            raise
    y = np.array([k for k, _ in items], dtype=np.int64)
    ids = np.array([n for _, n in items])
    return x, y, ids


def _npz_expanded(path, z) -> None:
    """Refuse an .npz whose arrays expand past MAX_NPZ_BYTES (a compressed .npz can be a zip bomb)."""
    total = sum(i.file_size for i in z.zip.infolist())
    if total > MAX_NPZ_BYTES:
        raise DataError(f"{path}: its arrays expand to {total:,} bytes, above the {MAX_NPZ_BYTES:,} byte limit for "
                        "an .npz data source")


def decode_npz(path: Path, split: str):
    try:
        with open_source(path, "npz") as f, np.load(f, allow_pickle=False) as z:
            _npz_expanded(path, z)
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


def read_image_file(path: Path):
    def read(name):
        try:
            return read_regular(path / name, MAX_IMAGE_FILE_BYTES, "one image")
        except OSError as e:
            raise DataError(f"{path}:{name}: cannot read ({e.strerror or e})") from None
    return read


@contextlib.contextmanager
def open_zip(path: Path):
    """The zip source opened (a regular file within MAX_ZIP_BYTES), as a ZipFile read in place."""
    with open_source(path, "zip") as f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise DataError(f"{path}: corrupt zip file") from None
        with zf:
            yield zf
