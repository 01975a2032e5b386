"""Batch prediction: the CLI on good and bad files, the result rows, face saliency and the live webcam path
(fer_core.predict, fer_core.classify, fer_core.face_saliency, fer_core.live; tracking itself: test_tracking.py)."""
from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from fer_core.checkpoint import load_model
from fer_core.sources import CLASSES
from fer_core.classify import classify_image
from fer_core.face_saliency import face_saliency
from fer_core.live import LiveClassifier, LiveState
from fer_core.predict import main, predict_paths, rows_to_csv

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))  # sibling test module with the photo maker
from test_faces import ROOT, compose_photo, sample_faces  # noqa: E402


def png_header_only(path, w, h):
    """A PNG that claims w x h pixels but holds no pixel data: a decompression bomb costs nothing to make."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with one good photo (4 faces) and every kind of bad input; plus an empty folder."""
    d = tmp_path_factory.mktemp("photos")
    good, boxes, _ = compose_photo(mode="RGB")
    good.save(d / "group.jpg", quality=92)
    (d / "notes.jpg").write_text("this is not a picture\n")
    buf = io.BytesIO()
    good.save(buf, "JPEG", quality=92)
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "pixel.png")
    png_header_only(d / "bomb.png", 20000, 20000)
    yy, xx = np.mgrid[0:480, 0:640]
    Image.fromarray(((np.sin(xx / 23.0) * 60 + yy / 4) % 256).astype(np.uint8)).save(d / "landscape.png")
    x, _ = sample_faces()
    Image.fromarray(x[257]).save(d / "fer_crop.png")  # a FER-style tight crop
    empty = tmp_path_factory.mktemp("empty")
    return d, empty, len(boxes)


@pytest.fixture(scope="module")
def fast_checkpoint(tmp_path_factory):
    """A real checkpoint file of an untrained mini_cnn: loads in milliseconds, gives 7 probabilities."""
    import torch

    from fer_core.checkpoint import FORMAT_VERSION, save_checkpoint
    from fer_core.models import create_model
    from fer_core.preprocess import fit_normalization

    torch.manual_seed(0)
    model = create_model("mini_cnn", width=8)
    path = tmp_path_factory.mktemp("ckpt") / "fast.pt"
    save_checkpoint({"format_version": FORMAT_VERSION, "model_name": "mini_cnn", "model_args": {"width": 8},
                     "state_dict": model.state_dict(), "normalization": fit_normalization(sample_faces()[0], "global"),
                     "classes": list(CLASSES)}, path)
    return path


@pytest.fixture(scope="module")
def tiny(fast_checkpoint):
    return load_model(fast_checkpoint)


def by_file(rows):
    out = {}
    for r in rows:
        out.setdefault(r["file"].rsplit("/", 1)[-1], []).append(r)
    return out


def test_every_bad_input_gets_its_own_error_and_the_rest_is_processed(photos, tiny):
    d, empty, n_faces = photos
    rows = predict_paths(*tiny, [d, empty, d / "missing.jpg"])
    f = by_file(rows)
    good = f["group.jpg"]
    assert len(good) == n_faces and [r["face"] for r in good] == list(range(n_faces))
    for r in good:
        assert r["source"] == "detected" and len(r["box"]) == 4
        assert set(r["probabilities"]) == set(CLASSES)
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-5
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert f["fer_crop.png"][0]["source"] in ("detected", "whole_image")
    expected = {
        "notes.jpg": "not an image file",
        "truncated.jpg": "truncated",
        "pixel.png": "1x1 pixels, too small",
        "bomb.png": "decompression bomb",
        "landscape.png": "no face found",
        "missing.jpg": "no such file or directory",
        empty.name: "folder has no image files",
    }
    for name, text in expected.items():
        assert len(f[name]) == 1 and set(f[name][0]) == {"file", "error"}, f[name]
        msg = f[name][0]["error"]
        assert text in msg and "\n" not in msg and name in msg, msg


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns, open_image refuses
def test_bomb_is_refused_before_decoding(tmp_path, tiny):
    bomb = png_header_only(tmp_path / "big.png", 20000, 20000)
    t = time.perf_counter()
    rows = predict_paths(*tiny, [bomb])
    # decoding 400 Mpx would take seconds and fail on the missing pixel data with another message
    msg = rows[0]["error"]
    assert time.perf_counter() - t < 2 and ("decompression bomb" in msg or "pixel limit" in msg), msg
    # 9000x9000 is under PIL's own 2x guard but over our 80 Mpx limit: refused by open_image's size check
    rows = predict_paths(*tiny, [png_header_only(tmp_path / "big2.png", 9000, 9000)])
    assert "9000x9000 pixels, above the 80,000,000 pixel limit" in rows[0]["error"]


