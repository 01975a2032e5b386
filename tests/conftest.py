"""Shared fixtures: small learnable synthetic FER-shaped data and a tiny model trained on it for real."""
from __future__ import annotations

import os
import tempfile
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# keep decoded-data caches of the tests away from the user's cache
os.environ.setdefault("FER_CACHE_DIR", str(ROOT / ".cache" / "test-data"))
# the dashboard reads data sources only inside its data roots; the tests' own data lives in temp folders
os.environ.setdefault("FER_DATA_ROOT", tempfile.gettempdir())


def synthetic_faces(n: int, seed: int = 0, noise: float = 40.0):
    """(x uint8 (n, 48, 48), y int64 (n,)): class k is a bright 10x10 square at one of 7 fixed places
    on a noisy gray background, so a small CNN learns it in a few epochs and saliency has a true answer."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 7
    rng.shuffle(y)
    x = rng.normal(100, noise, size=(n, 48, 48))
    for i, k in enumerate(y):
        r, c = SYNTH_POS[k]
        x[i, r : r + 10, c : c + 10] += 110
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


SYNTH_POS = [(4, 4), (4, 34), (19, 19), (34, 4), (34, 34), (4, 19), (34, 19)]


def write_npz(path, splits: dict):
    arrays = {}
    for split, (x, y) in splits.items():
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def synth_npz(tmp_path_factory):
    """A .npz data source with train (700) and test (210) splits of the synthetic task."""
    d = tmp_path_factory.mktemp("synth")
    return write_npz(d / "synth.npz", {"train": synthetic_faces(700, 0), "test": synthetic_faces(210, 1)})


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_npz, tmp_path_factory):
    """best.pt of mini_cnn trained for real on the synthetic task (a few seconds on CPU)."""
    from fer_core.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 8}, epochs=6, batch_size=32,
                      lr=0.01, optimizer="adam", augment=False, normalize="global", device="cpu", seed=0)
    run = train(cfg, out_dir=str(out), run_dir="tiny")
    return run / "best.pt"
