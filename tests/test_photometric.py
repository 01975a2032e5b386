"""Photometric augmentation (--photometric): each operation's known answer, the documented ranges, and that it is
drawn only when on (runs without it keep their exact random stream)."""
import pytest
import torch

from fer_core.preprocess import (PHOTO_BRIGHTNESS, PHOTO_GAMMA, PHOTO_NOISE, AugmentConfig, augment_batch, blur5,
                                 photometric, photometric_batch)


def faces(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 48, 48, generator=g) * 0.6 + 0.2  # (n, 1, 48, 48) in [0.2, 0.8]


def test_neutral_parameters_are_the_identity():
    x = faces()
    assert torch.allclose(photometric(x, 1.0, 0.0, 1.0, 0.0), x, atol=1e-6)
    assert torch.equal(photometric_batch(x, 0.0), x)


def test_blur_is_the_binomial_kernel_and_sharpen_minus_one_is_blur():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    k = torch.tensor([1.0, 4, 6, 4, 1]) / 16
    assert torch.allclose(blur5(x)[0, 0, 2:7, 2:7], k[:, None] * k[None, :])
    assert torch.allclose(blur5(torch.full((2, 1, 6, 6), 0.3)), torch.full((2, 1, 6, 6), 0.3))  # flat stays flat
    x = faces(2)
    assert torch.allclose(photometric(x, 1.0, 0.0, 1.0, -1.0), blur5(x), atol=1e-6)


def test_contrast_brightness_and_gamma():
    x = faces(2)
    m = x.mean((1, 2, 3), keepdim=True)
    # deviations from the mean double while nothing clips ([0.2, 0.8] about ~0.5 stays within [0, 1] at x1.5)
    assert torch.allclose(photometric(x, 1.5, 0.0, 1.0, 0.0) - m, 1.5 * (x - m), atol=1e-6)
    assert torch.allclose(photometric(x, 1.0, 0.1, 1.0, 0.0), x + 0.1, atol=1e-6)
    assert torch.allclose(photometric(x, 1.0, 0.0, 2.0, 0.0), x ** 2, atol=1e-6)
    # per-face parameters apply to their own face
    out = photometric(x, 1.0, torch.tensor([0.0, 0.1]), 1.0, 0.0)
    assert torch.allclose(out[0], x[0]) and torch.allclose(out[1], x[1] + 0.1, atol=1e-6)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_random_parameters_stay_in_their_documented_ranges(strength):
    """On a flat 0.5 face contrast and blur do nothing, so each output face is (0.5 + b) ** gamma plus noise."""
    x = torch.full((400, 1, 48, 48), 0.5)
    out = photometric_batch(x, strength, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    b, g = PHOTO_BRIGHTNESS * strength, 2 ** (PHOTO_GAMMA * strength)
    lo, hi = (0.5 - b) ** g, (0.5 + b) ** (1 / g)
    means, stds = out.mean((1, 2, 3)), out.std((1, 2, 3))
    slack = 4 * PHOTO_NOISE * strength / 48  # four standard errors of a noisy face's mean
    assert means.min() >= lo - slack and means.max() <= hi + slack
    assert means.min() < 0.5 - b / 2 and means.max() > 0.5 + b / 4  # the range is used, both ways
    assert stds.max() <= PHOTO_NOISE * strength * 1.1 and stds.min() < PHOTO_NOISE * strength * 0.2


def test_contrast_goes_both_ways_and_is_reproducible():
    x = faces(300)
    a = photometric_batch(x, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(a, photometric_batch(x, 1.0, torch.Generator().manual_seed(1)))
    ratio = a.std((1, 2, 3)) / x.std((1, 2, 3))
    assert (ratio < 0.8).sum() > 30 and (ratio > 1.25).sum() > 30


def test_augment_batch_draws_photometric_only_when_on():
    x = faces(16)
    geo = AugmentConfig(rotation=10.0, zoom=0.1, shift=0.05, flip=True)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    plain = augment_batch(x, geo, g1)
    off = augment_batch(x, AugmentConfig(10.0, 0.1, 0.05, True, 0.0, 0.0), g2)
    assert torch.equal(plain, off) and torch.equal(g1.get_state(), g2.get_state())
    g3 = torch.Generator().manual_seed(3)
    on = augment_batch(x, AugmentConfig(10.0, 0.1, 0.05, True, 0.0, 0.5), g3)
    # the same geometry (drawn first), then the photometric change on top
    assert torch.equal(on, photometric_batch(plain, 0.5, g1))
