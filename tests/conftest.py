"""Shared fixtures: small learnable synthetic FER-shaped data, a tiny model trained on it for real, and a
model whose weights are set by hand so that the right saliency answer is known exactly."""
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
# no background warm-up of the prediction cache in test processes (tests call interpret.precompute directly)
os.environ.setdefault("FER_PRECOMPUTE", "0")
# pytest-xdist runs the suite in one worker per core (pytest.ini): one torch thread each, and in what they launch,
# so two workers do not fight over two cores with two threads apiece (set before torch is imported)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True)
def user_settings(tmp_path, monkeypatch):
    """Each test gets its own user settings file (the dashboard remembers the data path there)."""
    path = tmp_path / "settings.json"
    monkeypatch.setenv("FER_SETTINGS_FILE", str(path))
    return path

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
    # Tests downstream read "the model solved the task" into their results; a weak model must fail here,
    # loudly, not as a saliency or confusion-matrix defect. Measured: 100% test accuracy on 13 seeds under
    # ATEN_CPU_CAPABILITY default/avx2/avx512, so 95% leaves a margin for other kernels.
    from fer_core.evaluate import evaluate

    acc = evaluate(run / "best.pt", synth_npz, "test")["accuracy"]
    assert acc >= LEARNED_ACC, f"tiny model did not learn the synthetic task: {acc:.3f} test accuracy < {LEARNED_ACC}"
    return run / "best.pt"


LEARNED_ACC = 0.95  # test accuracy the tiny model must reach on the synthetic task (chance: 1/7)


def square_reader(gain: float = 10.0, threshold: float = 175.0):
    """(model, prep): a FERNet with hand-set weights that solves the synthetic task by construction.

    evidence = ReLU(5x5 local mean of the face - threshold): positive only on and right around a bright
    square (a background 5x5 mean is ~100 +- 8 gray levels, a square's ~200); logit k = gain x mean evidence
    over square k. So the logit of class k depends on the pixels of square k and nothing else: every
    saliency method must point there, on any CPU, whatever training would have done."""
    import torch
    import torch.nn as nn

    from fer_core.models import FERNet
    from fer_core.preprocess import Preprocess, fit_normalization

    norm = fit_normalization(synthetic_faces(700, 0)[0], "global")  # what the tiny model's training uses
    mean, std = float(norm["mean"]), float(norm["std"])
    features = nn.Sequential(
        nn.Conv2d(1, 1, 5, padding=2),  # (B, 1, 48, 48) local mean - threshold, in normalized units
        nn.ReLU(),  # (B, 1, 48, 48) square evidence
        nn.AvgPool2d(2),  # (B, 1, 24, 24) Grad-CAM's layer: coarser than the face, as in a real net
    )
    masks = torch.zeros(7, 1, 48, 48)
    for k, (r, c) in enumerate(SYNTH_POS):
        masks[k, 0, r : r + 10, c : c + 10] = 1
    pooled = nn.functional.avg_pool2d(masks, 2).flatten(1)  # (7, 576) square k on the 24x24 grid
    head = nn.Sequential(nn.Flatten(), nn.Linear(24 * 24, 7))
    with torch.no_grad():
        features[0].weight.fill_(1 / 25)
        features[0].bias.fill_(-(threshold / 255 - mean) / std)
        head[1].weight.copy_(gain * pooled / pooled.sum(1, keepdim=True))
        head[1].bias.zero_()
    return FERNet(features, head, cam_layer="features.2").eval(), Preprocess(norm)


@pytest.fixture(scope="session")
def square_model():
    """square_reader(): the model with a known right answer for saliency tests (checked to solve the task)."""
    import torch

    model, prep = square_reader()
    x, y = synthetic_faces(210, 1)  # the synth_npz test split
    with torch.no_grad():
        pred = model(prep(x)).argmax(1).numpy()
    assert (pred == y).all(), "square_reader does not solve the synthetic task: its weights are wrong"
    return model, prep


def non_default_config(data) -> dict:
    """A valid value for every TrainConfig field, none its default, cheap to train (two epochs of a tiny model
    on 140 faces): the round-trip tests ask for each and find each in the run's config.json."""
    from dataclasses import asdict

    from fer_core.config import TrainConfig

    values = dict(data=str(Path(data).resolve()), model="mini_cnn", model_args={"width": 8}, epochs=2, batch_size=32,
                  optimizer="sgd", lr=0.01, schedule="cosine", weight_decay=1e-4, augment=False, flip=False,
                  rotation=10.0, zoom=0.1, shift=0.05, erase=0.25, normalize="global", label_smoothing=0.05,
                  warmup_epochs=0.5, seed=3, device="cpu", max_train_samples=140, val_split="test", momentum=0.8,
                  checkpoint_every=2, eval_batch_size=100, channels_last=False, amp=False, cpu_fast=True,
                  low_res=24, low_res_epochs=1, photometric=0.3, mixup=0.4, cutmix=1.0,
                  alternate_flip=True, ema=0.9, tta=True, whiten_init=True, bn_lr=2.0, distill_alpha=0.3, distill_temperature=2.0,
                  teacher=str(ROOT / "checkpoints" / "fer_cpu.pt"))
    defaults = asdict(TrainConfig())
    assert values.keys() == defaults.keys(), "every TrainConfig field needs a non-default value here"
    assert not [k for k in values if values[k] == defaults[k]]
    return values


def shown(text: str) -> str:
    """What a reader sees of Markdown source that fer_core.text.md escaped (a backslash before punctuation is
    the character itself): AppTest reports the source, the browser shows this."""
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)
