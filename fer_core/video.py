"""Video files: an emotion timeline for every face in a clip.

    python -m fer_core.predict clip.mp4 [--fps 5] [--format csv|json] [--annotated out.mp4]

(fer_core.predict is the one command line entry: it checks the arguments, loads the model and hands clips to
`cli` here.) Frames are decoded with OpenCV's FFmpeg backend (bundled in opencv-python-headless: no system
ffmpeg) and sampled by their timestamps at `fps` per second, so variable-frame-rate clips keep true times. Every
sampled frame goes through the photo pipeline (faces.find_faces, classify.classify_faces); faces are linked into
tracks with ids by box overlap (tracking.Smoother, as for the live webcam). Output: one row per (frame, track)
and a summary per track (share of its frames in each expression).
"""
from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .images import DataError
from .sources import CLASSES, IMAGE_EXTENSIONS
from .classify import classify_faces
from .faces import draw_faces, find_faces
from .text import csv_writer, one_line
from .tracking import Smoother

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v")
DEFAULT_FPS = 5.0
MAX_DURATION_S = 600.0  # 10 minutes: longer clips are refused (analyse a cut instead), never silently cut short
ANALYSIS_SIDE = 1280  # frames with a longer side are downscaled to this before detection (boxes map back)
MAX_INPUT_SIDE = 7680  # 8K: larger frames are refused (one decoded frame alone would be >100 MB)
VFR_TOLERANCE = 0.25  # frame intervals varying more than this (relative) mark the clip variable-frame-rate
# writer codec by the output's extension: what opencv-python-headless's bundled FFmpeg can encode here
# (avc1/H.264 is not among them; browsers play VP8 .webm, so the dashboard writes that)
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".webm": "VP80"}


class VideoError(DataError):
    """A clip that cannot be analysed; the message names the file and says why, in one line."""


@dataclass
class VideoInfo:
    name: str
    width: int
    height: int
    fps: float  # from the header (an average for variable-frame-rate clips)
    frames: int  # from the header; may be wrong for truncated or variable-frame-rate files
    duration: float  # seconds, from the header
    scale: float  # analysis scale (1.0, or < 1 when downscaled to ANALYSIS_SIDE)


@dataclass
class VideoResult:
    info: VideoInfo
    rows: list[dict]  # one per (sampled frame, face)
    tracks: list[dict]  # one summary per track
    sampled: int  # frames analysed
    times: list[float]  # time (s) of every analysed frame
    notes: list[str] = field(default_factory=list)  # one-line remarks: downscaled, variable frame rate, truncated
    crops: dict = field(default_factory=dict, repr=False)  # (frame index, track) -> (48, 48) uint8


