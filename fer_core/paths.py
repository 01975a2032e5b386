"""Checks on the paths a user names, made before any work: an output never replaces an input or a folder,
numbers typed on a command line are finite."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .images import DataError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # symlinks and hard links too
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_file(out, inputs=(), what: str = "output") -> Path:
    """Raise DataError if writing `out` could destroy data: it is (or links to) one of `inputs`, lies inside an
    input folder's tree as one of its files, or is an existing folder or non-regular file."""
    p = Path(out)
    if p.is_dir():
        raise DataError(f"{out}: {what} is an existing folder; name a file")
    if p.exists() and not p.is_file():
        raise DataError(f"{out}: {what} exists and is not a regular file")
    for i in map(Path, inputs):
        if p.exists() and i.exists() and _same_file(p, i):
            raise DataError(f"{out}: {what} is the input {i}; it would be overwritten; name another file")
        if not p.exists() and os.path.realpath(p) == os.path.realpath(i):
            raise DataError(f"{out}: {what} is the input {i}; name another file")
        if p.exists() and i.is_dir() and Path(os.path.realpath(i)) in Path(os.path.realpath(p)).parents:
            raise DataError(f"{out}: {what} is a file of the input folder {i}; it would be overwritten")
    if not p.parent.is_dir():
        raise DataError(f"{out}: {what}'s folder {p.parent} does not exist")
    return p


def positive_float(limit: float | None = None):
    """argparse type: a finite number > 0 (and <= limit); nan, inf and words get argparse's one-line error."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
        if limit is not None and v > limit:
            raise argparse.ArgumentTypeError(f"{text!r} is over the limit of {limit:g}")
        return v
    return parse
