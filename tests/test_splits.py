"""Split names that mean one thing (fer_core.splits): FER2013's names read the same faces in every kind of source,
`val`/`test` stay as aliases, a fallback warns and is recorded (in the FaceSet, config.json, evaluate --json)."""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from fer_core import splits
from fer_core.data import available_splits, class_counts, load_split, resolve_split
from fer_core.images import DataError
from fer_core.sources import CLASSES
from fer_core.splits import SplitFallbackWarning
from tests.conftest import synthetic_faces


def _folder(root, parts: dict):
    """<root>/<split>/<class>/<i>.png from {split: (x, y)}."""
    for split, (x, y) in parts.items():
        for i, (img, k) in enumerate(zip(x, y)):
            d = root / split / CLASSES[k]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:03d}.png")
    return root


def _zip(folder, path):
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, f.relative_to(folder).as_posix())
    return path


@pytest.fixture
def kaggle_zip(tmp_path):
    """Kaggle's image-folder layout: train/ (Training) and test/ (PublicTest) only."""
    folder = _folder(tmp_path / "k", {"train": synthetic_faces(14, 1), "test": synthetic_faces(9, 2)})
    return _zip(folder, tmp_path / "fer.zip")


def test_kaggle_zip_val_falls_back_to_test_with_a_warning(kaggle_zip):
    test = load_split(kaggle_zip, "test")
    assert test.resolved == splits.Resolved("test", "test", "PublicTest")
    with pytest.warns(SplitFallbackWarning, match="no val split"):
        val = load_split(kaggle_zip, "val")
    np.testing.assert_array_equal(val.x, test.x)
    assert val.resolved.stored == "test" and val.resolved.usage == "PublicTest" and val.resolved.note
    with pytest.warns(SplitFallbackWarning):  # the cached copy remembers it was a fallback
        again = load_split(kaggle_zip, "val")
    assert again.resolved == val.resolved
    # FER2013's own name reads the same faces without a warning: test/ is PublicTest in this layout
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitFallbackWarning)
        public = load_split(kaggle_zip, "public_test")
    np.testing.assert_array_equal(public.y, test.y)
    assert public.resolved.usage == "PublicTest" and not public.resolved.note
    with pytest.raises(DataError, match="no PrivateTest"):
        load_split(kaggle_zip, "private_test")
    assert available_splits(kaggle_zip) == ["train", "test"]  # no val that only repeats test/
    assert class_counts(kaggle_zip, "public_test") == class_counts(kaggle_zip, "test")


def test_a_folder_with_val_and_test_reads_as_the_csv(tmp_path):
    parts = {"train": synthetic_faces(14, 1), "val": synthetic_faces(7, 2), "test": synthetic_faces(8, 3)}
    root = _folder(tmp_path / "three", parts)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitFallbackWarning)
        got = {s: load_split(root, s) for s in ("val", "test", "public_test", "private_test")}
    assert got["val"].resolved.usage == got["public_test"].resolved.usage == "PublicTest"
    assert got["test"].resolved.usage == got["private_test"].resolved.usage == "PrivateTest"
    assert len(got["public_test"]) == 7 and len(got["private_test"]) == 8
    assert available_splits(root) == ["train", "val", "test"]


def test_csv_names(tmp_path):
    x, y = synthetic_faces(28, 3)
    usage = ["Training"] * 14 + ["PublicTest"] * 6 + ["PrivateTest"] * 8
    p = tmp_path / "fer2013.csv"
    p.write_text("emotion,pixels,Usage\n" + "".join(f"{k},{' '.join(map(str, img.reshape(-1)))},{u}\n"
                                                    for img, k, u in zip(x, y, usage)))
    assert len(load_split(p, "public_test")) == len(load_split(p, "val")) == 6
    assert len(load_split(p, "private_test")) == len(load_split(p, "test")) == 8
    assert resolve_split(p, "test") == splits.Resolved("test", "PrivateTest", "PrivateTest")
    assert resolve_split(p, "private_test").usage == "PrivateTest"
    np.testing.assert_array_equal(load_split(p, "private_test").y, y[20:])
    with pytest.raises(DataError, match="unknown split 'validation'"):
        load_split(p, "validation")


def test_label():
    assert splits.label(splits.Resolved("test", "test", "PublicTest")) == "test (PublicTest)"
    assert splits.label(splits.Resolved("public_test", "test", "PublicTest")) == "public_test"
    assert splits.label(splits.Resolved("train", "train", "Training")) == "train"


def test_the_resolved_split_is_recorded_by_trainer_and_evaluate(tmp_path, tiny_checkpoint, synth_npz):
    # tiny_checkpoint trained on synth_npz (train/test only) with the default val_split, public_test: test/ read
    # as FER2013's PublicTest, no fallback
    data = json.loads((tiny_checkpoint.parent / "config.json").read_text())["data"]
    assert data["val_split"] == "public_test"
    assert data["val_split_resolved"] == {"requested": "public_test", "stored": "test", "usage": "PublicTest", "note": ""}
    # asking for "val" in the same source is a fallback: logged in train.log and recorded in config.json
    from fer_core.train import TrainConfig, train

    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 4}, epochs=1, batch_size=50,
                      max_train_samples=100, augment=False, device="cpu", val_split="val")
    with pytest.warns(SplitFallbackWarning):
        run = train(cfg, out_dir=str(tmp_path), run_dir="val")
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["val_split_resolved"]["stored"] == "test" and "no val split" in data["val_split_resolved"]["note"]
    assert "note: " in (run / "train.log").read_text() and "no val split" in (run / "train.log").read_text()
    from fer_core.evaluate import evaluate, format_report

    m = evaluate(tiny_checkpoint, synth_npz, "test")
    assert m["split_resolved"] == {"requested": "test", "stored": "test", "usage": "PublicTest", "note": ""}
    assert "[test = PublicTest, n=210" in format_report(m)