def is_video_path(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _open(path, name: str) -> tuple[cv2.VideoCapture, VideoInfo]:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{name}: no such file")
    if p.stat().st_size == 0:
        raise VideoError(f"{name}: empty file (0 bytes), not a video")
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(f"{name}: an image, not a video (classify it as a photo)")
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise VideoError(f"{name}: not a video OpenCV/FFmpeg can read (not a video file, corrupt or truncated)")
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if w <= 0 or h <= 0:
        cap.release()
        raise VideoError(f"{name}: no video stream (audio only, or corrupt)")
    if max(w, h) > MAX_INPUT_SIDE:
        cap.release()
        raise VideoError(f"{name}: {w}x{h} is larger than the {MAX_INPUT_SIDE} px limit; downscale it first")
    duration = n / fps if fps > 0 and n > 0 else 0.0
    scale = min(1.0, ANALYSIS_SIDE / max(w, h))
    return cap, VideoInfo(name, w, h, fps, n, duration, scale)


def probe(path, name: str | None = None) -> VideoInfo:
    """Header facts of a clip; raises VideoError for files that are not readable videos."""
    cap, info = _open(path, name or str(path))
    cap.release()
    return info


def iter_frames(path, fps: float = DEFAULT_FPS, name: str | None = None, max_duration: float = MAX_DURATION_S,
                info_out: list | None = None):
    """Yield (time s, RGB frame (H, W, 3) uint8 at analysis scale) every 1/fps seconds of video time.

    Frames are picked by their presentation timestamps, not by index, so a variable frame rate keeps true
    times. Frames in between are grabbed but not converted (cheap). `info_out` (a list) receives the
    VideoInfo first and, at the end, a dict with what decoding found (decoded, intervals)."""
    name = name or str(path)
    if fps <= 0:
        raise VideoError(f"{name}: --fps must be > 0 (got {fps:g})")
    cap, info = _open(path, name)
    if info.duration > max_duration:
        cap.release()
        raise VideoError(f"{name}: its header says {info.frames} frames at {info.fps:.3g} frames/s, "
                         f"{info.duration / 60:.1f} min; the limit is {max_duration / 60:.1f} min (cut it shorter; "
                         "if it is shorter, its header or time base is wrong: re-encode it)")
    if info_out is not None:
        info_out.append(info)
    stats = {"decoded": 0, "intervals": [], "last_t": 0.0}
    step, next_t, prev, i = 1.0 / fps, 0.0, None, 0
    try:
        while cap.grab():
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if i > 0 and (prev is None or t <= prev):  # no usable timestamps: fall back to the nominal rate
                t = i / info.fps if info.fps > 0 else (prev or 0.0) + step
            if prev is not None:
                stats["intervals"].append(t - prev)
            prev, i = t, i + 1
            stats["decoded"], stats["last_t"] = i, t
            if t > max_duration:  # header lied about the length
                raise VideoError(f"{name}: clip runs past the {max_duration / 60:.1f} min limit")
            if t + 1e-6 < next_t:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                continue
            if info.scale < 1.0:
                bgr = cv2.resize(bgr, (round(info.width * info.scale), round(info.height * info.scale)),
                                 interpolation=cv2.INTER_AREA)
            yield t, np.ascontiguousarray(bgr[..., ::-1])
            while next_t <= t + 1e-6:
                next_t += step
    finally:
        cap.release()
        if info_out is not None:
            info_out.append(stats)


def read_frame(path, t: float, name: str | None = None) -> np.ndarray:
    """The RGB frame at (the first timestamp >= ) t seconds, at analysis scale: for "show me that frame".

    Seeks to a second before t (FFmpeg lands on a keyframe at or before it), then steps frame by frame."""
    name = name or str(path)
    cap, info = _open(path, name)
    try:
        if t > 1.0:
            cap.set(cv2.CAP_PROP_POS_MSEC, (t - 1.0) * 1000)
        i = 0
        while cap.grab():
            ft = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            i += 1
            if ft + 1e-3 >= t or (i > 1 and ft <= 0):  # reached it (or no timestamps: take what is here)
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    if info.scale < 1.0:
                        bgr = cv2.resize(bgr, (round(info.width * info.scale), round(info.height * info.scale)),
                                         interpolation=cv2.INTER_AREA)
                    return np.ascontiguousarray(bgr[..., ::-1])
    finally:
        cap.release()
    raise VideoError(f"{name}: no frame at {t:.2f} s")


def analyze(model, prep, path, fps: float = DEFAULT_FPS, name: str | None = None, tta: bool = False,
            max_duration: float = MAX_DURATION_S, min_face: int = 40, alpha: float = 0.5,
            progress=None, annotated: str | Path | None = None) -> VideoResult:
    """Every face in every sampled frame, classified and linked into tracks.

    progress(done_seconds, total_seconds) is called after each sampled frame. `annotated`: also write the
    sampled frames with boxes and labels as a clip there (atomically: a temporary file renamed at the end,
    removed on failure)."""
    name = name or str(path)
    classes = tuple(getattr(model, "classes", CLASSES))
    smoother = Smoother(alpha=alpha, threshold=0.0, min_iou=0.3, max_missing=max(2, round(fps)), classes=classes)
    meta: list = []
    rows, times, crops = [], [], {}
    writer, tmp = None, None
    try:
        for k, (t, rgb) in enumerate(iter_frames(path, fps, name, max_duration, info_out=meta)):
            info = meta[0]
            faces = find_faces(rgb, name=name, whole_image=False, required=False, min_face=min_face)
            res = classify_faces(model, prep, faces, file=name, tta=tta)
            smoothed = smoother.update([r.box for r in res], [[r.probabilities[c] for c in classes] for r in res])
            for r, s in zip(res, smoothed):
                box = [int(round(v / info.scale)) for v in r.box]  # back to the clip's own pixels
                rows.append({"file": name, "frame": k, "time": round(t, 3), "track": s["track"], "box": box,
                             "label": r.label, "smoothed_label": s["label"], "probabilities": r.probabilities})
                crops[(k, s["track"])] = r.face48
            times.append(t)
            if annotated is not None:
                if writer is None:
                    writer, tmp = _open_writer(annotated, rgb.shape[1], rgb.shape[0], fps)
                caps = [f"#{s['track']} {r.label} {r.probabilities[r.label]:.0%}" for s, r in zip(smoothed, res)]
                drawn = np.asarray(draw_faces(rgb, [r.box for r in res], caps))
                writer.write(np.ascontiguousarray(drawn[..., ::-1]))
            if progress is not None:
                progress(t, info.duration)
        if not meta:
            raise VideoError(f"{name}: could not be analysed")
        info, stats = meta[0], meta[-1] if len(meta) > 1 else {"decoded": 0, "intervals": [], "last_t": 0.0}
        if not times:
            raise VideoError(f"{name}: no frame could be decoded (zero-length, corrupt or truncated clip)")
        notes = _notes(info, stats)
        if writer is not None:
            writer.release()
            writer = None
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp made it private; the result is an ordinary file
            os.replace(tmp, annotated)
            tmp = None
    finally:
        if writer is not None:
            writer.release()
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    if not rows:
        notes.append(f"no face found in any of the {len(times)} sampled frames")
    return VideoResult(info, rows, summarize(rows, classes, times), len(times), times, notes, crops)


def _notes(info: VideoInfo, stats: dict) -> list[str]:
    notes = []
    if info.scale < 1.0:
        notes.append(f"{info.width}x{info.height} downscaled to {round(info.width * info.scale)}x"
                     f"{round(info.height * info.scale)} for detection (limit {ANALYSIS_SIDE} px); boxes are "
                     "in the clip's own pixels")
    iv = np.asarray(stats["intervals"], float)
    if len(iv) >= 3 and np.median(iv) > 0 and (iv.max() - iv.min()) / np.median(iv) > VFR_TOLERANCE:
        notes.append(f"{info.name}: variable frame rate ({1 / iv.max():.1f} to {1 / max(iv.min(), 1e-6):.1f} "
                     "frames/s); frames were sampled by their timestamps")
    if info.frames > 0 and stats["decoded"] < 0.9 * info.frames:
        notes.append(f"{info.name}: only {stats['decoded']} of the {info.frames} frames its header announces "
                     f"could be decoded (truncated or damaged?); results cover the first {stats['last_t']:.1f} s")
    return notes


def _open_writer(out, w: int, h: int, fps: float):
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in FOURCC:
        raise VideoError(f"{out}: annotated clip must end in one of {', '.join(FOURCC)}")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=ext, dir=out.parent if str(out.parent) else ".")
    os.close(fd)
    wr = cv2.VideoWriter(tmp, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*FOURCC[ext]), fps, (w, h))
    if not wr.isOpened():
        os.remove(tmp)
        raise VideoError(f"{out}: OpenCV cannot write {FOURCC[ext]} video here")
    return wr, tmp


