"""FER2013's Kaggle CSVs (fer2013.csv with emotion,pixels,Usage, icml_face_data.csv, train.csv; .gz too): the
rows of one Usage, their labels and their 48x48 faces, each bad line named in a DataError. fer_core.sources says
which file is a CSV and how large it may be; fer_core.data reads through here."""
from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from .images import SIZE, DataError
from .sources import CLASSES, USAGES, open_source, size_limit


def read_csv(path: Path):
    import pandas as pd

    limit, what = size_limit("csv")  # read at call time: tests lower it
    with open_source(path, "csv") as f:  # a regular file within the limit
        src = f
        if f.read(2) == b"\x1f\x8b":  # gzip: what it expands to is bounded too, read no further than the limit
            f.seek(0)
            try:
                raw = gzip.GzipFile(fileobj=f).read(limit + 1)
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{path}: corrupt gzip file ({e})") from None
            if len(raw) > limit:
                raise DataError(f"{path}: expands to more than {limit:,} bytes, the limit for {what}")
            src = io.BytesIO(raw)
        else:
            f.seek(0)
        try:
            df = pd.read_csv(src, dtype=str, keep_default_na=False, compression=None)
        except Exception as e:  # pandas raises many types for garbage input
            raise DataError(f"{path}: cannot read as CSV ({(str(e).splitlines() or [type(e).__name__])[0]})") from None
    df.columns = [c.strip().lower() for c in df.columns]
    if "pixels" not in df.columns or "emotion" not in df.columns:
        raise DataError(f"{path}: CSV needs 'emotion' and 'pixels' columns, found {list(df.columns)}")
    return df


def csv_rows(df, usage: str, path: Path, name: str | None = None, skipped: dict | None = None):
    """Rows whose Usage is `usage` (Training, PublicTest, PrivateTest); a CSV without Usage is all Training.
    `skipped` gets the count of rows with no known Usage (in no split at all)."""
    if "usage" in df.columns:
        col = df["usage"].fillna("").astype(str).str.strip()
        mask = col == usage
        rows = np.flatnonzero(mask.to_numpy())
        n_none = int((~col.isin(USAGES)).sum())
        if skipped is not None and n_none:
            skipped["rows_without_usage"] = n_none
    elif usage == "Training":
        rows = np.arange(len(df))
    else:
        rows = np.array([], dtype=np.int64)
    if len(rows) == 0:
        raise DataError(f"{path}: split '{name or usage}' ({usage}) has no rows")
    return rows


def parse_labels(df, rows, path):
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


def decode_csv(path: Path, split: str, name: str | None = None, skipped: dict | None = None):
    df = read_csv(path)
    rows = csv_rows(df, split, path, name, skipped)
    y = parse_labels(df, rows, path)
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
