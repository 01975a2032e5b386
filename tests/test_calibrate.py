"""The Train page's duration estimate comes from a real, short measurement on this machine."""
import pytest

from fer_core.calibrate import Calibration, calibrate, estimate_from_calibration


def test_calibration_runs_real_steps_for_its_time_budget():
    cal = calibrate("mini_cnn", {"width": 4}, batch_size=16, steps=2, budget_s=0.3)
    # it trained for at least its budget (a measurement, not a table lookup) and reports finite rates
    assert cal.seconds >= 0.3
    assert 0 < cal.train_images_per_s < float("inf") and 0 < cal.eval_images_per_s < float("inf")


def test_trainer_settings_follow_the_config_and_the_cpu(monkeypatch):
    from fer_core import precision as cal_mod
    from fer_core.config import TrainConfig

    monkeypatch.setattr("fer_core.inference.cpu_native_bf16", lambda: True)
    assert cal_mod.trainer_settings(TrainConfig(cpu_fast=True), "cpu") == dict(amp=True, channels_last=True)
    assert cal_mod.trainer_settings(TrainConfig(), "cpu") == dict(amp=False, channels_last=False)
    assert cal_mod.trainer_settings(TrainConfig(), "cuda") == dict(amp=True, channels_last=True)
    monkeypatch.setattr("fer_core.inference.cpu_native_bf16", lambda: False)
    assert cal_mod.trainer_settings(TrainConfig(cpu_fast=True), "cpu") == dict(amp=False, channels_last=True)


def test_estimate_adds_epochs_of_training_and_validation():
    cal = Calibration(train_images_per_s=100.0, eval_images_per_s=1000.0, seconds=1.0)
    assert estimate_from_calibration(cal, n_train=1000, n_val=500, epochs=3, startup=5.0) == pytest.approx(5 + 3 * (10 + 0.5))
    # low-resolution epochs (TrainConfig.epoch_cost): 1.5 epochs' worth of training, 3 evaluations
    assert estimate_from_calibration(cal, 1000, 500, 3, startup=5.0, train_epochs=1.5) == pytest.approx(5 + 15 + 1.5)


def test_one_slowed_step_does_not_move_the_rate(monkeypatch):
    """Each rate is the batch over the median call. On a clock that only the net's forward pass moves (20 ms a
    pass; every 4th pass 400 ms, as if another process took the cores), the rates are exactly 10 faces / 20 ms,
    where the mean would read 2-3x slower."""
    import torch

    from fer_core import calibrate as cal_mod

    now = [0.0]

    class Stalling(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.calls = torch.nn.Linear(48 * 48, 7), 0

        def forward(self, x):
            self.calls += 1
            now[0] += 0.4 if self.calls % 4 == 0 else 0.02
            return self.lin(x.flatten(1))

    monkeypatch.setattr(cal_mod, "create_model", lambda name, **kw: Stalling())
    cal = cal_mod.calibrate("stalling", batch_size=10, steps=7, budget_s=0.1, clock=lambda: now[0])
    assert cal.train_images_per_s == pytest.approx(10 / 0.02) and cal.eval_images_per_s == pytest.approx(10 / 0.02)
    assert cal.seconds == pytest.approx(now[0])
