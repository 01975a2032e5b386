"""fer_core.embeddings: penultimate features are what the last layer reads (they give the predicted logits),
their shapes per architecture, the disk cache, and the 2-D projections."""
from __future__ import annotations

import numpy as np
import pytest
import torch.nn as nn

import fer_core
from fer_core import embeddings
from fer_core.inference import predict_logits
from fer_core.models import create_model
from fer_core.preprocess import Preprocess, fit_normalization
from tests.conftest import synthetic_faces


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return fer_core.load_model(tiny_checkpoint)


def test_the_last_layer_of_the_features_gives_the_logits(tiny):
    model, prep = tiny
    x, _ = synthetic_faces(70, 3)
    feats = embeddings.penultimate(model, prep, x, batch_size=32, precision="fp32")
    assert feats.shape == (70, 32) and feats.dtype == np.float32  # mini_cnn width 8: 8-16-32 channels, pooled
    last = model.head[-1]
    logits = feats @ last.weight.detach().numpy().T + last.bias.detach().numpy()
    np.testing.assert_allclose(logits, predict_logits(model, prep, x, precision="fp32"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,dim", [("seed_vgg", 2048), ("vgg_bn", 512), ("mini_cnn", 64)])
def test_feature_size_per_architecture(name, dim):
    x, _ = synthetic_faces(5, 0)
    model = create_model(name).eval()
    prep = Preprocess(fit_normalization(x, "global"))
    assert embeddings.penultimate(model, prep, x).shape == (5, dim)
    assert embeddings.penultimate(model, prep, x[:0]).shape == (0, dim)


def test_a_model_without_a_linear_head_is_refused():
    model = create_model("mini_cnn")
    model.head = nn.Sequential(nn.Flatten())
    with pytest.raises(ValueError, match="nn.Linear"):
        embeddings.penultimate_head(model)


def test_cached_on_disk_per_checkpoint_and_data(tiny, tiny_checkpoint, synth_npz, fresh_cache):
    model, prep = tiny
    faces = fer_core.load_split(synth_npz, "test")
    first = embeddings.embed(model, prep, faces, checkpoint=tiny_checkpoint)
    assert not first.from_cache and first.feats.shape == (210, 32) and len(first) == 210
    assert embeddings.embedding_cache_file(tiny_checkpoint, synth_npz, "test").exists()
    again = embeddings.embed(model, prep, faces, checkpoint=tiny_checkpoint)
    assert again.from_cache and np.array_equal(again.feats, first.feats)
    # another split is another entry; a cache that does not match the faces is recomputed
    train = fer_core.load_split(synth_npz, "train")
    assert not embeddings.embed(model, prep, train, checkpoint=tiny_checkpoint).from_cache
    embeddings.embedding_cache_file(tiny_checkpoint, synth_npz, "test").write_bytes(b"damaged")
    redone = embeddings.embed(model, prep, faces, checkpoint=tiny_checkpoint)
    assert not redone.from_cache and np.allclose(redone.feats, first.feats)
    assert not embeddings.embed(model, prep, faces, checkpoint=tiny_checkpoint, cache=False).from_cache


def test_projections(tiny, synth_npz):
    model, prep = tiny
    faces = fer_core.load_split(synth_npz, "test")
    feats = embeddings.penultimate(model, prep, faces.x, precision="fp32")
    pca = embeddings.project(feats, "pca")
    assert pca.xy.shape == (210, 2) and pca.method == "pca"
    # the two leading principal directions, by plain numpy SVD (up to each axis's sign)
    centred = feats - feats.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    want = centred @ vt[:2].T
    for k in range(2):
        assert abs(np.corrcoef(pca.xy[:, k], want[:, k])[0, 1]) > 0.9999
    assert pca.explained == pytest.approx(tuple(s[:2] ** 2 / (s**2).sum()), rel=1e-3)
    tsne = embeddings.project(feats, "tsne")
    assert tsne.xy.shape == (210, 2) and tsne.explained is None
    # a model that solved the task puts each class in its own place: nearest neighbours share the class
    d = ((tsne.xy[:, None] - tsne.xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (faces.y[d.argmin(1)] == faces.y).mean() > 0.9
    with pytest.raises(ValueError, match="at least 3"):
        embeddings.project(feats[:2])
    with pytest.raises(ValueError, match="projection must be"):
        embeddings.project(feats, "umap")
