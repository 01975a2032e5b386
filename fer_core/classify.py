"""Classify every face in one image: detection (fer_core.faces), then one batched forward pass
(fer_core.inference). The library API under the Classify page, the batch CLI (fer_core.predict), video clips
(fer_core.video) and the live webcam (fer_core.live).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sources import CLASSES
from .faces import Face, find_faces
from .images import open_image
from .inference import predict_proba


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
