"""Progressive resizing (--low-res, --low-res-epochs): the side per epoch, the resampled batch, normalization at
a low side, and a real run that trains through the growing sides and evaluates at 48."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_core.config import TrainConfig
from fer_core.preprocess import AugmentConfig, Preprocess, augment_batch, fit_normalization
from fer_core.train import train


def test_side_grows_linearly_from_low_res_to_48():
    c = TrainConfig(data="x", epochs=15, low_res=24, low_res_epochs=8)
    assert [c.train_size(e) for e in range(15)] == [24, 27, 30, 33, 36, 39, 42, 45] + [48] * 7
    assert {TrainConfig(data="x", epochs=5).train_size(e) for e in range(5)} == {48}  # off by default
    assert c.epoch_cost() == pytest.approx(sum((s / 48) ** 2 for s in [24, 27, 30, 33, 36, 39, 42, 45]) + 7)


def test_a_shortened_recipe_keeps_its_share_of_low_res_epochs():
    from fer_core.recipes import recipe_config, with_epochs

    assert (lambda c: (c.epochs, c.low_res_epochs))(with_epochs(recipe_config("cpu"), 8)) == (8, 4)  # 7 of 14
    assert (lambda c: (c.epochs, c.low_res_epochs))(with_epochs(recipe_config("photo"), 7)) == (7, 4)  # 25 of 50: 3.5
    assert (lambda c: (c.epochs, c.low_res_epochs))(with_epochs(recipe_config("cpu"), 1)) == (1, 1)  # at least one
    assert (lambda c: (c.epochs, c.low_res_epochs))(with_epochs(recipe_config("best"), 30)) == (30, 0)  # none: none
    assert with_epochs(recipe_config("cpu"), None).low_res_epochs == 7


@pytest.mark.parametrize("kw, flag", [(dict(low_res=8, low_res_epochs=2), "--low-res"),
                                      (dict(low_res=24, low_res_epochs=6), "--low-res-epochs"),
                                      (dict(low_res=24), "--low-res-epochs"),
                                      (dict(low_res=48, low_res_epochs=2), "--low-res")])
def test_bad_low_res_settings_are_refused(kw, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(data="x", epochs=5, **kw).validate()


def test_augmentation_resamples_to_the_side_asked():
    x = torch.rand(4, 1, 48, 48)
    still = AugmentConfig(rotation=0.0, zoom=0.0, shift=0.0, flip=False)
    out = augment_batch(x, still, None, 24)  # (4, 1, 24, 24)
    # the identity affine at half the side samples between each 2x2 block's pixels: bilinear downsampling
    assert out.shape == (4, 1, 24, 24)
    assert torch.allclose(out, F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False), atol=1e-6)
    assert augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(0), 32).shape == (4, 1, 32, 32)


def test_per_pixel_normalization_is_resampled_to_a_low_side():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (50, 48, 48)).astype(np.uint8)
    prep = Preprocess(fit_normalization(faces, "pixel"))
    mean01 = prep.mean  # (1, 1, 48, 48): the mean face in [0, 1]
    small = F.interpolate(mean01, size=(24, 24), mode="area")
    assert prep.normalize(small).abs().max() < 1e-5  # the mean face, at 24 px, normalizes to zero
    glob = Preprocess(fit_normalization(faces, "global"))
    assert torch.allclose(glob.normalize(torch.full((1, 1, 30, 30), 0.5)),
                          (0.5 - glob.mean) / glob.std)


def test_a_run_with_low_res_epochs_learns_and_evaluates_at_48(synth_npz, tmp_path):
    from fer_core.evaluate import evaluate

    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 8}, epochs=5, batch_size=32,
                      lr=0.01, optimizer="adam", augment=True, rotation=5.0, zoom=0.05, normalize="pixel",
                      device="cpu", seed=0, low_res=24, low_res_epochs=3)
    run = train(cfg, out_dir=str(tmp_path), run_dir="lowres")
    m = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_size"] for r in m] == [24, 32, 40, 48, 48]
    assert m[-1]["train_loss"] < m[0]["train_loss"]
    assert evaluate(run / "best.pt", synth_npz, "test")["accuracy"] > 0.6  # chance: 0.14
