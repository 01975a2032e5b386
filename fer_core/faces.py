"""Faces in photos and webcam frames: detect, crop, convert to the model's 48x48 input.

Default detector: YuNet (`cv2.FaceDetectorYN`, a 232 KB ONNX file shipped in fer_core/assets/, Apache-2.0, from
ShiqiYu/libfacedetection.train; see assets/NOTICE). It finds frame-filling, tilted and dark faces the cascade
misses and gives 5 landmarks (eyes, nose, mouth corners) used to level the face. Fallback:
OpenCV's Haar cascade `haarcascade_frontalface_alt2` (ships with opencv-python-headless 4.x, works
offline). alt2 rather than `default`: on FER faces pasted into photos it found as many faces and, unlike
`default`, no false positives on scikit-image's face-free pictures (coffee, rocket, cat, ...).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import DataError, to_face48, to_gray

# Re-set OpenCV's thread count explicitly. Measured on a 2-core EPYC (benchmarks/predict_latency.py): with the
# pool OpenCV starts by default, PyTorch's convolutions that follow a YuNet detection ran 10x slower (3 faces:
# 292 ms instead of 23 ms) as the two thread pools fought over the cores; an explicit count (same number) avoids it.
cv2.setNumThreads(max(1, cv2.getNumThreads()))

CASCADE = "haarcascade_frontalface_alt2.xml"
WINDOW = 20  # alt2's detection window (px): the smallest face it can see
MIN_FACE = 40  # px in the photo; smaller faces are too small to classify from a 48x48 input anyway
MIN_NEIGHBORS = 4  # overlapping hits a detection needs: the false-positive filter
SCALE_FACTOR = 1.1  # photos; the live webcam uses 1.2 (half the time, ~4% fewer pasted FER faces found)
DETECT_MAX_SIDE = 960  # big photos are detected on a copy this size (speed); boxes map back to full size
# Margin (fraction of the box side, each side) around a detector box before the 48x48 resize. Measured: FER
# faces pasted into a canvas and re-detected match the original 48x48 best (correlation 0.718) at 0.0125;
# 0.1 drops it to 0.60. FER2013 itself was cut with an OpenCV detector, so its framing is the box's own.
MARGIN = 0.02
MAX_ASPECT = 12  # longest / shortest side: a 640 px detection copy keeps a short side of 53 px or more
MIN_SIDE = 24  # images smaller than this on either side cannot hold a usable face
# Whole-image fallback: a small, near-square image without a detection is taken as a tight face crop
# (FER-style data, an already-cropped avatar). Larger or elongated images get "no face found" instead.
TIGHT_MAX_SIDE = 256
TIGHT_MAX_ASPECT = 1.3
BLANK_STD = 4.0  # a (near) uniform image is not a face, whatever its size


YUNET_MODEL = Path(__file__).resolve().parent / "assets" / "face_detection_yunet_s.onnx"
YUNET_SCORE = 0.7  # confidence threshold: face-free scikit-image pictures stay empty (tested)
YUNET_NMS = 0.3
YUNET_MAX_SIDE = 640  # YuNet sees a copy whose long side is at most this (speed); boxes map back
# A face that fills the frame has no context around it and YuNet (trained on WIDER FACE) often misses it; it is
# found on a copy with this much border (fraction of the long side, each side) added.
YUNET_PAD = 0.25
YUNET_MIN_SIDE = 240  # smaller images are upscaled to this long side before YuNet
# A small image (at most TIGHT_MAX_SIDE) is most likely a face crop: it gets a second YuNet pass at this lower
# threshold before the cascade (half profiles, blurry 60 px crops); big pictures never do (false positives).
YUNET_SMALL_SCORE = 0.45
# Box-to-crop mapping, calibrated (scripts/calibrate_crop.py): 600 FER2013 Training faces upscaled 4x into a
# canvas and re-detected; the original 48x48 frame is, in medians, a square of CROP_SCALE * max(w, h) centred
# CROP_DY box heights below the box centre (IQR of the scale 0.88-1.07, of dy -0.04-0.02).
CROP_SCALE = 0.97
CROP_DY = -0.015
DETECTORS = ("yunet", "haar")  # default first; "haar" alone reproduces the old behaviour


class NoFaceError(DataError):
    """No usable face in an image; the message names the file and says why."""


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the (EXIF-rotated) image; the crop before the margin
    source: str  # "detected" or "whole_image"
    score: float | None  # YuNet confidence (0-1) or Haar neighbours; None for the whole image
    face48: np.ndarray = field(repr=False)  # (48, 48) uint8: what the model sees
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (5, 2) x, y: eyes, nose, mouth corners
    detector: str | None = None  # "yunet" | "haar" | None (whole image)


_local = threading.local()  # a CascadeClassifier must not be shared between threads (page vs webcam thread)


def _yunet() -> cv2.FaceDetectorYN:
    d = getattr(_local, "yunet", None)
    if d is None:
        d = cv2.FaceDetectorYN.create(str(YUNET_MODEL), "", (320, 320), YUNET_SCORE, YUNET_NMS, 5000)
        _local.yunet = d
    return d


def detect_yunet(gray: np.ndarray, min_face: int = MIN_FACE, score: float = YUNET_SCORE, pad: float = YUNET_PAD,
                 max_side: int = YUNET_MAX_SIDE) -> list[tuple[tuple[int, int, int, int], float, np.ndarray]]:
    """(H, W) uint8 -> [((x, y, w, h), confidence, (5, 2) landmarks)] in image coordinates.

    Runs on the image as is, and, when that finds nothing, on a copy with a border (frame-filling faces)."""
    H, W = gray.shape
    # big images shrink to max_side; small crops (a 45x38 face) grow to YUNET_MIN_SIDE, where YuNet sees them
    s = min(max_side / max(H, W), max(1.0, YUNET_MIN_SIDE / max(H, W)))
    small = gray if s == 1.0 else cv2.resize(gray, (round(W * s), round(H * s)),
                                             interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    min_face = min(min_face, int(0.5 * min(H, W)))  # a small image that is mostly face keeps its face
    det = _yunet()
    det.setScoreThreshold(score)
    out = []
    for p in (0.0, pad) if pad > 0 else (0.0,):
        b = int(round(p * max(small.shape)))
        img = small if b == 0 else cv2.copyMakeBorder(small, b, b, b, b, cv2.BORDER_CONSTANT, value=128)
        if b:  # keep the padded copy within max_side too
            k = min(1.0, max_side / max(img.shape))
            img = img if k >= 1.0 else cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)),
                                                  interpolation=cv2.INTER_AREA)
        else:
            k = 1.0
        det.setInputSize((img.shape[1], img.shape[0]))
        _, rows = det.detect(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
        for r in (rows if rows is not None else []):
            if not np.isfinite(r).all():  # degenerate inputs (a sliver of an image) can yield inf boxes
                continue
            # r: x, y, w, h, 5 landmarks (x, y), score; undo the border, then the two resizes
            x, y = r[0] / k - b, r[1] / k - b
            bw, bh = r[2] / k, r[3] / k
            lm = (r[4:14].reshape(5, 2) / k - b) / s  # (5, 2): right eye, left eye, nose, mouth right, left
            box = (int(round(x / s)), int(round(y / s)), int(round(bw / s)), int(round(bh / s)))
            if box[2] >= min_face:
                out.append((box, float(r[14]), lm.astype(np.float32)))
        if out:
            break
    return out


def _cascade() -> cv2.CascadeClassifier:
    c = getattr(_local, "cascade", None)
    if c is None:
        c = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if c.empty():
            raise RuntimeError(f"OpenCV cascade {CASCADE} not found in {cv2.data.haarcascades}")
        _local.cascade = c
    return c


def detect_scale(h: int, w: int, min_face: int = MIN_FACE, max_side: int = DETECT_MAX_SIDE) -> float:
    """Downscale factor for detection: the minimum face maps to the cascade window (no time spent on faces
    too small to keep), small images keep at least 160 px, and nothing is detected above max_side."""
    long = max(h, w)
    s = min(1.0, max(WINDOW / max(min_face, WINDOW), 160 / long))
    return min(s, max_side / long)


def detect_faces(gray: np.ndarray, min_face: int = MIN_FACE, min_neighbors: int = MIN_NEIGHBORS,
                 max_side: int = DETECT_MAX_SIDE, scale_factor: float = SCALE_FACTOR
                 ) -> list[tuple[tuple[int, int, int, int], float]]:
    """(H, W) uint8 -> [((x, y, w, h), neighbours)] in reading order (top-to-bottom rows, then left-to-right)."""
    h, w = gray.shape
    s = detect_scale(h, w, min_face, max_side)
    small = gray if s >= 1.0 else cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))),
                                             interpolation=cv2.INTER_AREA)
    min_px = max(WINDOW, int(min_face * s))
    if min(small.shape) < min_px:
        return []
    rects, hits = _cascade().detectMultiScale2(small, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                               minSize=(min_px, min_px))
    out = []
    for (x, y, bw, bh), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(hits).reshape(-1)):
        box = (int(round(x / s)), int(round(y / s)), int(round(bw / s)), int(round(bh / s)))
        if box[2] >= min_face:
            out.append((box, float(n)))
    return _reading_order(out)


def _reading_order(found: list) -> list:
    """Detections (box first) in rows of faces: by the row a face's centre falls in (one median face tall),
    then by x."""
    if found:
        row = max(1, int(np.median([f[0][3] for f in found])))
        found = sorted(found, key=lambda f: ((f[0][1] + f[0][3] // 2) // row, f[0][0]))
    return found


def crop_face(gray: np.ndarray, box, margin: float = MARGIN) -> np.ndarray:
    """Square crop around a box plus margin, edges replicated where it leaves the image -> (48, 48) uint8
    via the training data's own to_face48."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(1, int(round(side)))
    H, W = gray.shape
    x1, y1 = x0 + n, y0 + n
    sub = gray[max(0, y0) : min(H, y1), max(0, x0) : min(W, x1)]
    if sub.shape != (n, n):
        # replicate the edge where the square leaves the image, so the face stays centred instead of shifting
        sub = cv2.copyMakeBorder(sub, max(0, -y0), max(0, y1 - H), max(0, -x0), max(0, x1 - W), cv2.BORDER_REPLICATE)
    return to_face48(sub)


