"""Saliency maps (Captum) for one face or a batch. The two trust signals per map are in fer_core.trust,
class-average maps and the share of saliency per face region in fer_core.regions.

Conventions
  * faces are uint8 (N, 48, 48); maps are float32 (N, 48, 48), non-negative "importance" (larger = matters
    more for the target class): |gradient| for vanilla/SmoothGrad, |attribution| for IG/DeepLift/GradientSHAP,
    ReLU'd Grad-CAM and Grad-CAM++, the positive part of the occlusion score drop.
  * "Removed" pixels (the default IG/DeepLift/GradientSHAP/occlusion baseline, deletion/insertion) take the
    value 0 in the model's normalized space, i.e. the training mean: a neutral, in-distribution gray rather
    than black. BASELINES offers black and a blurred copy of the face as well.
  * Scores are computed on logits (the attribution target), probabilities for deletion/insertion.
"""
from __future__ import annotations

import contextlib
import threading
import warnings

import numpy as np
import torch
import torch.nn as nn


METHODS = ("vanilla", "smoothgrad", "integrated_gradients", "deeplift", "gradient_shap", "gradcam", "gradcam_pp",
           "occlusion")
METHOD_NAMES = {
    "vanilla": "Vanilla gradient",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
    "deeplift": "DeepLift",
    "gradient_shap": "GradientSHAP",
    "gradcam": "Grad-CAM",
    "gradcam_pp": "Grad-CAM++",
    "occlusion": "Occlusion",
}
# which of attribute()'s settings each method reads (the Saliency page shows only these)
METHOD_SETTINGS = {
    "vanilla": (),
    "smoothgrad": ("noise", "nt_samples"),
    "integrated_gradients": ("baseline", "ig_steps"),
    "deeplift": ("baseline",),
    "gradient_shap": ("baseline", "noise", "nt_samples"),
    "gradcam": (),
    "gradcam_pp": (),
    "occlusion": ("baseline", "window"),
}
# what "removed" means for the baseline-based methods: the training mean (0 after normalization), black
# pixels, or the face blurred (keeps its layout, drops its fine detail)
BASELINES = {"mean": "training mean (gray)", "black": "black", "blur": "blurred face"}
CAM_METHODS = ("gradcam", "gradcam_pp")


# Grad-CAM hooks live on the shared (cached) model: one attribution at a time across Streamlit sessions.
_HOOK_LOCK = threading.Lock()


def _device(model) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _single_thread(enabled: bool):
    """One intra-op thread for single-face gradient maps. They are dozens of tiny ops, and with several
    OpenMP threads on a busy CPU each op waits for a descheduled thread: measured 25x slower (660 vs 28 ms,
    vgg_bn, 2 cores shared with other jobs), while one thread costs under 2x on an idle machine (30 vs 16 ms)."""
    n = torch.get_num_threads()
    if not enabled or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def check_gradcam(model) -> nn.Module:
    """The layer Grad-CAM explains; ValueError when the model has no convolutional block for it."""
    name = getattr(model, "model_name", "") or type(model).__name__
    layer = None
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        try:
            layer = getattr(model, "cam_layer", None)
        except (IndexError, AttributeError):
            layer = None
    if layer is None:
        raise ValueError(f"Grad-CAM needs a convolutional layer, and model {name} has none")
    return layer


