"""Saliency for the Classify page's "what the model sees": one map per face found in a photo."""
from __future__ import annotations

import numpy as np


def face_saliency(model, prep, faces48: np.ndarray, targets) -> np.ndarray:
    """|d logit_target / d pixel| per face (fer_core.saliency's vanilla gradient), scaled to [0, 1] per map
    -> (N, 48, 48) float32."""
    from .saliency import attribute  # Captum: imported when a map is asked for, not with the photo path

    faces48 = np.asarray(faces48)
    maps = attribute(model, prep, faces48, np.asarray(targets), "vanilla")
    peak = np.percentile(maps.reshape(len(maps), -1), 99, axis=1).reshape(-1, 1, 1)  # robust to a few hot pixels
    return np.clip(maps / np.maximum(peak, 1e-12), 0, 1).astype(np.float32)