def crop_aligned(gray: np.ndarray, box, landmarks=None, scale: float = CROP_SCALE, dy: float = CROP_DY,
                 level: bool = True) -> np.ndarray:
    """FER2013-style crop: a square of scale * max(w, h) around the box centre (shifted dy box heights), turned so
    the eyes are level (landmarks 0 and 1) -> (48, 48) uint8. Edges are replicated where the square leaves the image."""
    x, y, w, h = box
    side = scale * max(w, h)
    cx, cy = x + w / 2, y + h / 2 + dy * h
    angle = 0.0
    if level and landmarks is not None:
        (rx, ry), (lx, ly) = np.asarray(landmarks, dtype=np.float64)[:2]
        angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))  # roll of the eye line
    n = int(round(min(side, 4 * 48)))  # warp straight to at most 192 px; to_face48 antialiases the rest
    k = n / side
    m = cv2.getRotationMatrix2D((cx, cy), angle, k)  # rotate about the face centre and scale ...
    m[:, 2] += (n / 2 - cx, n / 2 - cy)  # ... then move the face centre to the middle of the n x n output
    sub = cv2.warpAffine(gray, m, (n, n), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return to_face48(sub)


def is_tight_crop(w: int, h: int) -> bool:
    return max(w, h) <= TIGHT_MAX_SIDE and max(w, h) / max(1, min(w, h)) <= TIGHT_MAX_ASPECT


def find_faces(image, name: str = "image", whole_image: bool = True, required: bool = True,
               min_face: int = MIN_FACE, min_neighbors: int = MIN_NEIGHBORS, margin: float = MARGIN,
               scale_factor: float = SCALE_FACTOR, detector: str = "yunet", level: bool = True,
               crop_scale: float = CROP_SCALE, crop_dy: float = CROP_DY) -> list[Face]:
    """Every face in a PIL image or array (any mode), ready for the model.

    detector "yunet" (default): YuNet, then (small images) YuNet at a lower threshold, then the Haar cascade;
    "haar": the cascade alone. YuNet faces are cropped by crop_aligned (eyes levelled when `level`), cascade
    faces by crop_face with `margin`. No detection: a tight face crop (small, near square) is used whole if
    `whole_image`; otherwise NoFaceError if `required`, else [] (a webcam frame without a face is not an error).
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, not {detector!r}")
    gray = to_gray(image)
    h, w = gray.shape
    if min(h, w) < MIN_SIDE:
        if not required:
            return []
        raise NoFaceError(f"{name}: image is {w}x{h} pixels, too small to hold a face (needs {MIN_SIDE}x{MIN_SIDE})")
    if max(h, w) > MAX_ASPECT * min(h, w):  # shrunk for detection, its short side would be a pixel or two
        if not required:
            return []
        raise NoFaceError(f"{name}: image is {w}x{h} pixels, longer than {MAX_ASPECT}:1; crop it to the face")
    faces = []
    if detector == "yunet":
        found = detect_yunet(gray, min_face)
        if not found and max(h, w) <= TIGHT_MAX_SIDE:
            found = detect_yunet(gray, min_face, score=YUNET_SMALL_SCORE)
        faces = [Face(b, "detected", sc, crop_aligned(gray, b, lm, crop_scale, crop_dy, level), lm, "yunet")
                 for b, sc, lm in _reading_order(found)]
    if not faces:
        faces = [Face(b, "detected", n, crop_face(gray, b, margin), None, "haar")
                 for b, n in detect_faces(gray, min_face, min_neighbors, scale_factor=scale_factor)]
    if faces:
        return faces
    blank = float(gray.std()) < BLANK_STD
    if whole_image and is_tight_crop(w, h) and not blank:
        s = min(w, h)  # to_face48 keeps the centre square: report that as the box
        return [Face(((w - s) // 2, (h - s) // 2, s, s), "whole_image", None, to_face48(gray))]
    if not required:
        return []
    why = "the image is blank" if blank else f"no detection and {w}x{h} is not a tight face crop"
    raise NoFaceError(f"{name}: no face found ({why})")


# ----------------------------------------------------------------------------------------------
# Drawing


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def to_rgb(image) -> Image.Image:
    """Any PIL image or array as an RGB PIL image for display (16-bit scaled, transparency on white)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("P", "RGBA", "LA", "PA"):
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, img.convert("RGBA")).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(to_gray(img)).convert("RGB")
    return img.convert("RGB")


