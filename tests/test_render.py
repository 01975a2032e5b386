"""fer_core.render: the Filters page's filter detail and the class mean faces, on arrays made by hand."""
import numpy as np
import pytest

from fer_core import render
from fer_core.filters import TopPatches


def hand_top():
    """Two filters, two patches each (3x3): patch values are distinct so each can be found again."""
    patches = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3) * 7
    return TopPatches(patches=patches, face_index=np.array([[4, 1], [0, 9]]), rows=np.zeros((2, 2), int),
                      cols=np.zeros((2, 2), int), values=np.array([[1.25, 0.5], [3.0, 2.875]]))


def test_filter_detail_kernel_patches_and_captions():
    weights = np.zeros((2, 3, 3), np.float32)
    weights[1, 0, 0], weights[1, 2, 2] = 1.0, -1.0  # filter 1: + top-left, - bottom-right, 0 elsewhere
    d = render.filter_detail(weights, hand_top(), 1, kernel_scale=4, patch_scale=2)
    # the kernel: 3x3 cells of 4x4 pixels, red where the weight is +max, blue where -max, white at 0
    assert d.kernel.shape == (12, 12, 3) and d.kernel.dtype == np.uint8
    r, g, b = (d.kernel[..., c].astype(int) for c in range(3))
    assert (r[:4, :4] > 100).all() and (b[:4, :4] < 10).all()  # top-left cell red
    assert (b[8:, 8:] > 100).all() and (r[8:, 8:] < 10).all()  # bottom-right cell blue
    assert (d.kernel[4:8, 4:8] >= 250).all()  # the centre, weight 0: white
    # the patches of filter 1, each pixel a 2x2 block, strongest first
    top = hand_top()
    assert [p.shape for p in d.patches] == [(6, 6), (6, 6)]
    for got, src in zip(d.patches, top.patches[1]):
        for i in range(3):
            for j in range(3):
                assert (got[2 * i : 2 * i + 2, 2 * j : 2 * j + 2] == src[i, j]).all()
    assert d.captions == ["#0 · 3.00", "#9 · 2.88"]
    # the page's default sizes: 3x3 kernels at 24 px a cell, 3x3 patches at 8
    d0 = render.filter_detail(weights, top, 0)
    assert d0.kernel.shape == (72, 72, 3) and d0.patches[0].shape == (24, 24)
    assert d0.captions == ["#4 · 1.25", "#1 · 0.50"]
    with pytest.raises(IndexError):
        render.filter_detail(weights, top, 2)


def test_filter_choice_names_the_peak_response():
    assert render.filter_choice(hand_top(), 0) == "filter 0 (peak response 1.25)"
    assert render.filter_choice(hand_top(), 1) == "filter 1 (peak response 3.00)"


def test_split_face_and_label():
    x = np.arange(3 * 48 * 48, dtype=np.uint8).reshape(3, 48, 48)
    face, label = render.split_face(x, np.array([0, 3, 6]), 1)
    np.testing.assert_array_equal(face, x[1])
    assert label == "#1 · happy"
    assert render.split_face(x, np.array([0, 3, 6]), 2)[1] == "#2 · neutral"


def test_class_mean_faces():
    x = np.zeros((4, 2, 2), np.uint8)
    x[0], x[1], x[2], x[3] = 10, 30, 200, 7
    y = np.array([0, 0, 2, 6])
    m = render.class_mean_faces(x, y)
    assert m.shape == (7, 2, 2)
    np.testing.assert_array_equal(m[:, 0, 0], [20, 0, 200, 0, 0, 0, 7])  # no face of classes 1, 3, 4, 5: zeros
    assert render.class_mean_faces(x, y, n_classes=3).shape == (3, 2, 2)


def test_with_field_outlines_the_receptive_field():
    patch = np.full((7, 7), 50, np.uint8)
    img = render.with_field(patch, context=2, size=3, scale=2)
    assert img.shape == (14, 14, 3)
    box = np.all(img == render.FIELD_COLOR, axis=2)
    # the outline: rows/cols 4 and 9 (pixels 2..4 of the patch, enlarged 2x), from 4 to 9
    assert box[4, 4:10].all() and box[9, 4:10].all() and box[4:10, 4].all() and box[4:10, 9].all()
    assert not box[5:9, 5:9].any() and (img[5:9, 5:9] == 50).all()  # the field itself is untouched
    assert not box[:4].any() and not box[10:].any()  # the context around it too
    d = render.filter_detail(np.zeros((2, 3, 3)), hand_top(), 0, patch_scale=2, field=True)
    assert d.patches[0].shape == (6, 6, 3)  # TopPatches without a field: RGB patches, nothing drawn
