"""The Train page's duration estimate comes from a real, short measurement on this machine."""
import pytest

from fer_core.calibrate import Calibration, calibrate, estimate_seconds


def test_calibration_measures_real_steps():
    small = calibrate("mini_cnn", {"width": 4}, batch_size=16, steps=2)
    big = calibrate("mini_cnn", {"width": 16}, batch_size=16, steps=2)
    assert small.train_images_per_s > 0 and small.eval_images_per_s > small.train_images_per_s / 10
    # a net with 16x the multiply-adds per face trains measurably slower: the number is measured, not a constant
    assert big.train_images_per_s < small.train_images_per_s


def test_estimate_adds_epochs_of_training_and_validation():
    cal = Calibration(train_images_per_s=100.0, eval_images_per_s=1000.0, seconds=1.0)
    assert estimate_seconds(cal, n_train=1000, n_val=500, epochs=3, startup=5.0) == pytest.approx(5 + 3 * (10 + 0.5))