# landmark dots: eyes blue, nose yellow, mouth corners green
LANDMARK_COLORS = [(64, 200, 255), (64, 200, 255), (255, 220, 64), (120, 255, 120), (120, 255, 120)]


def draw_faces(image, boxes, captions=None, color=(255, 64, 64), landmarks=None) -> Image.Image:
    """RGB copy of an image with each box drawn and numbered 1, 2, ... (plus an optional caption each, and the
    detector's landmarks as dots where given: a list with a (5, 2) array or None per box)."""
    img = to_rgb(image)
    d = ImageDraw.Draw(img)
    lw = max(2, round(max(img.size) / 300))
    size = max(12, round(max(img.size) / 35))
    font = _font(size)
    for i, (x, y, w, h) in enumerate(boxes):
        d.rectangle([x, y, x + w, y + h], outline=color, width=lw)
        pts = landmarks[i] if landmarks is not None and i < len(landmarks) else None
        if pts is not None:
            r = max(2, round(w / 40))
            for (px, py), c in zip(np.asarray(pts), LANDMARK_COLORS):
                d.ellipse([px - r, py - r, px + r, py + r], fill=c)
        text = f"{i + 1}" + (f" {captions[i]}" if captions else "")
        tx, ty = x, max(0, y - size - 2 * lw)  # label above the box, inside the image at the top edge
        left, top, right, bottom = d.textbbox((tx, ty), text, font=font)
        d.rectangle([left - lw, top - lw, right + lw, bottom + lw], fill=color)
        d.text((tx, ty), text, fill=(255, 255, 255), font=font)
    return img
