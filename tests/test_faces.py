"""Face detection and cropping on photos made here: FER faces pasted into a larger picture, scikit-image's
astronaut photo (a real face), and face-free pictures."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fer_core.data import to_face48
from fer_core.faces import (MIN_SIDE, NoFaceError, crop_face, detect_faces, draw_faces, find_faces,
                            is_tight_crop, overlay_heatmap)
from fer_core.predict import iou

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "fer2013_sample.npz"

# Sample faces (angry, happy, sad, surprise) and where they go on a 640x480 canvas: (x, y, side)
PASTED = [(0, (40, 40, 150)), (257, (430, 50, 120)), (364, (240, 300, 130)), (574, (20, 290, 110))]


def sample_faces():
    with np.load(SAMPLE) as z:
        return z["test_x"], z["test_y"]


def compose_photo(placements=PASTED, size=(640, 480), seed=0, mode="L"):
    """A photo with several FER faces upscaled onto a noisy gray background -> (PIL image, boxes, indices)."""
    x, _ = sample_faces()
    rng = np.random.default_rng(seed)
    w, h = size
    canvas = np.clip(rng.normal(128, 12, (h, w)), 0, 255).astype(np.uint8)
    boxes = []
    for i, (bx, by, s) in placements:
        canvas[by : by + s, bx : bx + s] = np.asarray(Image.fromarray(x[i]).resize((s, s), Image.Resampling.BICUBIC))
        boxes.append((bx, by, s, s))
    img = Image.fromarray(canvas)
    return (img if mode == "L" else img.convert(mode)), boxes, [i for i, _ in placements]


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float).ravel(), np.asarray(b, float).ravel())[0, 1])


def test_pasted_faces_found_at_their_places_and_cropped_like_training_data():
    img, boxes, idx = compose_photo()
    x, _ = sample_faces()
    faces = find_faces(img, name="composite")
    assert len(faces) == len(boxes), [f.box for f in faces]  # all found, no false positives
    for box, i in zip(boxes, idx):
        match = [f for f in faces if iou(f.box, box) > 0.5]
        assert len(match) == 1, (box, [f.box for f in faces])
        f = match[0]
        assert f.source == "detected" and f.score >= 4
        assert f.face48.shape == (48, 48) and f.face48.dtype == np.uint8
        # the crop is the original 48x48 face again (framing matches the training data)
        assert corr(f.face48, x[i]) > 0.8


def test_reading_order_rows_then_left_to_right():
    img, _, _ = compose_photo()
    xs_ys = [(f.box[0], f.box[1]) for f in find_faces(img)]
    top = [p for p in xs_ys if p[1] < 200]
    bottom = [p for p in xs_ys if p[1] >= 200]
    assert xs_ys == sorted(top) + sorted(bottom)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "CMYK", "P", "I;16"])
def test_image_modes(mode):
    img, boxes, _ = compose_photo(mode="L")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)  # full 16-bit range
    else:
        img = img.convert(mode)
    faces = find_faces(img)
    assert len(faces) == len(boxes)


def test_exif_rotated_photo(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90 CW to view) is found upright."""
    from fer_core.data import open_image

    img, boxes, _ = compose_photo()
    stored = img.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "phone.jpg"
    stored.save(p, exif=exif, quality=95)
    assert Image.open(p).size == (480, 640)
    faces = find_faces(open_image(p), name=str(p))
    assert len(faces) == len(boxes)
    assert all(max(iou(f.box, b) for b in boxes) > 0.5 for f in faces)


def test_real_photo_astronaut():
    skdata = pytest.importorskip("skimage.data")
    faces = find_faces(skdata.astronaut(), name="astronaut")
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    # Eileen Collins' face: centre around (225, 115) in the 512x512 picture
    assert 200 < x + w / 2 < 250 and 90 < y + h / 2 < 140 and 70 < w < 130


