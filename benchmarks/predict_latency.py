"""CPU latency of the photo/webcam path: per-face classification and a 640x480 frame's detect + classify.

    python benchmarks/predict_latency.py [--checkpoint checkpoints/fer_best.pt] [--runs 200] [--threads N]

Medians of many runs after a warm-up. Aims (issue 5): under 5 ms per face and under 40 ms per frame on
2 cores. The frame is a webcam-sized picture with 3 FER faces (~120 px) pasted onto a noisy background.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.checkpoint import load_model  # noqa: E402
from fer_core.classify import classify_faces  # noqa: E402
from fer_core.faces import detect_faces, detect_yunet, find_faces  # noqa: E402
from fer_core.inference import cpu_native_bf16, inference_precision, predict_proba  # noqa: E402
from fer_core.live import LiveClassifier  # noqa: E402


def webcam_frame(faces: np.ndarray, seed: int = 0) -> np.ndarray:
    """(480, 640, 3) uint8 RGB with three upscaled faces, like a frame of a video call."""
    rng = np.random.default_rng(seed)
    g = np.clip(rng.normal(120, 15, (480, 640)), 0, 255).astype(np.uint8)
    for face, (x, y, s) in zip(faces, [(60, 80, 130), (260, 200, 120), (450, 60, 110)]):
        g[y : y + s, x : x + s] = np.asarray(Image.fromarray(face).resize((s, s), Image.Resampling.BICUBIC))
    return np.repeat(g[..., None], 3, axis=2)


CPU_TIMES: dict[str, float] = {}


def median_ms(fn, runs: int, warmup: int = 5, name: str = "") -> float:
    """Median wall time in ms; the median CPU time (all threads) goes to CPU_TIMES[name]: on a busy machine
    wall time counts waiting for a core, CPU time does not."""
    for _ in range(warmup):
        fn()
    times, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU_TIMES[name] = statistics.median(cpu) * 1000
    return statistics.median(times) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "fer_best.pt"))
    ap.add_argument("--runs", type=int, default=200, help="timed runs per measurement (frames: a quarter)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    model, prep = load_model(args.checkpoint)
    with np.load(ROOT / "samples" / "fer2013_sample.npz") as z:
        sample = z["test_x"]
    # faces the cascade finds when pasted (angry, happy, sad): the frame has 3 faces to classify
    frame = webcam_frame(sample[[0, 257, 364]])
    n_found = len(find_faces(frame, required=False))

    one = sample[:1]
    batch8 = sample[:8]
    gray = frame[..., 0].copy()
    @torch.inference_mode()
    def as_loaded(faces):  # the path before the fast twin: the fp32 model as loaded, batch norm not folded
        return torch.softmax(model(prep(faces).contiguous(memory_format=torch.channels_last)), 1)

    base_face = median_ms(lambda: as_loaded(one), args.runs, name="base")
    fp32_face = median_ms(lambda: predict_proba(model, prep, one, precision="fp32"), args.runs, name="fp32")
    per_face = median_ms(lambda: predict_proba(model, prep, one), args.runs, name="face")
    per_face_tta = median_ms(lambda: predict_proba(model, prep, one, tta=True), args.runs, name="tta")
    per_face_b8 = median_ms(lambda: predict_proba(model, prep, batch8), args.runs // 2, name="b8") / 8
    CPU_TIMES["b8"] /= 8
    fr = max(20, args.runs // 4)
    detect = median_ms(lambda: detect_faces(gray), fr, name="detect")  # Haar cascade, photo settings
    n_yunet = len(detect_yunet(gray))
    detect_yn = median_ms(lambda: detect_yunet(gray), fr, name="detect_yunet")  # the default detector
    n_haar = len(detect_faces(gray))
    blank = np.full_like(gray, 120)  # a frame without a face: YuNet's padded retry and the cascade also run
    empty_ms = median_ms(lambda: find_faces(blank, required=False), fr, name="empty")
    frame_ms = median_ms(lambda: classify_faces(model, prep, find_faces(frame, required=False)), fr, name="frame")
    live = LiveClassifier(model, prep)  # the webcam stream's settings: faces >= 60 px, coarser scale steps
    n_live = len(live(frame))
    live_ms = median_ms(lambda: live(frame), fr, name="live")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"checkpoint: {args.checkpoint} ({model.checkpoint.get('model_name')}, "
          f"{sum(p.numel() for p in model.parameters()):,} params)")
    print(f"cpu: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average {load:.2f}")
    prec = inference_precision("cpu")
    print(f"native bf16: {cpu_native_bf16()}; predictions run in {prec} (FER_PRECISION=fp32 to force fp32)")
    print("                                     wall ms   cpu ms (medians)")
    print(f"per face, batch of 1, model as loaded {base_face:6.2f} {CPU_TIMES['base']:8.2f}   (fp32, batch norm "
          f"not folded: the baseline)")
    print(f"per face, batch of 1, fp32 twin    {fp32_face:8.2f} {CPU_TIMES['fp32']:8.2f}   ({base_face / fp32_face:.2f}x "
          "the baseline; batch norm folded, conv+ReLU fused)")
    print(f"per face, batch of 1 ({prec:>4})      {per_face:8.2f} {CPU_TIMES['face']:8.2f}   ({args.runs} runs; "
          f"{base_face / per_face:.2f}x the baseline)")
    print(f"per face, batch of 1 + TTA         {per_face_tta:8.2f} {CPU_TIMES['tta']:8.2f}")
    print(f"per face, in a batch of 8          {per_face_b8:8.2f} {CPU_TIMES['b8']:8.2f}")
    print("640x480 frame, photo settings:")
    print(f"  detect only, YuNet (default)     {detect_yn:8.2f} {CPU_TIMES['detect_yunet']:8.2f}   ({n_yunet} faces)")
    print(f"  detect only, Haar cascade        {detect:8.2f} {CPU_TIMES['detect']:8.2f}   ({n_haar} faces)"
          f"   YuNet/Haar {detect_yn / detect:.2f}x")
    print(f"  find_faces on a face-free frame  {empty_ms:8.2f} {CPU_TIMES['empty']:8.2f}   (YuNet, padded YuNet, Haar)")
    print(f"  detect + classify                {frame_ms:8.2f} {CPU_TIMES['frame']:8.2f}   ({n_found} faces)")
    print("640x480 frame, live webcam settings (LiveClassifier):")
    print(f"  detect + classify + smooth       {live_ms:8.2f} {CPU_TIMES['live']:8.2f}   ({n_live} faces)")
    print(f"aims: < 5 ms per face [{'met' if per_face < 5 else 'MISSED'}], "
          f"< 40 ms per live frame [{'met' if live_ms < 40 else 'MISSED'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
