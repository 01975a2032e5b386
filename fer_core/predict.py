"""Classify the faces in files from the command line: photos and video clips, one entry for both.

    python -m fer_core.predict [--checkpoint CKPT] [--tta] [--format csv|json] PATH...
    python -m fer_core.predict [--checkpoint CKPT] [--fps 5] [--format csv|json] [--annotated OUT] CLIP...

PATHs are image files or folders (searched recursively); CLIPs are video files (fer_core.video.VIDEO_EXTENSIONS,
told apart by their extension). One command takes photos or clips, not both. Photos (fer_core.classify): one
output row per face: file, face (index from 0), box [x, y, w, h], source (detected | whole_image), detector
(yunet | haar), score (YuNet confidence or Haar neighbours), label, probabilities (all classes); a file that fails
gets one row with file and error. Clips (fer_core.video.cli): one row per (sampled frame, face track). The exit
code is 1 if any file failed, 2 if the arguments or the checkpoint cannot be used (said before any file is read).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from . import video
from .checkpoint import CheckpointError, load_model
from .classify import classify_image
from .sources import CLASSES, IMAGE_EXTENSIONS
from .images import DataError
from .paths import check_output_file, positive_float
from .text import csv_writer, one_line

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "fer_best.pt"


def expand_paths(paths) -> list[tuple[str, str | None]]:
    """(file, error or None) for every image named or found under a folder; errors for missing paths and
    folders without images, so each becomes one error row."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                out.append((str(p), f"{p}: folder has no image files ({', '.join(IMAGE_EXTENSIONS)})"))
            out += [(str(f), None) for f in files]
        elif p.is_file():
            out.append((str(p), None))  # named explicitly: try it whatever its extension
        elif p.exists():  # a FIFO, /dev/stdin, a device: reading it could block forever
            out.append((str(p), f"{p}: not a regular file"))
        else:
            out.append((str(p), f"{p}: no such file or directory"))
    return out


def predict_paths(model, prep, paths, tta: bool = False) -> list[dict]:
    """Rows for files and folders: face rows, or one {file, error} row per failing file."""
    rows = []
    for file, err in expand_paths(paths):
        if err is None:
            try:
                rows += [r.row() for r in classify_image(model, prep, file, name=file, tta=tta)]
                continue
            except DataError as e:
                err = one_line(e)
            except Exception as e:  # noqa: BLE001 - whatever one file does, the batch goes on
                err = f"{file}: {type(e).__name__}: {one_line(e)}"
        rows.append({"file": file, "error": err})
    return rows


def rows_to_csv(rows, classes=CLASSES) -> str:
    """Flat CSV for spreadsheets: box stays one "[x, y, w, h]" cell, each class probability gets its own
    column (named after the class), failing files fill only file and error."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["file", "face", "box", "source", "detector", "score", "label", *classes, "error"])
    for r in rows:
        if "error" in r:
            w.writerow([r["file"], "", "", "", "", "", "", *[""] * len(classes), r["error"]])
        else:
            p = r["probabilities"]
            w.writerow([r["file"], r["face"], json.dumps(r["box"]), r["source"], r.get("detector") or "",
                        "" if r["score"] is None else f"{r['score']:g}", r["label"],
                        *[f"{p[c]:.6f}" for c in classes], ""])
    return buf.getvalue()


def photos_cli(model, prep, args) -> int:
    """Photo rows on stdout; how many files failed on stderr; exit 1 if any did."""
    rows = predict_paths(model, prep, args.paths, tta=args.tta)
    if args.format == "json":
        sys.stdout.write("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")  # a row per line
    else:
        sys.stdout.write(rows_to_csv(rows, tuple(model.classes)))
    failed = sum("error" in r for r in rows)
    if failed:
        print(f"{failed} of {len({r['file'] for r in rows})} files failed", file=sys.stderr)
    return 1 if failed else 0


def check_args(args, clips: list[bool]) -> None:
    """Refuse, before the model loads, what no file can fix; clips[i]: is args.paths[i] a video clip."""
    if args.annotated:  # an output that would destroy an input is refused first
        if not any(clips):
            raise DataError("--annotated writes a boxed copy of a video clip; no clip was given")
        check_output_file(args.annotated, args.paths, "--annotated")
    if any(clips) and not all(clips):
        raise DataError(f"give either photos or video clips ({', '.join(video.VIDEO_EXTENSIONS)}), not both")
    if args.annotated and len(args.paths) != 1:
        raise DataError("--annotated takes one clip at a time")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_core.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders, or video clips")
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                    help="model checkpoint (default: %(default)s, chosen for FER2013's own faces; the model "
                         "card's Real photos section compares the shipped models on real photos)")
    ap.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    ap.add_argument("--format", choices=("csv", "json"), default="json")
    ap.add_argument("--fps", type=positive_float(limit=120.0), default=5.0, help="video clips: frames analysed per second of video")
    ap.add_argument("--annotated", metavar="OUT", help="video clips: write the sampled frames, boxed, to OUT (.mp4, ...)")
    args = ap.parse_args(argv)
    clips = [video.is_video_path(p) for p in args.paths]
    try:
        check_args(args, clips)
    except DataError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    try:
        model, prep = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    return video.cli(model, prep, args) if any(clips) else photos_cli(model, prep, args)


if __name__ == "__main__":
    sys.exit(main())