@pytest.mark.parametrize("name", ["coffee", "rocket", "chelsea", "hubble_deep_field"])
def test_no_face_pictures_raise_no_face_found(name):
    skdata = pytest.importorskip("skimage.data")
    with pytest.raises(NoFaceError, match=f"{name}: no face found"):
        find_faces(getattr(skdata, name)(), name=name)


def test_no_face_landscape_is_not_guessed_whole():
    # smooth gradients and stripes, 640x480: nothing face-like, too big to be a face crop
    yy, xx = np.mgrid[0:480, 0:640]
    img = ((np.sin(xx / 23.0) * 60 + yy / 4) % 256).astype(np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        find_faces(img, name="landscape.png")
    assert find_faces(img, required=False) == []


def test_tight_face_crop_falls_back_to_whole_image():
    x, _ = sample_faces()
    # this FER face is not detected by the cascade, not even upscaled; as a tight crop it is used whole
    undetected = next(i for i in range(40) if not detect_faces(np.asarray(Image.fromarray(x[i]).resize((96, 96)))))
    crop = Image.fromarray(x[undetected]).resize((96, 96), Image.Resampling.BICUBIC)
    faces = find_faces(crop, name="crop.png")
    assert len(faces) == 1 and faces[0].source == "whole_image" and faces[0].score is None
    assert faces[0].box == (0, 0, 96, 96)
    assert np.array_equal(faces[0].face48, to_face48(crop))
    # the same face, not square enough -> centre square reported as the box
    wide = Image.fromarray(x[undetected]).resize((110, 96))
    f = find_faces(wide, name="wide.png")[0]
    assert f.source == "whole_image" and f.box == (7, 0, 96, 96)
    with pytest.raises(NoFaceError):
        find_faces(crop, name="crop.png", whole_image=False)


def test_raw_fer_faces_always_give_one_face():
    x, _ = sample_faces()
    for face in x[::50]:
        faces = find_faces(face)
        assert len(faces) >= 1 and faces[0].source in ("detected", "whole_image")


def test_tiny_and_blank_images():
    with pytest.raises(NoFaceError, match=r"1x1 pixels, too small"):
        find_faces(np.zeros((1, 1), np.uint8), name="dot.png")
    with pytest.raises(NoFaceError, match="too small"):
        find_faces(np.zeros((MIN_SIDE - 1, 100), np.uint8))
    with pytest.raises(NoFaceError, match="blank"):
        find_faces(np.full((48, 48), 200, np.uint8), name="gray.png")
    assert find_faces(np.zeros((1, 1), np.uint8), required=False) == []


def test_crop_at_image_edge_replicates_instead_of_shifting():
    g = np.zeros((100, 100), np.uint8)
    g[:, 50:] = 255
    # box x = -20..60 hangs off the left edge; the bright half starts at x = 50, i.e. 70/80 into the box.
    # Shifting the box into the image (x = 0..80) would put the edge at 50/80 of the crop instead.
    out = crop_face(g, (-20, 10, 80, 80), margin=0.0)
    assert out.shape == (48, 48)
    assert out[:, :38].max() <= 2 and out[:, -4:].min() >= 250


def test_is_tight_crop():
    assert is_tight_crop(48, 48) and is_tight_crop(200, 180)
    assert not is_tight_crop(640, 480) and not is_tight_crop(100, 200) and not is_tight_crop(300, 300)


def test_draw_and_overlay():
    img, boxes, _ = compose_photo(mode="RGBA")
    out = draw_faces(img, boxes, ["angry 80%"] * len(boxes))
    assert out.mode == "RGB" and out.size == img.size
    a = np.asarray(out)
    x, y, w, h = boxes[0]
    assert tuple(a[y + h // 2, x]) == (255, 64, 64)  # box outline in the box colour
    buf = io.BytesIO()
    out.save(buf, "PNG")
    ov = overlay_heatmap(np.zeros((48, 48), np.uint8), np.ones((48, 48)), size=96)
    assert ov.shape == (96, 96, 3) and ov[..., 0].mean() > ov[..., 2].mean()  # hot = red end of JET
