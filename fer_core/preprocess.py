"""Normalization (stored with every model) and batched augmentation that runs on CPU or GPU."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NORM_MODES = ("pixel", "global", "none")


def fit_normalization(x_uint8: np.ndarray, mode: str = "pixel") -> dict:
    """Statistics of the training faces in [0, 1]: per pixel (the report's), one scalar, or none."""
    if mode not in NORM_MODES:
        raise ValueError(f"normalization must be one of {NORM_MODES}, not {mode!r}")
    x = torch.from_numpy(np.asarray(x_uint8)).float().div_(255.0)  # (N, 48, 48)
    if mode == "pixel":
        mean, std = x.mean(0, keepdim=True), x.std(0, keepdim=True).clamp_min(1e-3)  # (1, 48, 48)
    elif mode == "global":
        mean, std = x.mean().reshape(1, 1, 1), x.std().clamp_min(1e-3).reshape(1, 1, 1)
    else:
        mean, std = torch.zeros(1, 1, 1), torch.ones(1, 1, 1)
    return {"mode": mode, "mean": mean.contiguous(), "std": std.contiguous()}


class Preprocess:
    """uint8 faces (N, 48, 48) -> normalized float tensor (N, 1, 48, 48) for one model."""

    def __init__(self, norm: dict):
        self.mode = norm["mode"]
        self.mean = norm["mean"].float().reshape(1, 1, *norm["mean"].shape[-2:])
        self.std = norm["std"].float().reshape(1, 1, *norm["std"].shape[-2:])

    def to(self, device) -> "Preprocess":
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """x01: (N, 1, H, W) floats in [0, 1]; 48x48, or any side for a global mean/std (per-pixel maps are
        resampled to a low-resolution training batch)."""
        mean, std = self.mean.to(x01.device), self.std.to(x01.device)
        if mean.shape[-1] > 1 and mean.shape[-2:] != x01.shape[-2:]:
            mean = F.interpolate(mean, size=x01.shape[-2:], mode="area")
            std = F.interpolate(std, size=x01.shape[-2:], mode="area")
        return (x01 - mean) / std

    def __call__(self, faces) -> torch.Tensor:
        if isinstance(faces, np.ndarray):
            # a read-only array (a decoded cache, a video frame) is copied: torch would share it with a warning
            ok = faces.flags.writeable and faces.flags.c_contiguous
            faces = torch.from_numpy(faces if ok else np.array(faces, order="C"))
        if faces.dim() == 2:
            faces = faces[None]
        if faces.dim() == 3:
            faces = faces[:, None]
        return self.normalize(faces.float() / 255.0)

    def state(self) -> dict:
        return {"mode": self.mode, "mean": self.mean[0], "std": self.std[0]}


@dataclass
class AugmentConfig:
    rotation: float = 30.0  # degrees, uniform in [-r, r]
    zoom: float = 0.25  # scale uniform in [1 - z, 1 + z] (Keras zoom_range)
    shift: float = 0.0  # fraction of the image, uniform in [-s, s]
    flip: bool = True  # horizontal flip with p = 0.5
    erase: float = 0.0  # probability of random erasing (applied after normalization)
    photometric: float = 0.0  # strength 0-1 of the random contrast/brightness/gamma/blur-sharpen/noise (see below)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None,
                  size: int | None = None, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Random affine (rotation, zoom, shift, flip) of a whole batch in one grid_sample call.

    x: (B, C, H, W) float on any device; gen must live on the same device. `size`: the output's side (the
    same view of the face, resampled; default H), so low-resolution epochs cost nothing extra. `flips`: (B,)
    bool, which faces to mirror (the alternating flip), instead of a coin per face; the coins are drawn either
    way, so the rest of the random stream is the same.
    """
    B, dev = x.shape[0], x.device
    u = torch.rand(B, 5, device=dev, generator=gen)  # (B, 5) uniforms
    ang = (u[:, 0] * 2 - 1) * math.radians(cfg.rotation)
    scale = 1.0 + (u[:, 1] * 2 - 1) * cfg.zoom  # >1 zooms in
    tx = (u[:, 2] * 2 - 1) * cfg.shift * 2  # normalized coords span 2
    ty = (u[:, 3] * 2 - 1) * cfg.shift * 2
    mirror = (u[:, 4] < 0.5) if flips is None else flips.to(dev)
    flip = torch.where(mirror, -1.0, 1.0) if cfg.flip else torch.ones(B, device=dev)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )  # (B, 2, 3): output -> input sampling grid
    out = list(x.shape) if size is None else [*x.shape[:2], size, size]
    grid = F.affine_grid(theta.to(x.dtype), out, align_corners=False)
    # "border" repeats edge pixels, like Keras' fill_mode="nearest"
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if cfg.photometric > 0:  # drawn only when on, so runs without it keep their exact random stream
        x = photometric_batch(x, cfg.photometric, gen)
    return x


# Photometric augmentation: what differs between FER2013's web faces and a user's photo or webcam frame is as much
# the camera as the face: exposure, contrast, tone curve, focus/sharpening and sensor noise. At strength 1 each face
# gets, independently: contrast x 2^U(-1,1) about its own mean, brightness + U(-0.2, 0.2), gamma 2^U(-0.75, 0.75),
# blur or sharpen U(-1, 1) (-1: a 5x5 binomial blur, sigma 1 px; +1: an unsharp mask of the same), Gaussian noise
# of std U(0, 0.05); strength s scales every range by s. Order: tone, then focus, then noise, as in a camera.
PHOTO_CONTRAST = 1.0  # log2 of the largest contrast factor
PHOTO_BRIGHTNESS = 0.2
PHOTO_GAMMA = 0.75  # log2 of the largest gamma
PHOTO_SHARPEN = 1.0
PHOTO_NOISE = 0.05


def blur5(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> the same blurred by a 5x5 binomial kernel (sigma 1 px), edges replicated."""
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device, dtype=x.dtype) / 16
    k2 = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 5, 5)  # (C, 1, 5, 5) depthwise
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k2, groups=x.shape[1])


