"""Faces in photos and webcam frames: detect, crop, convert to the model's 48x48 input.

Detection is OpenCV's Haar cascade `haarcascade_frontalface_alt2` (ships with opencv-python-headless 4.x, works
offline). alt2 rather than `default`: on FER faces pasted into photos it found as many faces and, unlike
`default`, no false positives on scikit-image's face-free pictures (coffee, rocket, cat, ...).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data import DataError, to_face48, to_gray

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
MIN_SIDE = 24  # images smaller than this on either side cannot hold a usable face
# Whole-image fallback: a small, near-square image without a detection is taken as a tight face crop
# (FER-style data, an already-cropped avatar). Larger or elongated images get "no face found" instead.
TIGHT_MAX_SIDE = 256
TIGHT_MAX_ASPECT = 1.3
BLANK_STD = 4.0  # a (near) uniform image is not a face, whatever its size


class NoFaceError(DataError):
    """No usable face in an image; the message names the file and says why."""


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the (EXIF-rotated) image; the crop before the margin
    source: str  # "detected" or "whole_image"
    score: float | None  # detector neighbours (hits merged into this box); None for the whole image
    face48: np.ndarray = field(repr=False)  # (48, 48) uint8: what the model sees


_local = threading.local()  # a CascadeClassifier must not be shared between threads (page vs webcam thread)


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
    # rows of faces: sort by the row a face's centre falls in (one median face tall), then by x
    if out:
        row = max(1, int(np.median([b[3] for b, _ in out])))
        out.sort(key=lambda bn: ((bn[0][1] + bn[0][3] // 2) // row, bn[0][0]))
    return out


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


def is_tight_crop(w: int, h: int) -> bool:
    return max(w, h) <= TIGHT_MAX_SIDE and max(w, h) / max(1, min(w, h)) <= TIGHT_MAX_ASPECT


def find_faces(image, name: str = "image", whole_image: bool = True, required: bool = True,
               min_face: int = MIN_FACE, min_neighbors: int = MIN_NEIGHBORS, margin: float = MARGIN,
               scale_factor: float = SCALE_FACTOR) -> list[Face]:
    """Every face in a PIL image or array (any mode), ready for the model.

    No detection: a tight face crop (small, near square) is used whole if `whole_image`; otherwise
    NoFaceError if `required`, else [] (a webcam frame without a face is not an error).
    """
    gray = to_gray(image)
    h, w = gray.shape
    if min(h, w) < MIN_SIDE:
        if not required:
            return []
        raise NoFaceError(f"{name}: image is {w}x{h} pixels, too small to hold a face (needs {MIN_SIDE}x{MIN_SIDE})")
    faces = [Face(b, "detected", n, crop_face(gray, b, margin))
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


def draw_faces(image, boxes, captions=None, color=(255, 64, 64)) -> Image.Image:
    """RGB copy of an image with each box drawn and numbered 1, 2, ... (plus an optional caption each)."""
    img = to_rgb(image)
    d = ImageDraw.Draw(img)
    lw = max(2, round(max(img.size) / 300))
    size = max(12, round(max(img.size) / 35))
    font = _font(size)
    for i, (x, y, w, h) in enumerate(boxes):
        d.rectangle([x, y, x + w, y + h], outline=color, width=lw)
        text = f"{i + 1}" + (f" {captions[i]}" if captions else "")
        tx, ty = x, max(0, y - size - 2 * lw)  # label above the box, inside the image at the top edge
        left, top, right, bottom = d.textbbox((tx, ty), text, font=font)
        d.rectangle([left - lw, top - lw, right + lw, bottom + lw], fill=color)
        d.text((tx, ty), text, fill=(255, 255, 255), font=font)
    return img


def overlay_heatmap(face48: np.ndarray, heat: np.ndarray, alpha: float = 0.5, size: int = 144) -> np.ndarray:
    """A 48x48 face with a [0, 1] heat map blended on top (JET colours) -> (size, size, 3) uint8 RGB."""
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0, 1)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]  # BGR -> RGB
    base = np.repeat(face48[..., None], 3, axis=2).astype(np.float32)
    out = (1 - alpha) * base + alpha * colored.astype(np.float32)
    return cv2.resize(np.clip(out, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
