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


def test_export_keeps_the_averaged_weights_in_fp16_and_drops_resume_state(tmp_path):
    """export_checkpoint: a run's checkpoint under --ema holds the average as `state_dict` and the trained weights
    as `train_state_dict` (to resume from); the shipped copy keeps the average only, in fp16, plus the extras."""
    import torch

    from fer_core.checkpoint import export_checkpoint, save_checkpoint
    from fer_core.models import create_model

    avg, trained = create_model("mini_cnn").state_dict(), create_model("mini_cnn").state_dict()
    src = {"format_version": 1, "model_name": "mini_cnn", "model_args": {}, "classes": list(fer_core.CLASSES),
           "normalization": {"mode": "global", "mean": torch.full((1, 1, 1), 0.5), "std": torch.full((1, 1, 1), 0.25)}, "state_dict": avg,
           "train_state_dict": trained, "optimizer": {"state": {}, "param_groups": []}, "step": 7, "epoch": 1}
    save_checkpoint(src, tmp_path / "last.pt")
    out = export_checkpoint(tmp_path / "last.pt", tmp_path / "ship.pt", hardware="a CPU")
    back = read_checkpoint(tmp_path / "ship.pt")
    assert not {"train_state_dict", "optimizer", "step"} & set(back) and back["hardware"] == "a CPU"
    assert back["epoch"] == 1 and set(back["state_dict"]) == set(avg) == set(out["state_dict"])
    for k, v in avg.items():
        if v.is_floating_point():
            assert back["state_dict"][k].dtype == torch.float16 and torch.equal(back["state_dict"][k], v.half())
        else:
            assert torch.equal(back["state_dict"][k], v)
