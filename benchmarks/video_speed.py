"""Speed of the video path: seconds of video analysed per wall-clock second (aim: >= 1x, real time, at 5
sampled frames per second for a 640x480 clip with 3 faces on 2 cores).

    python benchmarks/video_speed.py [--seconds 10] [--fps 5] [--checkpoint checkpoints/fer_best.pt] [--threads N]

The clip is made here: 640x480, 30 frames/s, mp4v, three FER sample faces (~120 px) drifting over a noisy
background. Also printed, measured in the same run: decoding alone with OpenCV (the backend fer_core.video
uses) and with PyAV (when installed), so the ratio says what the face pipeline costs on top of decoding.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.checkpoint import load_model  # noqa: E402
from fer_core import video  # noqa: E402

PLACES = [(60, 80, 130, 1), (260, 200, 120, -1), (450, 60, 110, 1)]  # x, y, side, drift direction


def make_clip(path: Path, seconds: float, rate: int = 30) -> Path:
    with np.load(ROOT / "samples" / "fer2013_sample.npz") as z:
        faces = z["test_x"][[0, 257, 364]]
    bg = np.clip(np.random.default_rng(0).normal(120, 15, (480, 640)), 0, 255).astype(np.uint8)
    ups = [np.asarray(Image.fromarray(f).resize((s, s), Image.Resampling.BICUBIC)) for f, (_, _, s, _) in
           zip(faces, PLACES)]
    w = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), rate, (640, 480))
    for k in range(int(seconds * rate)):
        g = bg.copy()
        for up, (x, y, s, d) in zip(ups, PLACES):
            x = x + d * (k % 60)  # drift 60 px and jump back: faces move, tracks must follow
            g[y : y + s, x : x + s] = up
        w.write(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    w.release()
    return path


def timed(fn):
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def decode_opencv(path):
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    return n


def decode_pyav(path):
    import av

    with av.open(str(path)) as c:
        return sum(1 for f in c.decode(video=0) if f.to_ndarray(format="rgb24") is not None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "fer_best.pt"))
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length")
    ap.add_argument("--fps", type=float, default=5.0, help="frames analysed per second of video")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, prep = load_model(args.checkpoint)
    cpu = cpu_name()
    print(f"CPU: {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        clip = make_clip(Path(d) / "bench.mp4", args.seconds)
        n, wall, c = timed(lambda: decode_opencv(clip))
        print(f"decode only, OpenCV FFmpeg: {n} frames in {wall:.2f} s ({n / wall:.0f} frames/s, CPU {c:.2f} s)")
        try:
            n2, wall2, c2 = timed(lambda: decode_pyav(clip))
            print(f"decode only, PyAV:          {n2} frames in {wall2:.2f} s ({n2 / wall2:.0f} frames/s, CPU {c2:.2f} s)"
                  f" -> OpenCV/PyAV time ratio {wall / wall2:.2f}")
        except ImportError:
            print("decode only, PyAV: not installed")
        video.analyze(model, prep, clip, fps=args.fps, max_duration=1e9)  # warm-up (first-call allocations)
        res, wall3, c3 = timed(lambda: video.analyze(model, prep, clip, fps=args.fps, max_duration=1e9))
    faces = len(res.rows) / max(1, res.sampled)
    print(f"analyse at {args.fps:g} frames/s: {res.sampled} frames ({faces:.1f} faces each, {len(res.tracks)} tracks) "
          f"in {wall3:.2f} s wall, CPU {c3:.2f} s")
    print(f"-> {res.sampled / wall3:.1f} sampled frames/s, {args.seconds / wall3:.2f}x real time "
          f"(video seconds per wall second; aim >= 1); {1000 * wall3 / res.sampled:.0f} ms per sampled frame; "
          f"analysis/decode-only time ratio {wall3 / wall:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
