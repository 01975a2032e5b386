"""Classify every face in photos: a library API, a batch CLI and the live-webcam smoothing logic.

    python -m fer_core.predict [--checkpoint CKPT] [--tta] [--format csv|json] PATH...

PATHs are image files or folders (searched recursively). One output row per face: file, face (index from 0),
box [x, y, w, h], source (detected | whole_image), detector (yunet | haar), score (YuNet confidence or Haar
neighbours), label, probabilities (all
classes). A file that fails gets one row with file and error; the exit code is 1 if any failed, 2 if the
checkpoint cannot be used.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import CLASSES, IMAGE_EXTENSIONS
from .images import DataError, open_image
from .faces import Face, find_faces
from .inference import predict_proba
from .paths import check_output_file, positive_float
from .text import csv_writer

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "fer_best.pt"


@dataclass
class FaceResult:
    file: str
    face: int
    box: tuple[int, int, int, int]
    source: str
    score: float | None
    label: str
    probabilities: dict[str, float]
    face48: np.ndarray = field(repr=False)
    detector: str | None = None  # "yunet" | "haar" | None (whole image)
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (5, 2): eyes, nose, mouth corners

    def row(self) -> dict:
        return {"file": self.file, "face": self.face, "box": list(self.box), "source": self.source,
                "detector": self.detector, "score": self.score, "label": self.label,
                "probabilities": self.probabilities}


def classify_faces(model, prep, faces: list[Face], file: str = "image", tta: bool = False,
                   precision: str | None = None) -> list[FaceResult]:
    """One batched forward pass for all faces of an image (precision: see fer_core.inference)."""
    if not faces:
        return []
    classes = tuple(getattr(model, "classes", CLASSES))
    probs = predict_proba(model, prep, np.stack([f.face48 for f in faces]), tta=tta, precision=precision)
    out = []
    for i, (f, p) in enumerate(zip(faces, probs)):
        out.append(FaceResult(file, i, tuple(int(v) for v in f.box), f.source, f.score, classes[int(p.argmax())],
                              {c: float(v) for c, v in zip(classes, p)}, f.face48, f.detector, f.landmarks))
    return out


def classify_image(model, prep, src, name: str | None = None, tta: bool = False, precision: str | None = None,
                   **face_opts) -> list[FaceResult]:
    """A path, bytes, file object or PIL image -> one result per face. Raises DataError (NoFaceError for no
    face) with a one-line message naming the file."""
    name = name or (str(src) if isinstance(src, (str, Path)) else "image")
    decoded = isinstance(src, np.ndarray) or (hasattr(src, "mode") and hasattr(src, "getpixel"))  # array / PIL
    img = src if decoded else open_image(src, name=name)
    return classify_faces(model, prep, find_faces(img, name=name, **face_opts), file=name, tta=tta,
                          precision=precision)


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


def one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg[:300]


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


# ----------------------------------------------------------------------------------------------
# Saliency for the "what the model sees" view


def face_saliency(model, prep, faces48: np.ndarray, targets) -> np.ndarray:
    """|d logit_target / d pixel| per face (fer_core.saliency's vanilla gradient), scaled to [0, 1] per map
    -> (N, 48, 48) float32."""
    from .saliency import attribute  # Captum: imported when a map is asked for, not with the photo path

    faces48 = np.asarray(faces48)
    maps = attribute(model, prep, faces48, np.asarray(targets), "vanilla")
    peak = np.percentile(maps.reshape(len(maps), -1), 99, axis=1).reshape(-1, 1, 1)  # robust to a few hot pixels
    return np.clip(maps / np.maximum(peak, 1e-12), 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Live webcam: probabilities smoothed over frames per tracked face, "uncertain" below a threshold

UNCERTAIN = "uncertain"


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / max(1e-9, aw * ah + bw * bh - inter)


def decide(probs, threshold: float, classes=CLASSES) -> tuple[str, float]:
    """(label, confidence): the top class, or "uncertain" when its probability is below threshold."""
    k = int(np.argmax(probs))
    conf = float(probs[k])
    return (classes[k] if conf >= threshold else UNCERTAIN), conf


@dataclass
class Track:
    box: tuple
    probs: np.ndarray
    missing: int = 0
    frames: int = 1


class Smoother:
    """Exponential moving average of each face's probabilities across frames.

    Faces are matched to the previous frame's by box overlap (IoU); a face unseen for `max_missing`
    frames is forgotten. alpha is the weight of the newest frame (1 = no smoothing)."""

    def __init__(self, alpha: float = 0.3, threshold: float = 0.5, min_iou: float = 0.3, max_missing: int = 5,
                 classes=CLASSES):
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha, self.threshold, self.min_iou, self.max_missing = alpha, threshold, min_iou, max_missing
        self.classes = tuple(classes)
        self.tracks: list[Track] = []

    def update(self, boxes, probs) -> list[dict]:
        """One frame's boxes and (N, C) probabilities -> per face {box, probabilities, label, confidence,
        frames}, in the order given. Greedy matching: best overlaps first."""
        probs = np.asarray(probs, dtype=np.float64).reshape(len(boxes), -1) if len(boxes) else np.zeros((0, 0))
        pairs = sorted(((iou(b, t.box), i, j) for i, b in enumerate(boxes) for j, t in enumerate(self.tracks)),
                       reverse=True)
        match, used = {}, set()
        for ov, i, j in pairs:
            if ov < self.min_iou:
                break
            if i not in match and j not in used:
                match[i] = j
                used.add(j)
        new_tracks, out = [], []
        for i, b in enumerate(boxes):
            if i in match:
                t = self.tracks[match[i]]
                t.probs = self.alpha * probs[i] + (1 - self.alpha) * t.probs
                t.box, t.missing, t.frames = tuple(b), 0, t.frames + 1
            else:
                t = Track(tuple(b), probs[i].copy())
            new_tracks.append(t)
            label, conf = decide(t.probs, self.threshold, self.classes)
            out.append({"box": t.box, "probabilities": t.probs.copy(), "label": label, "confidence": conf,
                        "frames": t.frames})
        for j, t in enumerate(self.tracks):
            if j not in used and t.missing + 1 < self.max_missing:
                t.missing += 1
                new_tracks.append(t)  # kept briefly: a face lost for a frame or two keeps its history
        self.tracks = new_tracks
        return out


class LiveClassifier:
    """Frame -> smoothed per-face results; the part of the webcam path that needs no browser."""

    def __init__(self, model, prep, alpha: float = 0.3, threshold: float = 0.5, min_face: int = 60,
                 scale_factor: float = 1.2):
        # webcam faces are big and frames come fast: larger minimum face and coarser scale steps than photos
        self.model, self.prep, self.min_face, self.scale_factor = model, prep, min_face, scale_factor
        self.smoother = Smoother(alpha, threshold, classes=getattr(model, "classes", CLASSES))

    def __call__(self, frame) -> list[dict]:
        faces = find_faces(frame, name="frame", whole_image=False, required=False, min_face=self.min_face,
                           scale_factor=self.scale_factor)
        res = classify_faces(self.model, self.prep, faces, file="frame")
        return self.smoother.update([r.box for r in res], [list(r.probabilities.values()) for r in res])


class LiveState:
    """A webcam stream's state, shared by the video thread (process) and the page (snapshot, every second)."""

    def __init__(self, model, prep, alpha: float = 0.3, threshold: float = 0.5):
        self.lock = threading.Lock()
        self.live = LiveClassifier(model, prep, alpha=alpha, threshold=threshold)
        self.faces: list[dict] = []
        self.frames = 0
        self.ms = 0.0  # running average of the time per frame

    def configure(self, alpha: float, threshold: float) -> None:
        with self.lock:
            self.live.smoother.alpha, self.live.smoother.threshold = alpha, threshold

    def process(self, bgr: np.ndarray) -> np.ndarray:
        """A BGR frame (H, W, 3) uint8 -> the same frame with each face boxed and captioned."""
        from .faces import draw_faces

        t = time.perf_counter()
        with self.lock:
            out = self.live(bgr[..., ::-1])
            self.faces, self.frames = out, self.frames + 1
        ms = (time.perf_counter() - t) * 1000
        self.ms = ms if self.frames == 1 else 0.9 * self.ms + 0.1 * ms  # running average for the readout
        captions = [f"{o['label']} {o['confidence']:.0%}" for o in out]
        drawn = draw_faces(bgr[..., ::-1], [o["box"] for o in out], captions)
        return np.asarray(drawn)[..., ::-1].copy()

    def snapshot(self) -> tuple[list[dict], int, float]:
        """(faces of the latest frame, frames analysed, ms per frame), read together."""
        with self.lock:
            return list(self.faces), self.frames, self.ms


