"""`python -m fer_core.evaluate --photos DIR` on labelled photo folders built here: real faces (scikit-image's
astronaut, FER faces pasted into canvases), a face-free picture, labels.csv and <class>/ layouts."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fer_core.sources import CLASSES
from fer_core.evaluate import evaluate_photos, main, photo_labels

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints" / "seed_vgg.pt"  # the faster shipped model
skdata = pytest.importorskip("skimage.data")


def pasted(face, seed):
    rng = np.random.default_rng(seed)
    canvas = np.clip(rng.normal(128, 12, (300, 400)), 0, 255).astype(np.uint8)
    canvas[60:240, 110:290] = np.asarray(Image.fromarray(face).resize((180, 180), Image.Resampling.BICUBIC))
    return Image.fromarray(canvas)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    with np.load(ROOT / "samples" / "fer2013_sample.npz") as z:
        x, y = z["test_x"], z["test_y"]
    rows = []
    for i in range(0, 60, 10):
        pasted(x[i], i).save(d / f"fer_{i}.png")
        rows.append((f"fer_{i}.png", CLASSES[int(y[i])]))
    Image.fromarray(skdata.astronaut()).save(d / "astronaut.jpg")
    rows.append(("astronaut.jpg", "happy"))
    Image.fromarray(skdata.coffee()).save(d / "coffee.jpg")  # no face: counts as a miss
    rows.append(("coffee.jpg", "neutral"))
    (d / "labels.csv").write_text("file,label\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    return d, rows


def test_metrics_are_consistent_with_per_photo_predictions(photo_dir):
    from fer_core.checkpoint import load_model
    from fer_core.classify import classify_image

    d, rows = photo_dir
    m = evaluate_photos(CKPT, d)
    assert m["photos"] == len(rows) == 8 and m["detected"] == 7 and m["sources"]["none"] == 1
    assert m["detection_rate"] == pytest.approx(7 / 8)
    assert any("coffee.jpg: no face found" in e for e in m["no_face"])
    # recompute from the per-photo predictions the library gives
    model, prep = load_model(CKPT)
    right = 0
    for f, lab in rows[:-1]:
        right += classify_image(model, prep, str(d / f))[0].label == lab
    assert m["accuracy_found"] == pytest.approx(right / 7)
    assert m["accuracy_all"] == pytest.approx(right / 8)  # the face-free photo counts wrong
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == 7 and np.trace(cm) == right  # the no-face photo is in no column
    assert m["per_class"]["neutral"]["support"] == sum(lab == "neutral" for _, lab in rows)


def test_class_subfolders_and_labels_csv_agree(photo_dir, tmp_path):
    d, rows = photo_dir
    for f, lab in rows:
        (tmp_path / lab).mkdir(exist_ok=True)
        (tmp_path / lab / f).write_bytes((d / f).read_bytes())
    a = sorted((p.name, k) for p, k in photo_labels(d))
    b = sorted((p.name, k) for p, k in photo_labels(tmp_path))
    assert a == b and len(a) == 8


def test_cli_text_and_json(photo_dir, capsys):
    d, _ = photo_dir
    assert main(["--checkpoint", str(CKPT), "--photos", str(d), "--detector", "haar"]) == 0
    out = capsys.readouterr().out
    assert "detector haar: face detected in" in out and "confusion matrix" in out and "over all photos" in out
    assert main(["--checkpoint", str(CKPT), "--photos", str(d), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "photos" and m["detector"] == "yunet" and m["photos"] == 8


def test_bad_folders_get_one_line_errors(tmp_path, capsys):
    assert main(["--checkpoint", str(CKPT), "--photos", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["--checkpoint", str(CKPT), "--photos", str(tmp_path)]) == 2
    assert "no labelled photos" in capsys.readouterr().err
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,bored\n")
    assert main(["--checkpoint", str(CKPT), "--photos", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "line 2: unknown label 'bored'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_is_honoured_in_photos_mode(photo_dir, precision):
    """--precision reaches the photos' forward passes (it was once ignored there): the probabilities evaluate_photos
    scores are those of predict_proba at that precision, face by face."""
    from fer_core.checkpoint import load_model
    from fer_core.faces import find_faces
    from fer_core.images import open_image
    from fer_core.inference import predict_proba
    from fer_core.classify import classify_image

    d, rows = photo_dir
    m = evaluate_photos(CKPT, d, precision=precision)
    assert m["precision"] == precision
    model, prep = load_model(CKPT)
    right = 0
    for f, lab in rows[:-1]:
        face = find_faces(open_image(d / f), f)[0].face48
        want = predict_proba(model, prep, face[None], precision=precision)[0]
        got = classify_image(model, prep, str(d / f), precision=precision)[0]
        assert np.allclose([got.probabilities[c] for c in CLASSES], want, atol=1e-6)
        right += got.label == lab
    assert m["accuracy_found"] == pytest.approx(right / 7)



def test_evaluate_without_near_copies_leaves_out_the_test_faces_copied_into_training(tiny_checkpoint, tmp_path):
    """Five test faces planted in Training (one re-encoded as JPEG quality 60): those five are left out of the
    second figure, which is the metrics of the other faces computed alone."""
    import io

    import numpy as np
    from PIL import Image

    from fer_core.evaluate import evaluate
    from tests.conftest import synthetic_faces, write_npz

    (x, y), (xt, yt) = synthetic_faces(300, 0), synthetic_faces(60, 1)
    planted = [3, 10, 20, 41, 59]
    copies = xt[planted].copy()
    buf = io.BytesIO()
    Image.fromarray(copies[0]).save(buf, "JPEG", quality=60)
    copies[0] = np.asarray(Image.open(buf))
    data = write_npz(tmp_path / "d.npz", {"train": (np.concatenate([x, copies]), np.concatenate([y, yt[planted]])),
                                          "test": (xt, yt)})
    out = evaluate(tiny_checkpoint, data, "test", without_near_copies=True)
    d = out["without_near_copies"]
    assert d["removed"] == 5 and d["n"] == 55
    rest = np.setdiff1d(np.arange(60), planted)
    plain = evaluate(tiny_checkpoint, write_npz(tmp_path / "rest.npz", {"train": (x, y), "test": (xt[rest], yt[rest])}),
                     "test")
    assert d["accuracy"] == plain["accuracy"] and d["macro_f1"] == plain["macro_f1"]
    assert "without_near_copies" not in evaluate(tiny_checkpoint, data, "test")
    with pytest.raises(ValueError, match="not Training itself"):
        evaluate(tiny_checkpoint, data, "train", without_near_copies=True)


def test_stamp_evaluation_stores_the_photo_score_and_leaves_the_weights(photo_dir, tmp_path):
    """scripts/stamp_evaluation.py --photos: the checkpoint gains photo_evaluation (what evaluate_photos measures,
    over all photos, fp32), read back by weights_only loading; the weights and the other fields stay as they were."""
    import shutil
    import sys

    import torch

    from fer_core.checkpoint import read_checkpoint
    from fer_core.runtable import photo_line

    sys.path.insert(0, str(ROOT / "scripts"))
    from stamp_evaluation import main as stamp

    d, rows = photo_dir
    ckpt = tmp_path / "m.pt"
    shutil.copy(CKPT, ckpt)
    assert stamp([str(ckpt), "--photos", str(d), "--photos-name", "test photos"]) == 0
    before, after = read_checkpoint(CKPT), read_checkpoint(ckpt)
    want = evaluate_photos(CKPT, d, precision="fp32")
    assert after["photo_evaluation"] == {"set": "test photos", "photos": 8, "detected": 7,
                                         "accuracy": round(want["accuracy_all"], 4),
                                         "macro_f1": round(want["macro_f1"], 4), "detector": "yunet",
                                         "precision": "fp32"}
    assert all(torch.equal(before["state_dict"][k], after["state_dict"][k]) for k in before["state_dict"])
    assert after.keys() == before.keys() | {"photo_evaluation"} and after["evaluation"] == before["evaluation"]
    assert photo_line(after).startswith(f"On real photos: {want['accuracy_all']:.1%} of 8 test photos")
    with pytest.raises(SystemExit):  # nothing asked for: a usage error, the file untouched
        stamp([str(ckpt)])
