"""One image at a time: open any file safely, convert any mode to grayscale, crop and scale to the 48x48
model input. Shared by the data loaders (fer_core.data), photo/webcam prediction and the pages."""
from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SIZE = 48
# Decompression-bomb guard: a phone photo is ~12-50 Mpx; anything above this is refused, not decoded.
MAX_PIXELS = 80_000_000
UPLOAD_MAX_PIXELS = 40_000_000  # photos sent to the dashboard: a 40 MP phone picture still fits
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


def open_regular(path, max_bytes: int | None = None, what: str = "this kind of file"):
    """`path` opened for binary reading only if it is a regular file (a FIFO, device or socket is refused
    without being opened, so nothing blocks) of at most `max_bytes` bytes: checked with stat before opening and
    again with fstat on what was opened (a file swapped in between is refused too). DataError for those;
    OSError (missing, no permission) as raised."""
    def check(st):
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path}: not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise DataError(f"{path}: {st.st_size:,} bytes, above the {max_bytes:,} byte limit for {what}")

    check(os.stat(path))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        check(os.fstat(fd))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, max_bytes: int, what: str = "this kind of file") -> bytes:
    """The whole of a regular file of at most `max_bytes` bytes (open_regular), never more than that read."""
    with open_regular(path, max_bytes, what) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew after the check
        raise DataError(f"{path}: more than {max_bytes:,} bytes, the limit for {what}")
    return data


def open_image(src, name: str | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a path, bytes or file object as a fully decoded PIL image, EXIF orientation applied.

    Raises DataError with a one-line message for non-images, truncated files and decompression bombs.
    """
    label = name or (str(src) if isinstance(src, (str, Path)) else "image")
    try:
        if isinstance(src, (bytes, bytearray)):
            src = io.BytesIO(src)
        if isinstance(src, (str, Path)):  # regular files only: a FIFO or a device named like a photo never blocks
            try:
                src = open_regular(src)
            except DataError as e:
                raise DataError(f"{label}: {str(e).rsplit(': ', 1)[-1]}") from None
            with src:
                return open_image(src, name=label, max_pixels=max_pixels)
        with warnings.catch_warnings():  # our own size check below gives the message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(src)
        w, h = img.size
        if w * h > max_pixels:  # checked from the header, before any pixel is decoded
            raise DataError(f"{label}: image is {w}x{h} pixels, above the {max_pixels:,} pixel limit")
        img.load()  # decode now so truncation errors surface here
        img = ImageOps.exif_transpose(img)
    except DataError:  # DataError is a ValueError: without this the pixel-limit message becomes "corrupt image"
        raise
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except Image.DecompressionBombError as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
        raise DataError(f"{label}: image has {size}, above the {MAX_PIXELS:,} pixel limit (decompression bomb guard)") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{label}: not an image file (or an unsupported image format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{label}: corrupt or truncated image ({e})") from None
    if img.width < 1 or img.height < 1:
        raise DataError(f"{label}: empty image")
    return img


def to_gray(img) -> np.ndarray:
    """Any PIL image or array (gray, RGB, RGBA, CMYK, palette, 16-bit) -> (H, W) uint8 grayscale."""
    if isinstance(img, np.ndarray):
        a = img
        if a.ndim == 3 and a.shape[2] == 4:
            a = a[..., :3]
        if a.dtype != np.uint8:
            a = a.astype(np.float64)
            hi = 65535.0 if a.max() > 255 else (1.0 if a.max() <= 1.0 else 255.0)
            a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if a.ndim == 3:
            # ITU-R 601-2 luma, the same weights PIL uses for "L"
            a = (a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114 + 0.5).astype(np.uint8)
        return np.ascontiguousarray(a)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        return np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA"):
        # transparent pixels become white, like an image viewer shows them. Gray and alpha are one byte a
        # pixel each: no full-size RGBA background or composite copies of a large photo
        alpha = img.getchannel("A")
        gray = img.convert("L")
        return np.asarray(Image.composite(gray, Image.new("L", img.size, 255), alpha), dtype=np.uint8)
    if img.mode != "L":
        img = img.convert("RGB").convert("L") if img.mode != "RGB" else img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def to_face48(img) -> np.ndarray:
    """A face image (PIL or array, any mode/size) -> (48, 48) uint8, the model's input.

    Non-square input is center-cropped to a square first so faces keep their proportions.
    """
    g = to_gray(img)
    if g.shape == (SIZE, SIZE):
        return g
    h, w = g.shape
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        g = g[top : top + s, left : left + s]
    # LANCZOS with reducing_gap: antialiased downscaling, fast for big crops
    return np.asarray(
        Image.fromarray(g).resize((SIZE, SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0), dtype=np.uint8
    )