def test_cli_json_and_exit_codes(photos, fast_checkpoint, tmp_path, capsys):
    d, _, n_faces = photos
    # the real entry point once (a process of its own), the other exit codes in-process
    cmd = [sys.executable, "-m", "fer_core.predict", "--checkpoint", str(fast_checkpoint)]
    bad = subprocess.run(cmd + [str(d / "group.jpg"), str(d / "notes.jpg")], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert bad.returncode == 1 and "1 of 2 files failed" in bad.stderr and "Traceback" not in bad.stderr
    rows = json.loads(bad.stdout)
    assert len(rows) == n_faces + 1 and rows[-1]["file"].endswith("notes.jpg") and "error" in rows[-1]
    assert {"file", "face", "box", "source", "label", "probabilities"} <= set(rows[0])
    assert main(["--checkpoint", str(fast_checkpoint), str(d / "group.jpg")]) == 0
    assert len(json.loads(capsys.readouterr().out)) == n_faces
    assert main(["--checkpoint", str(tmp_path / "no.pt"), str(d)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint not found" in err and "Traceback" not in err


def test_cli_csv_in_process(photos, fast_checkpoint, capsys):
    d, _, n_faces = photos
    assert main(["--checkpoint", str(fast_checkpoint), "--format", "csv", "--tta", str(d / "group.jpg"),
                 str(d / "pixel.png")]) == 1
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == n_faces + 1
    faces = [r for r in table if not r["error"]]
    assert all(abs(sum(float(r[c]) for c in CLASSES) - 1) < 1e-4 for r in faces)
    assert json.loads(faces[0]["box"]) and faces[0]["source"] == "detected"
    assert [r for r in table if r["error"]][0]["file"].endswith("pixel.png")


def test_tta_averages_mirror(tiny):
    import torch

    from fer_core.inference import predict_logits

    model, prep = tiny
    img, _, _ = compose_photo()
    plain = classify_image(model, prep, img, name="x")
    tta = classify_image(model, prep, img, name="x", tta=True)
    assert [r.box for r in plain] == [r.box for r in tta]
    faces = np.stack([r.face48 for r in plain])
    mean_logits = (predict_logits(model, prep, faces) + predict_logits(model, prep, faces[:, :, ::-1].copy())) / 2
    want = torch.softmax(torch.from_numpy(mean_logits), 1).numpy()
    got = np.array([list(r.probabilities.values()) for r in tta])
    assert np.allclose(got, want, atol=1e-5)
    assert not np.allclose(got, [list(r.probabilities.values()) for r in plain], atol=1e-7)


def test_rows_to_csv_shape():
    rows = [{"file": "a.jpg", "face": 0, "box": [1, 2, 3, 4], "source": "detected", "detector": "haar", "score": 7.0,
             "label": "happy", "probabilities": {c: 1 / 7 for c in CLASSES}},
            {"file": "b.jpg", "error": "b.jpg: no face found"}]
    t = list(csv.reader(io.StringIO(rows_to_csv(rows))))
    assert t[0] == ["file", "face", "box", "source", "detector", "score", "label", *CLASSES, "error"]
    assert t[1][2] == "[1, 2, 3, 4]" and t[1][4] == "haar" and t[1][5] == "7" and t[2][-1] == "b.jpg: no face found"
    assert len(t[2]) == len(t[0])


def test_saliency_points_at_the_class_square(tiny_checkpoint):
    """The tiny model learned 'bright square at place k = class k': its gradient map must light up there
    (fer_core.saliency's vanilla gradient, the one the Saliency page draws)."""
    from conftest import SYNTH_POS, synthetic_faces  # tests/ is on sys.path (see top)

    model, prep = load_model(tiny_checkpoint)  # trained: the only test here that needs learned weights
    x, y = synthetic_faces(14, seed=5)
    maps = face_saliency(model, prep, x, y)
    assert maps.shape == (14, 48, 48) and maps.min() >= 0 and maps.max() <= 1
    inside = []
    for m, k in zip(maps, y):
        r, c = SYNTH_POS[k]
        mask = np.zeros((48, 48), bool)
        mask[max(0, r - 2) : r + 12, max(0, c - 2) : c + 12] = True
        inside.append(m[mask].mean() > 1.5 * m[~mask].mean())
    assert np.mean(inside) >= 0.7


def test_live_classifier_on_frames(tiny):
    live = LiveClassifier(*tiny, alpha=0.5, threshold=0.0, min_face=60)
    img, boxes, _ = compose_photo(mode="RGB")
    frame = np.asarray(img)  # (480, 640, 3) like a webcam frame
    for i in range(3):
        out = live(frame)
    assert len(out) == len(boxes) and all(o["frames"] == 3 for o in out)
    assert all(o["label"] in CLASSES for o in out)
    assert live(np.full((480, 640, 3), 90, np.uint8)) == []  # no face: no error, nothing to show


def test_live_state_boxes_faces_and_keeps_the_readout(tiny):
    state = LiveState(*tiny, alpha=0.5, threshold=0.0)
    img, boxes, _ = compose_photo(mode="RGB")
    bgr = np.ascontiguousarray(np.asarray(img)[..., ::-1])  # webcam frames arrive as BGR
    for _ in range(2):
        drawn = state.process(bgr)
    faces, frames, ms = state.snapshot()
    assert frames == 2 and len(faces) == len(boxes) and ms > 0
    assert drawn.shape == bgr.shape and drawn.dtype == np.uint8
    for f in faces:  # a box is drawn on each face: its top edge differs from the frame
        x, y, w, h = f["box"]
        assert (drawn[y, x : x + w] != bgr[y, x : x + w]).any()
    state.configure(alpha=0.9, threshold=0.8)
    assert (state.live.smoother.alpha, state.live.smoother.threshold) == (0.9, 0.8)
    blank = np.full((480, 640, 3), 90, np.uint8)
    assert np.array_equal(state.process(blank), blank) and state.snapshot()[:2] == ([], 3)
