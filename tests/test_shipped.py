"""The shipped checkpoints load safely and classify the bundled PublicTest sample far above chance."""
import numpy as np
import pytest

import fer_core
from fer_core.checkpoint import read_checkpoint
from tests.conftest import ROOT

SAMPLE = ROOT / "samples" / "fer2013_sample.npz"


@pytest.mark.parametrize("name,model,floor", [("fer_best.pt", "vgg_bn", 0.62), ("seed_vgg.pt", "seed_vgg", 0.5),
                                                ("fer_cpu.pt", "vgg_bn", 0.55)])
def test_shipped_checkpoint_on_bundled_sample(name, model, floor):
    path = ROOT / "checkpoints" / name
    assert path.stat().st_size < 16 * 2**20
    ck = read_checkpoint(path)
    assert ck["model_name"] == model and ck["classes"] == list(fer_core.CLASSES)
    net, prep = fer_core.load_model(path)
    faces = fer_core.load_split(SAMPLE, "test")
    acc = float((fer_core.predict_proba(net, prep, faces.x).argmax(1) == faces.y).mean())
    # chance on this class-balanced sample is 1/7 = 0.14; PublicTest accuracy is in the model card
    assert acc > floor, acc
    per_class = [float((fer_core.predict_proba(net, prep, faces.x[faces.y == k]).argmax(1) == k).mean())
                 for k in range(7)]
    assert np.mean(per_class) > floor - 0.05