def summarize(rows: list[dict], classes=CLASSES, times=None) -> list[dict]:
    """Per track: frames seen, first/last time, share of its frames in each expression, mean probabilities."""
    out = []
    for tid in sorted({r["track"] for r in rows}):
        rs = [r for r in rows if r["track"] == tid]
        labels = [r["label"] for r in rs]
        out.append({"track": tid, "frames": len(rs), "start": rs[0]["time"], "end": rs[-1]["time"],
                    "dominant": max(classes, key=labels.count),
                    "share": {c: labels.count(c) / len(rs) for c in classes},
                    "mean_probabilities": {c: float(np.mean([r["probabilities"][c] for r in rs])) for c in classes}})
    return out


def rows_to_csv(rows: list[dict], classes=CLASSES) -> str:
    """One line per (frame, track): file, frame, time, track, box, label, smoothed_label, the 7 probabilities."""
    import io
    import json

    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["file", "frame", "time", "track", "box", "label", "smoothed_label", *classes])
    for r in rows:
        w.writerow([r["file"], r["frame"], f"{r['time']:.3f}", r["track"], json.dumps(r["box"]), r["label"],
                    r["smoothed_label"], *[f"{r['probabilities'][c]:.6f}" for c in classes]])
    return buf.getvalue()


class TerminalProgress:
    """A tqdm bar on stderr when it is a terminal (video seconds done of the clip's length), silent otherwise."""

    def __init__(self, name: str):
        self.bar, self.name = None, name
        self.tty = sys.stderr.isatty()

    def __call__(self, done: float, total: float) -> None:
        if not self.tty:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total, 1) or None, desc=Path(self.name).name, unit="s", leave=False)
        self.bar.n = round(min(done, total) if total else done, 1)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def cli(model, prep, args) -> int:
    """`python -m fer_core.predict clip.mp4 ...` once fer_core.predict.main has checked the arguments (clips
    only; --annotated with one clip) and loaded the model: rows on stdout once every clip is analysed (nothing
    half written), one-line messages on stderr; exit 1 if any clip failed or had no face."""
    import json

    classes = tuple(getattr(model, "classes", CLASSES))
    rows, failed = [], 0
    for path in args.paths:
        bar = TerminalProgress(path)
        try:
            res = analyze(model, prep, path, fps=args.fps, name=path, tta=args.tta, progress=bar,
                          annotated=args.annotated)
        except DataError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        except Exception as e:  # noqa: BLE001 - an odd clip is a message, not a traceback
            print(f"error: {path}: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
            failed += 1
            continue
        finally:
            bar.close()
        for n in res.notes:
            print(f"note: {n}", file=sys.stderr)
        failed += not res.rows
        for t in res.tracks:
            share = ", ".join(f"{c} {v:.0%}" for c, v in sorted(t["share"].items(), key=lambda kv: -kv[1]) if v)
            print(f"{path}: track {t['track']}: {t['frames']} frames, {t['start']:.1f}-{t['end']:.1f} s: {share}",
                  file=sys.stderr)
        rows += res.rows
    if args.format == "json":
        sys.stdout.write("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    else:
        sys.stdout.write(rows_to_csv(rows, classes))
    return 1 if failed else 0
