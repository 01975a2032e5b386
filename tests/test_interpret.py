"""fer_core.interpret / fer_core.saliency on the tiny model trained on the synthetic squares task, and on
conftest's square_reader, whose hand-set weights make the right saliency answer known exactly."""
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # conftest's helpers, importable by name
from conftest import SYNTH_POS, synthetic_faces, write_npz  # noqa: E402

from fer_core import draw, filters, interpret, load_model, load_split, regions, render, saliency, trust  # noqa: E402
from fer_core.models import FERNet  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return load_model(tiny_checkpoint)


@pytest.fixture(scope="module")
def test_faces(synth_npz):
    return load_split(synth_npz, "test")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def square_share(smap, k):
    r, c = SYNTH_POS[k]
    return smap[r : r + 10, c : c + 10].sum() / max(smap.sum(), 1e-12)


# ---------------------------------------------------------------- predictions and confusion


def test_predictions_cached_per_checkpoint_source_split_and_tta(tiny, tiny_checkpoint, test_faces, fresh_cache):
    model, prep = tiny
    first = interpret.predictions(model, prep, test_faces)
    assert not first.from_cache and first.probs.shape == (len(test_faces), 7)
    np.testing.assert_allclose(first.probs.sum(1), 1, atol=1e-5)
    assert (first.pred == first.true).mean() > 0.6  # the tiny model learned the task
    again = interpret.predictions(model, prep, test_faces)
    assert again.from_cache and np.array_equal(again.probs, first.probs)
    assert len(list((fresh_cache / "predictions").glob("*.npz"))) == 1
    tta = interpret.predictions(model, prep, test_faces, tta=True)
    assert not tta.from_cache and not np.array_equal(tta.probs, first.probs)
    # a retrained (touched) checkpoint is a new identity, so stale predictions are not served
    st = os.stat(tiny_checkpoint)
    os.utime(tiny_checkpoint, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        assert not interpret.predictions(model, prep, test_faces).from_cache
    finally:
        os.utime(tiny_checkpoint, ns=(st.st_atime_ns, st.st_mtime_ns))  # the fixture is shared by other tests
    # no caching without a checkpoint file to identify the model
    assert not interpret.predictions(model, prep, test_faces, checkpoint="/nonexistent.pt").from_cache


def test_confusion_tables_and_cells():
    y_true = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    y_pred = np.array([0, 1, 1, 1, 0, 2, 3, 3, 2, 2])
    counts, norm = interpret.confusion(y_true, y_pred)
    assert counts.shape == (7, 7) and counts.sum() == 10
    assert counts[0, 1] == 2 and counts[3, 2] == 2 and counts[1, 0] == 1
    np.testing.assert_allclose(norm[0], [1 / 3, 2 / 3, 0, 0, 0, 0, 0])
    assert norm[4].sum() == 0  # class without samples: zero row, no division by zero
    table = {r["class"]: r for r in interpret.class_table(y_true, y_pred)}
    assert table["angry"]["recall"] == pytest.approx(1 / 3) and table["angry"]["precision"] == pytest.approx(1 / 2)
    assert table["happy"]["support"] == 4
    pairs = interpret.most_confused(counts, k=3)
    assert [(p["true"], p["pred"], p["count"]) for p in pairs] == [(0, 1, 2), (3, 2, 2), (1, 0, 1)]
    assert pairs[1]["rate"] == pytest.approx(0.5) and pairs[0]["true_name"] == "angry"

    probs = np.full((10, 7), 0.01, np.float32)
    probs[np.arange(10), y_pred] = np.linspace(0.5, 0.95, 10)
    preds = interpret.Predictions(probs, y_true)
    cell = interpret.cell_samples(preds, 0, 1)
    assert list(cell) == [2, 1]  # most confident first
    assert interpret.cell_samples(preds, 5, 6).size == 0  # empty cell: empty result


def test_confusion_of_3589_faces_from_cache_under_a_second(tiny, tmp_path, fresh_cache):
    x, y = synthetic_faces(3589, seed=3)
    src = write_npz(tmp_path / "big.npz", {"test": (x, y)})
    faces = load_split(src, "test")
    model, prep = tiny
    t0 = time.perf_counter()
    interpret.predictions(model, prep, faces)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = interpret.predictions(model, prep, faces)
    counts, _ = interpret.confusion(p.true, p.pred)
    interpret.class_table(p.true, p.pred)
    interpret.most_confused(counts)
    cached = time.perf_counter() - t0
    print(f"\nconfusion of {len(faces)} faces (tiny model): first {first:.2f} s, from cache {cached * 1e3:.0f} ms")
    assert p.from_cache and counts.sum() == 3589
    assert cached < 1.0


# ---------------------------------------------------------------- saliency


@pytest.mark.parametrize("method", saliency.METHODS)
def test_saliency_finds_the_square(square_model, tiny, test_faces, method):
    # the known answer: square_model's logit k reads the pixels of square k and nothing else (conftest)
    model, prep = square_model
    idx = [int(i) for k in range(7) for i in np.flatnonzero(test_faces.y == k)[:2]]  # two faces per class
    x, y = test_faces.x[idx], test_faces.y[idx]
    maps = saliency.attribute(model, prep, x, y, method)
    assert maps.shape == (14, 48, 48) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps >= 0).all()
    # the square is 100 / 2304 = 4.3% of the face; measured 0.57 (occlusion: its 6x6 window spills over
    # the edge) to 0.99 of every map on it
    shares = np.array([square_share(m, k) for m, k in zip(maps, y)])
    assert shares.min() > 0.5, f"{method}: {shares.round(2)} of the saliency on the square"
    if method not in ("gradcam", "gradcam_pp"):
        # the logit of a class whose square is absent does not depend on any pixel: nothing to show.
        # (Grad-CAM and Grad-CAM++ weigh whole channels, so on a one-object face it shows that object for any class.)
        assert not saliency.attribute(model, prep, x, (y + 1) % 7, method).any()
    np.testing.assert_allclose(saliency.saliency(model, prep, x[6], y[6], method), maps[6],
                               rtol=1e-3, atol=1e-4 * maps[6].max())

    # the tiny trained net (BN, pooling, 12x12 Grad-CAM layer): valid maps, batched = single, and more saliency
    # on the square than its area share. Measured over 13 training seeds x ATEN_CPU_CAPABILITY default/avx512:
    # the lowest mean share was 0.115 (SmoothGrad), 2.6x the area share; what exactly a trained net uses is
    # not asserted (on some kernels its Grad-CAM leans to a neighbouring square, see issue 15).
    model, prep = tiny
    idx = [int(np.flatnonzero(test_faces.y == k)[0]) for k in range(7)]  # one face per class
    maps = saliency.attribute(model, prep, test_faces.x[idx], test_faces.y[idx], method)
    assert maps.shape == (7, 48, 48) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps >= 0).all() and (maps.sum((1, 2)) > 0).all()
    share = np.mean([square_share(m, k) for m, k in zip(maps, range(7))])
    assert share > 100 / 2304, f"{method}: {share:.3f} of the trained net's saliency on the square"
    np.testing.assert_allclose(saliency.saliency(model, prep, test_faces.x[idx[3]], 3, method), maps[3],
                               rtol=1e-3, atol=1e-4 * maps[3].max())


