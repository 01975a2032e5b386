"""interpret.predictions: progress reporting, flip TTA reusing the plain pass, the first-start precompute."""
from __future__ import annotations

import numpy as np
import pytest

import fer_core
from fer_core import interpret
from fer_core.inference import predict_logits


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return fer_core.load_model(tiny_checkpoint)


def count_images(model):
    """A forward hook on the model's inference twin (what predictions run), counting the faces it sees."""
    from fer_core.inference import fast_model

    seen = [0]
    twin, _ = fast_model(model, batch=64)  # built now, so its own checks are not counted
    twin.register_forward_hook(lambda _m, inp, _out: seen.__setitem__(0, seen[0] + len(inp[0])))
    return seen


def test_progress_reaches_the_total_in_batches(tiny, synth_npz, fresh_cache):
    model, prep = tiny
    faces = fer_core.load_split(synth_npz, "test")
    calls = []
    interpret.predictions(model, prep, faces, batch_size=64, progress=lambda d, n, what: calls.append((d, n)))
    assert calls == [(min(i + 64, len(faces)), len(faces)) for i in range(0, len(faces), 64)]


def test_tta_reuses_the_plain_pass(tiny_checkpoint, synth_npz, fresh_cache):
    model, prep = fer_core.load_model(tiny_checkpoint)  # its own copy: the hook stays on it
    faces = fer_core.load_split(synth_npz, "test")
    seen = count_images(model)
    plain = interpret.predictions(model, prep, faces, checkpoint=tiny_checkpoint)
    assert seen[0] == len(faces) and plain.logits.shape == (len(faces), 7)
    calls = []
    tta = interpret.predictions(model, prep, faces, tta=True, checkpoint=tiny_checkpoint,
                                progress=lambda d, n, what: calls.append((d, n, what)))
    assert seen[0] == 2 * len(faces)  # only the mirrored faces were run: the plain pass came from the cache
    assert calls[-1] == (len(faces), len(faces), "mirrored pass")
    both = predict_logits(model, prep, faces.x, tta=True)  # the one-pass TTA it replaces
    np.testing.assert_allclose(tta.logits, both, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(tta.probs, plain.probs)
    # without a cached plain pass, TTA runs both and says so in its progress
    for f in (fresh_cache / "predictions").glob("*.npz"):
        f.unlink()
    calls.clear()
    interpret.predictions(model, prep, faces, tta=True, checkpoint=tiny_checkpoint,
                          progress=lambda d, n, what: calls.append((d, n, what)))
    assert calls[-1] == (2 * len(faces), 2 * len(faces), "mirrored pass") and calls[0][2] == "plain pass"


def test_precompute_fills_the_cache_for_the_views(tiny_checkpoint, synth_npz, fresh_cache, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    files = interpret.precompute([str(tiny_checkpoint), str(broken)], str(synth_npz), "test")
    assert len(files) == 1 and files[0].exists()
    model, prep = fer_core.load_model(tiny_checkpoint)
    again = interpret.predictions(model, prep, fer_core.load_split(synth_npz, "test"), checkpoint=tiny_checkpoint)
    assert again.from_cache


def test_bundled_sample_has_a_stratified_train_split_beside_its_test_faces():
    from tests.conftest import ROOT

    sample = ROOT / "samples" / "fer2013_sample.npz"
    assert sample.stat().st_size < 6 * 2**20
    train, test = fer_core.load_split(sample, "train"), fer_core.load_split(sample, "test")
    assert len(train) >= 1000 and len(test) == 656
    assert all(i.startswith(f"train/{fer_core.CLASSES[k]}/Training_") for i, k in zip(train.ids, train.y))
    counts = np.bincount(train.y, minlength=7)
    # stratified: each class in its FER2013 Training share (angry 3,995 ... disgust 436 ... of 28,709)
    training = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965])
    np.testing.assert_allclose(counts / counts.sum(), training / training.sum(), atol=0.005)
    assert not set(train.ids) & set(test.ids)


def test_the_dashboard_progress_bar_counts_and_estimates(tiny, synth_npz, fresh_cache):
    import app_progress

    class Slot:  # stands for the st.empty() at the top of a page
        def __init__(self):
            self.calls = []

        def progress(self, value, text):
            self.calls.append((value, text))

    model, prep = tiny
    faces = fer_core.load_split(synth_npz, "test")
    slot = Slot()
    interpret.predictions(model, prep, faces, batch_size=32, progress=app_progress.progress_reporter(slot, "Predicting"))
    value, text = slot.calls[-1]
    assert value == 1.0 and f"{len(faces)}/{len(faces)}" in text and "from before the change" in text
    assert all(0 <= v <= 1 for v, _ in slot.calls)
    firsts = [t for v, t in slot.calls if v < 1]
    assert all("left" in t for t in firsts)  # an ETA once the first batch has a rate
