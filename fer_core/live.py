"""The live webcam stream: each frame's faces found and classified (fer_core.classify), tracked and smoothed
over frames with "uncertain" below a threshold (fer_core.tracking); the part of the webcam path that needs no
browser.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .classify import classify_faces
from .sources import CLASSES
from .faces import draw_faces, find_faces
from .tracking import Smoother


class LiveClassifier:
    """Frame -> smoothed per-face results."""

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