def test_gradcam_needs_a_conv_layer(tiny, test_faces):
    _, prep = tiny
    mlp = FERNet(nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 16), nn.ReLU()), nn.Linear(16, 7), cam_layer="features.2").eval()
    with pytest.raises(ValueError, match="Grad-CAM needs a convolutional layer"):
        saliency.saliency(mlp, prep, test_faces.x[0], 0, "gradcam")
    assert saliency.saliency(mlp, prep, test_faces.x[0], 0, "vanilla").shape == (48, 48)  # others still work
    with pytest.raises(ValueError, match="unknown saliency method"):
        saliency.saliency(mlp, prep, test_faces.x[0], 0, "lime")


def test_randomization_check_separates_trained_from_random(tiny, test_faces):
    model, prep = tiny
    rnd = trust.randomized_model(model)
    assert rnd is not model and trust.randomized_model(model) is rnd  # cached per architecture
    assert not torch.equal(rnd.first_conv.weight, model.first_conv.weight)
    rhos, trained_share, random_share = [], [], []
    for k in range(7):
        i = int(np.flatnonzero(test_faces.y == k)[0])
        res = trust.randomization_check(model, prep, test_faces.x[i], k, "vanilla")
        rhos.append(res["spearman"])
        trained_share.append(square_share(saliency.saliency(model, prep, test_faces.x[i], k), k))
        random_share.append(square_share(res["random_map"], k))
        assert res["passed"] == (res["spearman"] < trust.SANITY_MAX_RHO)
    # the trained model's map differs from the random net's and points at the square; the random one does not
    assert max(rhos) < trust.SANITY_MAX_RHO
    assert np.mean(trained_share) > 2 * np.mean(random_share)
    # an "explanation" that ignores the model (the face itself) is the same for both nets: the check fails it
    edge = trust.randomization_check(model, prep, test_faces.x[0], 0, lambda m, p, f, t: f.astype(np.float32))
    assert edge["spearman"] == pytest.approx(1.0) and not edge["passed"]


