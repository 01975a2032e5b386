"""Loaders on small generated CSV / folder / zip / npz data, caching, conversion and bad input."""
import gzip
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from fer_core.data import class_counts, load_split
from fer_core.images import DataError, open_image, to_face48, to_gray
from fer_core.sources import CLASSES
from tests.conftest import synthetic_faces

USAGE = ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7


def _csv_text(x, y, usage=None, header="emotion,pixels,Usage", sep=","):
    rows = [header]
    for i, (img, lab) in enumerate(zip(x, y)):
        row = [str(lab), " ".join(map(str, img.reshape(-1)))]
        if usage is not None:
            row.append(usage[i])
        rows.append(sep.join(row))
    return "\n".join(rows) + "\n"


@pytest.fixture
def faces():
    return synthetic_faces(28, seed=3)


def test_kaggle_csv_splits(tmp_path, faces):
    x, y = faces
    p = tmp_path / "fer2013.csv"
    p.write_text(_csv_text(x, y, USAGE))
    tr, va, te = load_split(p, "train"), load_split(p, "val"), load_split(p, "test")
    assert (len(tr), len(va), len(te)) == (14, 7, 7)
    np.testing.assert_array_equal(tr.x, x[:14])
    np.testing.assert_array_equal(va.y, y[14:21])
    assert tr.x.dtype == np.uint8 and tr.x.shape[1:] == (48, 48)
    assert va.ids[0] == "line 16"


def test_gzipped_and_icml_and_train_csv(tmp_path, faces):
    x, y = faces
    gz = tmp_path / "fer2013.csv.gz"
    gz.write_bytes(gzip.compress(_csv_text(x, y, USAGE).encode()))
    assert len(load_split(gz, "test")) == 7
    icml = tmp_path / "icml_face_data.csv"
    icml.write_text("emotion, Usage, pixels\n" + "".join(
                        f"{lab}, {u}, {' '.join(map(str, img.reshape(-1)))}\n" for img, lab, u in zip(x, y, USAGE)))
    np.testing.assert_array_equal(load_split(icml, "val").x, x[14:21])
    tr = tmp_path / "train.csv"
    tr.write_text(_csv_text(x, y, header="emotion,pixels"))
    assert len(load_split(tr, "train")) == 28
    with pytest.raises(DataError, match="split 'val'"):
        load_split(tr, "val")


def _write_folder(root, x, y, split_names=("train", "test"), class_names=CLASSES, ext=".jpg"):
    for split in split_names:
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / class_names[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{split}_{i}{ext}")


def test_image_folder_synonyms_and_case(tmp_path, faces):
    x, y = faces
    names = ["Anger", "disgust", "FEAR", "happiness", "Sadness", "surprised", "neutral"]
    _write_folder(tmp_path / "data", x, y, ("Train", "test"), names, ".png")
    tr = load_split(tmp_path / "data", "train")
    assert len(tr) == 28 and sorted(tr.y.tolist()) == sorted(y.tolist())
    # PNG is lossless: pixels survive exactly
    i = int(np.flatnonzero(tr.ids == str(tr.ids[0]))[0])
    assert tr.x[i].shape == (48, 48)
    # val falls back to test/ when there is no val/ folder
    assert len(load_split(tmp_path / "data", "val")) == 28
    assert class_counts(tmp_path / "data", "train") == {c: int((y == k).sum()) for k, c in enumerate(CLASSES)}


def test_zip_read_in_place_with_top_folder(tmp_path, faces):
    x, y = faces
    zpath = tmp_path / "fer.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i, (img, lab) in enumerate(zip(x, y)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            zf.writestr(f"fer2013/train/{CLASSES[lab]}/Training_{i}.png", buf.getvalue())
            zf.writestr(f"fer2013/test/{CLASSES[lab]}/PublicTest_{i}.png", buf.getvalue())
    tr = load_split(zpath, "train")
    assert len(tr) == 28
    order = np.argsort([int(s.split("_")[-1][:-4]) for s in tr.ids])
    np.testing.assert_array_equal(tr.x[order], x)
    assert class_counts(zpath, "test")["happy"] == int((y == 3).sum())


def test_cache_is_used_and_keyed_by_source(tmp_path, faces, monkeypatch):
    x, y = faces
    p = tmp_path / "train.csv"
    p.write_text(_csv_text(x, y, header="emotion,pixels"))
    load_split(p, "train")
    import fer_core.data as d

    monkeypatch.setattr(d, "decode", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    assert len(load_split(p, "train")) == 28  # served from the cache
    p.write_text(_csv_text(x[:7], y[:7], header="emotion,pixels"))  # new content: new key
    with pytest.raises(AssertionError, match="decoded again"):
        load_split(p, "train")


def test_conversion_of_image_modes():
    rgb = np.zeros((96, 64, 3), np.uint8)
    rgb[..., 0] = 255
    assert to_face48(Image.fromarray(rgb)).shape == (48, 48)
    assert to_gray(Image.fromarray(rgb)).max() == 76  # ITU-R 601 luma of pure red
    rgba = Image.new("RGBA", (50, 50), (0, 0, 0, 0))  # fully transparent -> white
    assert to_face48(rgba).min() == 255
    i16 = Image.fromarray(np.full((48, 48), 65535, np.uint16))
    assert to_face48(i16).min() == 255
    cmyk = Image.new("CMYK", (60, 60), (0, 0, 0, 0))
    assert to_face48(cmyk).min() == 255
    pal = Image.new("P", (48, 48), 0)
    assert to_face48(pal).shape == (48, 48)


def test_open_image_bad_inputs(tmp_path):
    txt = tmp_path / "notes.jpg"
    txt.write_text("hello")
    with pytest.raises(DataError, match="notes.jpg: not an image"):
        open_image(txt)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(buf, format="JPEG")
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(buf.getvalue()[:300])
    with pytest.raises(DataError, match="trunc.jpg"):
        open_image(trunc)
    with pytest.raises(DataError, match="not found"):
        open_image(tmp_path / "missing.png")


def test_exif_orientation_applied():
    img = Image.fromarray(np.zeros((20, 40), np.uint8))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    assert open_image(buf.getvalue()).size == (20, 40)


def test_bad_csv_rows_are_named(tmp_path, faces):
    x, y = faces
    text = _csv_text(x[:3], y[:3], header="emotion,pixels").splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(text[:2] + ["3," + " ".join(["1"] * 2000)]) + "\n")
    with pytest.raises(DataError, match=r"short.csv: line 3: 2000 pixel values, expected 2304"):
        load_split(short, "train")
    lab = tmp_path / "label.csv"
    lab.write_text("\n".join(text[:3] + ["9," + " ".join(["1"] * 2304)]) + "\n")
    with pytest.raises(DataError, match=r"label.csv: line 4: label '9'"):
        load_split(lab, "train")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="needs 'emotion' and 'pixels'"):
        load_split(nocol, "train")


def test_missing_unsupported_and_empty(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_split(tmp_path / "nope", "train")
    odd = tmp_path / "data.parquet"
    odd.write_bytes(b"PAR1....")
    with pytest.raises(DataError, match="unsupported data format"):
        load_split(odd, "train")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="split 'train' is empty"):
        load_split(tmp_path / "empty", "train")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="corrupt zip"):
        load_split(bad, "train")


def test_bundled_sample_loads():
    from tests.conftest import ROOT

    s = load_split(ROOT / "samples" / "fer2013_sample.npz", "test")
    assert len(s) == 656 and set(np.unique(s.y)) == set(range(7))
