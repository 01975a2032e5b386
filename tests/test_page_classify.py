"""The Classify page in Streamlit's AppTest: uploads, a webcam picture, bad files, the results table."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # sibling test module with the photo maker
from test_faces import ROOT, PASTED, compose_photo  # noqa: E402

from streamlit.testing.v1 import AppTest  # noqa: E402
from tests.conftest import shown

PAGE = str(ROOT / "views" / "classify.py")


def jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=92)
    return buf.getvalue()


def toggle(at, label):
    return next(t for t in at.toggle if t.label == label)


@pytest.fixture()
def at():
    a = AppTest.from_file(PAGE, default_timeout=120)
    a.run()
    assert not a.exception, a.exception
    return a


def table(at):
    assert len(at.dataframe) == 1, "one results table"
    return at.dataframe[0].value


def test_empty_page_invites_upload(at):
    assert at.title[0].value == "Classify"
    assert any("Upload photos" in i.value for i in at.info)
    assert len(at.dataframe) == 0


def test_upload_photos_and_a_webcam_picture(at):
    photo, boxes, _ = compose_photo(mode="RGB")
    at.file_uploader[0].set_value([("group.jpg", jpeg(photo), "image/jpeg"),
                                   ("notes.jpg", b"not an image at all", "image/jpeg")])
    at.run()
    assert not at.exception, at.exception
    t = table(at)
    faces = t[t["file"] == "group.jpg"]
    assert len(faces) == len(boxes) and list(faces["face"]) == list(range(1, len(boxes) + 1))
    assert set(faces["source"]) == {"detected"}
    assert ((faces[["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]].sum(axis=1) - 1).abs()
            < 1e-4).all()
    bad = t[t["file"] == "notes.jpg"]
    assert len(bad) == 1 and "not an image file" in bad["error"].iloc[0]
    assert any("notes.jpg: not an image file" in shown(w.value) for w in at.warning)  # a message, not a traceback
    n_images_before = len(at.get("image"))

    # a webcam picture: one face, in a 640x480 frame
    toggle(at, "Take a webcam picture").set_value(True)
    at.run()
    one, _, _ = compose_photo(placements=[PASTED[0]])
    at.camera_input[0].upload("shot.jpg", jpeg(one))
    at.run()
    assert not at.exception, at.exception
    t = table(at)
    cam = t[t["file"] == "webcam picture"]
    assert len(cam) == 1 and cam["source"].iloc[0] == "detected"
    assert len(t) == len(boxes) + 1 + 1
    n_images_with_camera = len(at.get("image"))
    assert n_images_with_camera == n_images_before + 2  # the picture and its face crop

    # saliency adds one overlay per face; the CSV download is offered
    toggle(at, "Saliency overlay").set_value(True)
    at.run()
    assert not at.exception, at.exception
    n_faces = len(boxes) + 1
    assert len(at.get("image")) == n_images_with_camera + n_faces  # one saliency overlay per face
    assert any(b.label == "Download CSV" for b in at.get("download_button"))


def test_no_face_photo_is_a_message(at):
    big = Image.new("RGB", (640, 480), (90, 140, 200))  # sky: nothing face-like, too large to be a face crop
    at.file_uploader[0].set_value(("sky.png", (lambda b: (big.save(b, "PNG"), b.getvalue())[1])(io.BytesIO()),
                                   "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert any("sky.png: no face found" in shown(w.value) for w in at.warning)
    assert "no face found" in table(at)["error"].iloc[0]


def test_batch_of_photos_gets_table_first_then_a_compact_grid(at):
    """14 uploads: the results table and CSV come first, then a grid of thumbnails and one photo in detail
    (not 14 full-size sections); the detector is named and low-confidence faces are marked 'uncertain'."""
    files = []
    for k in range(14):
        photo, _, _ = compose_photo(placements=[PASTED[k % len(PASTED)]], seed=k, mode="RGB")
        files.append((f"p{k:02d}.jpg", jpeg(photo), "image/jpeg"))
    at.file_uploader[0].set_value(files)
    at.run()
    assert not at.exception, at.exception
    t = table(at)
    assert len(t) == 14 and set(t["detector"]) == {"yunet"} and set(t["source"]) == {"detected"}
    low = t["confidence"] < 0.5
    assert (t.loc[low, "verdict"] == "uncertain").all() and (t.loc[~low, "verdict"] == t.loc[~low, "label"]).all()
    # table and CSV before the per-photo views: the "Results" header is the first subheader
    assert at.subheader[0].value == "Results"
    assert [sb.label for sb in at.selectbox].count("Details for") == 1
    images = at.get("image")
    assert len(images) == 14 + 1 + 1  # 14 thumbnails, the chosen photo and its one face crop
    assert len([s for s in at.subheader if s.value.startswith("p")]) == 1  # one photo in detail
    assert any("found by YuNet" in m.value for m in at.markdown)

    # everything below a 100% threshold is uncertain
    next(s for s in at.slider if s.label.startswith("Mark 'uncertain'")).set_value(1.0)
    at.run()
    assert not at.exception, at.exception
    assert set(table(at)["verdict"]) == {"uncertain"}


def test_the_default_model_points_to_the_shipped_model_better_on_real_photos(at):
    """fer_best.pt (the default) scores 58.3% on the 108 agreed real photos and fer_cpu.pt 71.3% (their stamped
    photo_evaluation): the page says so and one click makes fer_cpu.pt the active model, after which it says nothing."""
    hint = [shown(i.value) for i in at.info if i.value.startswith("On real photos")]
    assert len(hint) == 1
    assert "checkpoints/fer_cpu.pt is more accurate than the active model: 71.3% against 58.3%" in hint[0]
    use = next(b for b in at.button if shown(b.label) == "Use fer_cpu.pt")
    use.click().run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox[0].value.endswith("fer_cpu.pt")
    assert not [i for i in at.info if i.value.startswith("On real photos")]