def test_spearman():
    a = np.arange(100.0)
    assert trust.spearman(a, a ** 3) == pytest.approx(1.0)
    assert trust.spearman(a, -a) == pytest.approx(-1.0)
    assert trust.spearman(a, np.zeros(100)) == 0.0


def test_deletion_insertion_rewards_faithful_maps(tiny, test_faces):
    model, prep = tiny
    k = 4
    i = int(np.flatnonzero(test_faces.y == k)[0])
    face = test_faces.x[i]
    good = saliency.saliency(model, prep, face, k, "occlusion")
    res = trust.deletion_insertion(model, prep, face, k, good)
    assert res["deletion_auc"] < res["deletion_random_auc"]
    assert res["insertion_auc"] > res["insertion_random_auc"]
    assert res["score"] > 0.05
    assert len(res["fractions"]) == len(res["deletion_curve"]) == 17
    # the same map upside down (least salient first) must score below chance, against the same random curves
    bad = trust.deletion_insertion(model, prep, face, k, -good)
    assert bad["score"] < 0 and bad["deletion_random_auc"] == res["deletion_random_auc"]
    tr = trust.trust(model, prep, face, k, "vanilla")
    assert {"score", "deletion_gain", "insertion_gain", "sanity_spearman", "sanity_passed"} <= set(tr)


# ---------------------------------------------------------------- class averages and regions


def test_class_average_points_at_each_class_square(square_model, test_faces):
    # known answer (the hand-set model, not a trained one: a trained net's Grad-CAM average of class 4 landed
    # on square 6 under some kernels, issue 15): each class average lies on that class's square
    model, prep = square_model
    avg = regions.class_average(model, prep, test_faces.x, test_faces.y, "gradcam", per_class=6)
    assert avg.maps.shape == (7, 48, 48) and list(avg.counts) == [6] * 7
    np.testing.assert_allclose(avg.maps.sum((1, 2)), 1, rtol=1e-4)
    shares = np.array([[square_share(avg.maps[c], k) for k in range(7)] for c in range(7)])  # (class, square)
    assert (shares.argmax(1) == np.arange(7)).all() and np.diag(shares).min() > 0.5, shares.round(2)


def test_class_average_with_a_missing_class(tiny, test_faces):
    model, prep = tiny
    keep = test_faces.y != 2
    avg = regions.class_average(model, prep, test_faces.x[keep], test_faces.y[keep], "vanilla", per_class=2)
    assert avg.counts[2] == 0 and avg.maps[2].sum() == 0 and avg.counts.sum() == 12


def test_regions_partition_the_face():
    masks = regions.region_masks()
    assert list(masks) == ["eyes_brows", "nose", "mouth", "other"]
    total = sum(m.astype(int) for m in masks.values())
    assert (total == 1).all()  # disjoint and covering
    np.testing.assert_allclose(regions.region_shares(np.ones((48, 48))), regions.area_shares())
    mouth_only = masks["mouth"].astype(float)
    np.testing.assert_allclose(regions.region_shares(mouth_only), [0, 0, 1, 0])
    stacked = regions.region_shares(np.stack([mouth_only, masks["nose"] * 2.0]))
    assert stacked.shape == (2, 4) and stacked[1, 1] == 1.0


# ---------------------------------------------------------------- first layer