def photometric(x: torch.Tensor, contrast, brightness, gamma, sharpen, noise=None) -> torch.Tensor:
    """Apply given per-face parameters, each (B,) (or scalars), to x (B, C, H, W) in [0, 1] -> [0, 1].

    contrast 1, brightness 0, gamma 1, sharpen 0 and no noise is the identity; sharpen -1 is blur5 exactly."""
    B = x.shape[0]

    def col(v):  # (B,) or scalar -> (B, 1, 1, 1)
        return torch.as_tensor(v, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(B, 1, 1, 1)

    m = x.mean((1, 2, 3), keepdim=True)  # (B, 1, 1, 1): contrast turns about each face's own mean
    x = ((x - m) * col(contrast) + m + col(brightness)).clamp(0, 1)
    x = x.clamp_min(1e-6) ** col(gamma)
    x = x + col(sharpen) * (x - blur5(x))
    if noise is not None:
        x = x + noise
    return x.clamp(0, 1)


def photometric_batch(x: torch.Tensor, strength: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random photometric augmentation of x (B, C, H, W) in [0, 1] at `strength` (0: identity, 1: the ranges
    above)."""
    if strength <= 0:
        return x
    B = x.shape[0]
    u = torch.rand(B, 5, device=x.device, generator=gen) * 2 - 1  # (B, 5) uniforms in [-1, 1]
    s = float(strength)
    noise_std = (u[:, 4] + 1) / 2 * PHOTO_NOISE * s  # (B,)
    noise = torch.randn(x.shape, device=x.device, generator=gen, dtype=x.dtype) * noise_std.view(B, 1, 1, 1)
    return photometric(x, torch.exp2(u[:, 0] * PHOTO_CONTRAST * s), u[:, 1] * PHOTO_BRIGHTNESS * s,
                       torch.exp2(u[:, 2] * PHOTO_GAMMA * s), u[:, 3] * PHOTO_SHARPEN * s, noise)


def random_erase(x: torch.Tensor, p: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Zero one random rectangle (2-20% of the area, aspect 0.3-3.3) in a fraction p of the batch."""
    if p <= 0:
        return x
    B, _, H, W = x.shape
    dev = x.device
    u = torch.rand(B, 5, device=dev, generator=gen)
    area = (0.02 + u[:, 0] * 0.18) * H * W
    aspect = torch.exp(math.log(0.3) + u[:, 1] * (math.log(3.3) - math.log(0.3)))
    h = (area * aspect).sqrt().clamp(1, H)
    w = (area / aspect).sqrt().clamp(1, W)
    top = u[:, 2] * (H - h)
    left = u[:, 3] * (W - w)
    ys = torch.arange(H, device=dev).view(1, H, 1)
    xs = torch.arange(W, device=dev).view(1, 1, W)
    box = (ys >= top.view(B, 1, 1)) & (ys < (top + h).view(B, 1, 1)) & (xs >= left.view(B, 1, 1)) & (
        xs < (left + w).view(B, 1, 1)
    )  # (B, H, W)
    box &= (u[:, 4] < p).view(B, 1, 1)
    return x.masked_fill(box[:, None], 0.0)