# ----------------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_core.predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="model checkpoint (default: %(default)s)")
    ap.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    ap.add_argument("--format", choices=("csv", "json"), default="json")
    ap.add_argument("--fps", type=positive_float(limit=120.0), default=5.0, help="video clips: frames analysed per second of video")
    ap.add_argument("--annotated", metavar="OUT", help="video clips: write the sampled frames, boxed, to OUT (.mp4, ...)")
    args = ap.parse_args(argv)
    from . import video

    if args.annotated:  # checked before the model loads: an output that would destroy an input is refused first
        try:
            if not any(video.is_video_path(p) for p in args.paths):
                raise DataError("--annotated writes a boxed copy of a video clip; no clip was given")
            check_output_file(args.annotated, args.paths, "--annotated")
        except DataError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2

    from .checkpoint import CheckpointError, load_model

    try:
        model, prep = load_model(args.checkpoint)
    except CheckpointError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    if any(video.is_video_path(p) for p in args.paths):  # clips get per-frame rows and tracks (fer_core.video)
        return video.cli(model, prep, args)
    rows = predict_paths(model, prep, args.paths, tta=args.tta)
    if args.format == "json":
        sys.stdout.write("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")  # a row per line
    else:
        sys.stdout.write(rows_to_csv(rows, tuple(model.classes)))
    failed = sum("error" in r for r in rows)
    if failed:
        print(f"{failed} of {len({r['file'] for r in rows})} files failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