def test_filter_weights_and_responses(tiny, test_faces):
    model, prep = tiny
    w = filters.filter_weights(model)
    assert w.shape == (8, 3, 3)
    np.testing.assert_allclose(w, model.first_conv.weight.detach()[:, 0].numpy())
    face = test_faces.x[0]
    raw = filters.filter_responses(model, prep, face, activation=False)
    conv = model.first_conv
    expect = F.conv2d(prep(face[None]), conv.weight, conv.bias, padding=conv.padding)[0].detach().numpy()
    np.testing.assert_allclose(raw, expect, rtol=1e-4, atol=1e-5)
    act = filters.filter_responses(model, prep, face)
    assert act.shape == (8, 48, 48) and (act >= 0).all()  # after BN + ReLU


def test_first_layer_needs_a_conv(tiny):
    _, prep = tiny
    mlp = FERNet(nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 16)), nn.Linear(16, 7), cam_layer="features.1")
    with pytest.raises(ValueError, match="no convolutional first layer"):
        filters.filter_weights(mlp)


def test_top_patches_are_the_strongest_responses(tiny, test_faces):
    model, prep = tiny
    faces = test_faces.x[:60]
    top = filters.top_patches(model, prep, faces, k=5, context=3)
    assert top.patches.shape == (8, 5, 9, 9) and top.patches.dtype == np.uint8
    assert (np.diff(top.values, axis=1) <= 1e-6).all()  # strongest first
    assert all(len(set(r)) == 5 for r in top.face_index)  # distinct faces per filter
    for f in (0, 5):
        for j in (0, 4):
            i, r, c = top.face_index[f, j], top.rows[f, j], top.cols[f, j]
            resp = filters.filter_responses(model, prep, faces[i])[f]
            assert resp.max() == pytest.approx(top.values[f, j], rel=1e-4, abs=1e-5)
            # the patch is the face around the receptive field (zeros where it hangs over the border)
            padded = np.pad(faces[i], 10)
            np.testing.assert_array_equal(top.patches[f, j], padded[r - 3 + 10 : r + 6 + 10, c - 3 + 10 : c + 6 + 10])
    # the strongest response overall is the strongest over every face
    all_max = np.stack([filters.filter_responses(model, prep, x) for x in faces]).max((0, 2, 3))
    np.testing.assert_allclose(top.values[:, 0], all_max, rtol=1e-4, atol=1e-5)


def test_receptive_fields_compose_convs_and_poolings():
    from fer_core.models import create_model

    seed = create_model("seed_vgg")  # valid 3x3 convs, 2x2 pools
    assert filters.conv_layers(seed) == [0, 2, 6, 8, 12, 14]
    assert [filters.receptive_field(seed, i) for i in range(6)] == [
        (3, 1, 0), (5, 1, 0), (10, 2, 0), (14, 2, 0), (24, 4, 0), (32, 4, 0)]
    vgg = create_model("vgg_bn")  # same-padded convs: the padding shifts the field up and left
    assert [filters.receptive_field(vgg, i) for i in (0, 1, 2)] == [(3, 1, 1), (5, 1, 2), (10, 2, 4)]
    with pytest.raises(ValueError, match="conv layer 6 does not exist"):
        filters.filter_weights(seed, 6)


def test_any_conv_layer_weights_responses_and_patches(tiny, test_faces):
    """Layer 1 (the second conv) through the same functions: the weights are its kernels averaged over input
    channels, the responses its BN + ReLU outputs, each top patch the face around the 5x5 receptive field of the
    peak, whose response is the highest of that face."""
    model, prep = tiny
    conv = model.features[filters.conv_layers(model)[1]]
    w = filters.filter_weights(model, 1)
    np.testing.assert_allclose(w, conv.weight.detach().mean(1).numpy(), rtol=1e-6)
    face = test_faces.x[0]
    resp = filters.filter_responses(model, prep, face, layer=1)
    expect = model.features[: filters.conv_layers(model)[1] + 3](prep(face[None]))[0].detach().numpy()
    np.testing.assert_allclose(resp, expect, rtol=1e-4, atol=1e-5)
    faces = test_faces.x[:40]
    top = filters.top_patches(model, prep, faces, k=4, context=2, layer=1)
    assert top.field == 5 and top.context == 2 and top.patches.shape == (conv.out_channels, 4, 9, 9)
    for f in (0, 7):
        for j in (0, 3):
            i, r, c = top.face_index[f, j], top.rows[f, j], top.cols[f, j]
            maps = filters.filter_responses(model, prep, faces[i], layer=1)[f]
            assert maps.max() == pytest.approx(top.values[f, j], rel=1e-4, abs=1e-5)
            # the peak's output position, with same padding 2: its field starts 2 up and 2 left of it
            pr, pc = np.unravel_index(maps.argmax(), maps.shape)
            assert (r, c) == (pr - 2, pc - 2)
            padded = np.pad(faces[i], 10)
            np.testing.assert_array_equal(top.patches[f, j], padded[r - 2 + 10 : r + 7 + 10, c - 2 + 10 : c + 7 + 10])
    # the first layer stays what it was: the default
    np.testing.assert_array_equal(filters.filter_weights(model), filters.filter_weights(model, 0))