def attribute(model, prep, faces, targets, method: str = "vanilla", *, nt_samples: int = 16, noise: float = 0.15,
              ig_steps: int = 32, window: int = 6, stride: int | None = None, baseline: str = "mean",
              batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """Saliency maps of a batch: faces uint8 (N, 48, 48), targets int or (N,) -> float32 (N, 48, 48) >= 0.

    Settings (METHOD_SETTINGS says which method reads which): nt_samples and noise (a share of the face's
    value range) for SmoothGrad and GradientSHAP, ig_steps for Integrated Gradients, window (stride: half of
    it) for occlusion, baseline (a BASELINES key) for IG, DeepLift, GradientSHAP and occlusion."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r} (available: {', '.join(METHODS)})")
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r} (available: {', '.join(BASELINES)})")
    if not (1 <= int(window) <= 48 and int(ig_steps) >= 1 and int(nt_samples) >= 1 and noise >= 0):
        raise ValueError("saliency settings out of range: window 1-48, steps and samples >= 1, noise >= 0")
    stride = stride or max(1, int(window) // 2)
    faces = np.array(faces, dtype=np.uint8)  # a writable copy: cached arrays are read-only
    if faces.ndim == 2:
        faces = faces[None]
    targets = np.broadcast_to(np.asarray(targets, dtype=np.int64), (len(faces),))  # (N,)
    layer = check_gradcam(model) if method in CAM_METHODS else None
    dev = _device(model)
    opts = dict(nt_samples=int(nt_samples), noise=float(noise), ig_steps=int(ig_steps), window=int(window),
                stride=int(stride), seed=seed)
    out = []
    with _single_thread(len(faces) == 1 and method in ("vanilla", "deeplift", *CAM_METHODS) and dev.type == "cpu"):
        for i in range(0, len(faces), batch_size):
            x = prep(faces[i : i + batch_size]).to(dev)  # (B, 1, 48, 48) normalized
            t = torch.as_tensor(targets[i : i + batch_size].copy(), device=dev)  # (B,)
            base = _baseline(prep, faces[i : i + batch_size], x, baseline)  # (B, 1, 48, 48)
            out.append(_attribute_batch(model, layer, x, t, method, base=base, **opts).detach()[:, 0].float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 48, 48), np.float32)


def _baseline(prep, faces, x, kind: str) -> torch.Tensor:
    """The "removed" image for each face, normalized like x (B, 1, 48, 48)."""
    if kind == "mean":
        return torch.zeros_like(x)
    if kind == "black":
        return prep(np.zeros_like(faces)).to(x.device).expand_as(x).contiguous()
    # blur: a separable Gaussian (sigma 4 px) of the face, so outlines stay but expression detail goes
    r = torch.arange(-8, 9, dtype=x.dtype, device=x.device)
    g = torch.exp(-(r**2) / (2 * 4.0**2))
    g = g / g.sum()
    b = torch.nn.functional.pad(x.detach(), (8, 8, 8, 8), mode="replicate")
    b = torch.nn.functional.conv2d(b, g.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(b, g.view(1, 1, -1, 1)).contiguous()  # (B, 1, 48, 48)


def _gradcam_pp(model, layer, x, t) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al., 2018) on `layer`: x (B, 1, 48, 48), t (B,) -> (B, 1, h, w) >= 0.
    Pixel-wise weights alpha = g^2 / (2 g^2 + sum(A) g^3) of the positive gradients (the closed form for an
    exponential of the class score), so several instances of a feature all count, not only the strongest."""
    store = {}

    def keep(_m, _inp, out):
        out.retain_grad()
        store["a"] = out

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            scores = model(x.detach().requires_grad_(True)).gather(1, t[:, None]).sum()
            scores.backward()
    finally:
        handle.remove()
    a = store["a"]
    if a.dim() != 4:
        raise ValueError("Grad-CAM++ needs a convolutional layer whose output is (B, C, H, W)")
    g, a = a.grad.detach(), a.detach()  # (B, K, h, w)
    g2, g3 = g**2, g**3
    denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    w = (alpha * g.clamp_min(0)).sum((2, 3), keepdim=True)  # (B, K, 1, 1)
    return (w * a).sum(1, keepdim=True).clamp_min(0)  # (B, 1, h, w)


def _per_face(fn, x, t, base, seed):
    """fn(xi, ti, bi) on each face with the same seed, so a face gets the same noisy map alone or in a batch."""
    parts, np_state = [], np.random.get_state()  # Captum's GradientShap draws its path points from numpy
    try:
        for xi, ti, bi in zip(x.split(1), t.split(1), base.split(1)):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                np.random.seed(seed)
                parts.append(fn(xi, ti, bi))
    finally:
        np.random.set_state(np_state)
    return torch.cat(parts)


def _attribute_batch(model, layer, x, t, method, *, base, nt_samples, noise, ig_steps, window, stride, seed):
    """Captum attributions of one batch: x (B, 1, 48, 48) normalized, t (B,), base: the baseline like x
    -> (B, 1, 48, 48) >= 0."""
    from captum.attr import (DeepLift, GradientShap, IntegratedGradients, LayerAttribution, LayerGradCam,
                             NoiseTunnel, Occlusion, Saliency)

    x.requires_grad_(True)
    if method == "vanilla":
        return Saliency(model).attribute(x, target=t, abs=True)
    if method == "smoothgrad":
        # per face, noise scale a share of its value range (10-20% in the paper)
        return _per_face(lambda xi, ti, bi: NoiseTunnel(Saliency(model)).attribute(
            xi, nt_type="smoothgrad", nt_samples=nt_samples, nt_samples_batch_size=nt_samples,
            stdevs=noise * float(xi.detach().max() - xi.detach().min()), target=ti, abs=True), x, t, base, seed)
    if method == "integrated_gradients":
        return IntegratedGradients(model).attribute(
            x, baselines=base, target=t, n_steps=ig_steps, internal_batch_size=256).abs()
    if method == "deeplift":
        # Rescale rule against the baseline; every activation is its own module, as DeepLift's hooks need
        with _HOOK_LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")  # expected, per call
            return DeepLift(model).attribute(x, baselines=base, target=t).abs()
    if method == "gradient_shap":
        # expected gradients: random points between the (noised) face and its baseline, per face
        return _per_face(lambda xi, ti, bi: GradientShap(model).attribute(
            xi, baselines=bi, n_samples=nt_samples, stdevs=noise * float(xi.detach().max() - xi.detach().min()),
            target=ti).abs(), x, t, base, seed)
    if method in CAM_METHODS:
        with _HOOK_LOCK:
            if method == "gradcam":
                a = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)  # (B, 1, h, w)
            else:
                a = _gradcam_pp(model, layer, x, t)
        if a.dim() != 4:
            raise ValueError("Grad-CAM needs a convolutional layer whose output is (B, C, H, W)")
        return LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear").clamp_min(0)
    # occlusion: drop of the target logit when a window x window patch of the training mean covers each place;
    # about 256 images per forward pass whatever the batch, to bound memory
    with torch.no_grad():
        return Occlusion(model).attribute(
            x.detach(), sliding_window_shapes=(1, window, window), strides=(1, stride, stride), baselines=base,
            target=t, perturbations_per_eval=max(1, 256 // len(x))).clamp_min(0)


def saliency(model, prep, face, target: int, method: str = "vanilla", **opts) -> np.ndarray:
    """One face uint8 (48, 48) and a target class -> map float32 (48, 48) >= 0."""
    return attribute(model, prep, np.asarray(face)[None], int(target), method, **opts)[0]
