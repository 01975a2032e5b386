"""Face tracking across frames: faces matched by box overlap (IoU) into tracks with ids, each track's probabilities
smoothed, and the "uncertain" decision. Shared by the live webcam (fer_core.live) and video clips
(fer_core.video); no detection or model here, only boxes and probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sources import CLASSES

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
    id: int  # 0, 1, 2, ... in order of first appearance; never reused within one Smoother
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
        self._next_id = 0

    def update(self, boxes, probs) -> list[dict]:
        """One frame's boxes and (N, C) probabilities -> per face {track (its id), box, probabilities, label,
        confidence, frames}, in the order given. Greedy matching: best overlaps first."""
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
                t = Track(self._next_id, tuple(b), probs[i].copy())
                self._next_id += 1
            new_tracks.append(t)
            label, conf = decide(t.probs, self.threshold, self.classes)
            out.append({"track": t.id, "box": t.box, "probabilities": t.probs.copy(), "label": label,
                        "confidence": conf, "frames": t.frames})
        for j, t in enumerate(self.tracks):
            if j not in used and t.missing + 1 < self.max_missing:
                t.missing += 1
                new_tracks.append(t)  # kept briefly: a face lost for a frame or two keeps its history
        self.tracks = new_tracks
        return out