# ---------------------------------------------------------------- rendering


def test_renderers():
    face = np.full((48, 48), 100, np.uint8)
    smap = np.zeros((48, 48), np.float32)
    smap[10:20, 10:20] = 1
    ov = draw.overlay(face, smap, 0.5, scale=4)
    assert ov.shape == (192, 192, 3) and ov.dtype == np.uint8
    assert not np.array_equal(ov[60, 60], ov[150, 150])  # hot and cold places differ
    np.testing.assert_array_equal(draw.overlay(face, smap, 0.0, scale=1)[..., 0], face)  # opacity 0: the face
    m = draw.mosaic(np.zeros((5, 4, 4), np.uint8), ncols=2, pad=1)
    assert m.shape == (3 * 5 - 1, 2 * 5 - 1)
    assert render.filter_grid(np.random.randn(8, 3, 3), ncols=4, scale=5).shape == (2 * 17 - 2, 4 * 17 - 2, 3)
    assert regions.region_image(face).shape == (48, 48, 3)

# Speed on the shipped models is measured by benchmarks/interpret_speed.py (no timing asserts in tests).


# ---------------------------------------------------------------- DeepLift, GradientSHAP, Grad-CAM++ and settings

NEW_METHODS = ("deeplift", "gradient_shap", "gradcam_pp")


@pytest.mark.parametrize("method", NEW_METHODS)
def test_new_methods_find_the_square(tiny, test_faces, method):
    """The known right answer of the synthetic task: class k is decided by the bright square at SYNTH_POS[k]."""
    model, prep = tiny
    idx = [int(np.flatnonzero(test_faces.y == k)[0]) for k in range(7)]  # one face per class
    maps = saliency.attribute(model, prep, test_faces.x[idx], test_faces.y[idx], method)
    assert maps.shape == (7, 48, 48) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps >= 0).all() and (maps.sum((1, 2)) > 0).all()
    shares = np.array([square_share(m, k) for m, k in zip(maps, range(7))])
    # the square is 4.3% of the face: a map that explains the model puts several times that on it
    assert shares.mean() > 3 * 100 / 2304, f"{method}: {shares.round(3)} of the saliency on the square"
    # and more on the face's own square than on the other classes' squares (the model's evidence, not edges)
    own_vs_other = [square_share(m, k) > np.mean([square_share(m, j) for j in range(7) if j != k])
                    for m, k in zip(maps, range(7))]
    assert sum(own_vs_other) >= 6, own_vs_other
    # a face gets the same map alone as in a batch (seeded noise per face); loose tolerance: float sums
    # are ordered differently in a batch on different CPUs
    single = saliency.saliency(model, prep, test_faces.x[idx[3]], 3, method)
    assert trust.spearman(single, maps[3]) > 0.99
    np.testing.assert_allclose(single.sum(), maps[3].sum(), rtol=1e-3)


def test_gradcam_pp_agrees_with_gradcam_on_where_the_evidence_is(tiny, test_faces):
    model, prep = tiny
    idx = [int(np.flatnonzero(test_faces.y == k)[0]) for k in range(7)]
    cam = saliency.attribute(model, prep, test_faces.x[idx], test_faces.y[idx], "gradcam")
    campp = saliency.attribute(model, prep, test_faces.x[idx], test_faces.y[idx], "gradcam_pp")
    rho = [trust.spearman(a, b) for a, b in zip(cam, campp)]
    assert np.median(rho) > 0.5, np.round(rho, 2)  # related, as both weight the same layer's activations


