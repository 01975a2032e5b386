"""lr_at: the learning rate at a step is computed (so resuming needs no scheduler state); known values."""
import math

import pytest

from fer_core.config import TrainConfig
from fer_core.steps import lr_at


def cfg(schedule, warmup_epochs=0.0, epochs=10, lr=0.1):
    return TrainConfig(schedule=schedule, warmup_epochs=warmup_epochs, epochs=epochs, lr=lr)


def test_constant():
    assert [lr_at(cfg("constant"), s, 100) for s in (0, 50, 99)] == [0.1, 0.1, 0.1]


def test_linear_warmup_then_constant():
    c = cfg("constant", warmup_epochs=2)  # 20% of the steps
    assert lr_at(c, 0, 100) == 0.0
    assert lr_at(c, 10, 100) == pytest.approx(0.05)
    assert lr_at(c, 20, 100) == pytest.approx(0.1) and lr_at(c, 90, 100) == pytest.approx(0.1)


def test_cosine_from_peak_to_zero():
    c = cfg("cosine")
    assert lr_at(c, 0, 100) == pytest.approx(0.1)
    assert lr_at(c, 50, 100) == pytest.approx(0.05)
    assert lr_at(c, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_step_divides_by_ten_at_half_and_three_quarters():
    c = cfg("step")
    assert [lr_at(c, s, 100) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_onecycle_warms_up_over_15_percent_then_cosine_decays():
    c = cfg("onecycle")
    assert lr_at(c, 0, 100) == pytest.approx(0.004)  # starts at 4% of the peak
    assert lr_at(c, 15, 100) == pytest.approx(0.1 + 1e-6)  # the peak at 15%
    assert lr_at(c, 7.5, 100) == pytest.approx(0.1 * (0.04 + 0.96 * 0.5))
    mid = 15 + 85 / 2
    assert lr_at(c, mid, 100) == pytest.approx(0.05 + 1e-6)
    assert lr_at(c, 100, 100) == pytest.approx(1e-6)
    # an explicit warm-up replaces the default 15%
    assert lr_at(cfg("onecycle", warmup_epochs=5), 50, 100) == pytest.approx(0.1 + 1e-6)
    assert lr_at(cfg("onecycle", warmup_epochs=5), 75, 100) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)) + 1e-6)