def test_saliency_settings_change_the_map_and_are_checked(tiny, test_faces):
    model, prep = tiny
    k = 2
    face = test_faces.x[int(np.flatnonzero(test_faces.y == k)[0])]
    for method, setting, a, b in [("integrated_gradients", "baseline", "mean", "black"),
                                  ("integrated_gradients", "ig_steps", 4, 64),
                                  ("deeplift", "baseline", "mean", "blur"),
                                  ("gradient_shap", "noise", 0.0, 0.5),
                                  ("smoothgrad", "noise", 0.05, 0.25),
                                  ("occlusion", "window", 4, 12)]:
        m1 = saliency.saliency(model, prep, face, k, method, **{setting: a})
        m2 = saliency.saliency(model, prep, face, k, method, **{setting: b})
        assert not np.allclose(m1, m2), f"{method}: {setting} {a} vs {b} gave the same map"
        # either way the map still points at the square
        assert square_share(m1, k) > 3 * 100 / 2304 and square_share(m2, k) > 3 * 100 / 2304, (method, setting)
    # the default (training-mean) baseline is the zero image in normalized space; "black" is pixel value 0
    black = saliency.saliency(model, prep, np.zeros((48, 48), np.uint8), k, "integrated_gradients", baseline="black")
    assert black.max() < 1e-6  # the face equals its baseline: nothing to attribute (IG completeness)
    with pytest.raises(ValueError, match="unknown baseline"):
        saliency.saliency(model, prep, face, k, "deeplift", baseline="noise")
    with pytest.raises(ValueError, match="out of range"):
        saliency.saliency(model, prep, face, k, "occlusion", window=0)
    assert set(saliency.METHOD_SETTINGS) == set(saliency.METHODS) == set(saliency.METHOD_NAMES)


def test_gradcam_pp_needs_a_conv_layer(tiny, test_faces):
    _, prep = tiny
    mlp = FERNet(nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 16), nn.ReLU()), nn.Linear(16, 7), cam_layer="features.2").eval()
    with pytest.raises(ValueError, match="Grad-CAM needs a convolutional layer"):
        saliency.saliency(mlp, prep, test_faces.x[0], 0, "gradcam_pp")
    assert saliency.saliency(mlp, prep, test_faces.x[0], 0, "deeplift").shape == (48, 48)


def test_display_helpers_number_label_and_scale():
    w = np.random.default_rng(0).normal(size=(6, 3, 3))
    plain = render.filter_grid(w, ncols=3, scale=8, pad=4)
    numbered = render.filter_grid(w, ncols=3, scale=8, pad=4, numbered=True)
    assert plain.shape == (2 * 24 + 4, 3 * 24 + 2 * 4, 3) and numbered.shape == (2 * (24 + 14) + 4, 3 * 24 + 8, 3)
    strip = numbered[24:38, :24]  # under kernel 0: its number, dark text on white
    assert (strip < 100).any() and (strip == 255).mean() > 0.5
    assert not np.array_equal(draw.text_strip("1", 24), draw.text_strip("2", 24))
    # every tile of the "All filters" rows has the same size: kernel (3x3) and patches (9x9) alike
    patches = np.random.default_rng(1).integers(0, 255, (6, 4, 9, 9), dtype=np.uint8)
    rows = render.filter_rows(w, patches, np.ones((6, 4)), size=30, pad=5, label_width=50)
    assert rows.shape == (6 * (30 + 14) + 5 * 5, 50 + 5 * 30 + 4 * 5, 3)
    first_patch = rows[:30, 50 + 35 : 50 + 65, 0]
    np.testing.assert_array_equal(first_patch, np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).fromarray(patches[0, 0]).resize((30, 30), 0)))
    # colour scales: low to high left to right; the symmetric one is white in the middle
    bar = draw.colorbar("viridis", 100, 6)
    assert bar.shape == (6, 100, 3) and not np.array_equal(bar[0, 0], bar[0, -1])
    mid = draw.colorbar("bwr", 101, 4, symmetric=True)[0, 50]
    assert (mid > 240).all()
    assert set(regions.region_hex()) == set(regions.region_masks())  # a colour for every region, "other" too
