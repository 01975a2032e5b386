"""The fast inference twin: batch norm folded, bf16 where the CPU has it; same answers as the model itself."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from fer_core.inference import fast_model, fold_batchnorm, inference_precision, predict_logits
from fer_core.models import create_model
from tests.conftest import synthetic_faces


def bn_model(seed: int = 0):
    """mini_cnn with non-trivial batch-norm statistics and affine parameters (a fresh BN folds to identity)."""
    torch.manual_seed(seed)
    model = create_model("mini_cnn", width=8)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def direct_logits(model, prep, x):
    with torch.no_grad():
        return model(prep(x)).numpy()


def test_fold_batchnorm_keeps_outputs_and_drops_every_bn():
    model = bn_model()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "the model itself must stay untouched"
    x = torch.randn(5, 1, 48, 48)
    with torch.no_grad():
        a, b = model(x), folded(x)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * a.abs().max().item())


def test_fp32_predictions_equal_the_model(square_model):
    model, prep = square_model
    x, _ = synthetic_faces(40, 3)
    want = direct_logits(model, prep, x)
    got = predict_logits(model, prep, x, precision="fp32", batch_size=16)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_bf16_predictions_match_to_bf16_rounding(square_model):
    # bf16 keeps 8 bits of mantissa: logits agree to ~1%, and on a model that separates its classes
    # clearly the predicted class is the same for every face
    model, prep = square_model
    x, y = synthetic_faces(70, 4)
    want = direct_logits(model, prep, x)
    got = predict_logits(model, prep, x, precision="bf16")
    assert np.abs(got - want).max() <= 0.03 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).all() and (got.argmax(1) == y).all()


def test_twin_follows_in_place_weight_changes():
    model = bn_model(1)
    from fer_core.preprocess import Preprocess, fit_normalization

    x, _ = synthetic_faces(8, 5)
    prep = Preprocess(fit_normalization(x, "global"))
    before = predict_logits(model, prep, x, precision="fp32")
    assert fast_model(model, "fp32")[0] is fast_model(model, "fp32")[0], "the twin is built once, not per call"
    with torch.no_grad():
        model.head[-1].bias.add_(torch.arange(7.0))  # class k gains k: the twin must see it
    after = predict_logits(model, prep, x, precision="fp32")
    np.testing.assert_allclose(after - before, np.tile(np.arange(7.0), (8, 1)), atol=1e-4)
    import copy

    copy.deepcopy(model)  # the twins' oneDNN tensors live outside the model: copies (randomized_model) still work
    assert set(model.state_dict()) == set(bn_model().state_dict())


def test_precision_choice(monkeypatch):
    monkeypatch.delenv("FER_PRECISION", raising=False)
    assert inference_precision("cpu", "fp32") == "fp32" and inference_precision("cpu", "bf16") == "bf16"
    assert inference_precision("cuda", "auto") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert inference_precision("cpu") == "fp32", "emulated bf16 is slower than fp32: auto must not pick it"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert inference_precision("cpu") == "bf16"
    monkeypatch.setenv("FER_PRECISION", "fp32")
    assert inference_precision("cpu") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        inference_precision("cpu", "int4")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch", [1, 64])
def test_convolutions_fused_when_onednn_has_the_op(precision, batch):
    # the fallback (folded model only) is correct but slower: make sure it is not what this torch gets
    from fer_core.inference import FusedConv

    if not hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        pytest.skip("this torch has no oneDNN pointwise convolution")
    from fer_core.inference import cpu_native_bf16

    model = bn_model(2)
    twin, dtype = fast_model(model, precision, batch)
    convs = [m for m in twin.modules() if isinstance(m, FusedConv)]
    if precision == "fp32" or cpu_native_bf16():  # without native bf16 oneDNN has no fused bf16 op: the fallback
        assert len(convs) == sum(isinstance(m, nn.Conv2d) for m in model.modules())
        assert all(c.attr == "relu" for c in convs) and not any(isinstance(m, nn.ReLU) for m in twin.modules())
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        want = model(x)
        got = twin(x.to(dtype).contiguous(memory_format=torch.channels_last)).float()
    tol = 0.03 if precision == "bf16" else 1e-4
    assert torch.allclose(got, want, rtol=tol, atol=tol * want.abs().max().item())


def test_leaky_relu_fused_with_its_slope():
    from fer_core.inference import FusedConv

    if not hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        pytest.skip("this torch has no oneDNN pointwise convolution")
    torch.manual_seed(0)
    model = create_model("seed_vgg", negative_slope=0.3).eval()
    twin, _ = fast_model(model, "fp32", 1)
    convs = [m for m in twin.modules() if isinstance(m, FusedConv)]
    assert len(convs) == 6 and all(c.attr == "leaky_relu" and c.scalars == [0.3] for c in convs)
    x = torch.randn(1, 1, 48, 48)
    with torch.no_grad():
        want, got = model(x), twin(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_falls_back_to_the_folded_model_when_fusing_fails(monkeypatch):
    import fer_core.inference as inf

    def broken(*a, **k):
        raise RuntimeError("could not create a primitive")

    monkeypatch.setattr(inf, "fuse_convs", broken)
    model = bn_model(3)
    twin, _ = fast_model(model, "fp32", 64)
    assert not any(isinstance(m, inf.FusedConv) for m in twin.modules())
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        want, got = model(x), twin(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_read_only_faces_are_read_without_a_warning(tmp_path):
    """Faces from a read-only array (a decoded cache, a frame buffer) are copied, not shared with
    a torch warning that the CLI would print; the values are those of a writable copy. In a fresh process, since
    torch gives that warning once per process."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = """
import numpy as np, torch
from fer_core.preprocess import Preprocess, fit_normalization
x = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48)
ro = x.copy(); ro.flags.writeable = False
prep = Preprocess(fit_normalization(x, "global"))
out = prep(ro[:, ::-1])  # read-only and not contiguous
assert torch.equal(out, prep(np.ascontiguousarray(x[:, ::-1]))), "values differ"
assert torch.equal(prep(ro), prep(x.copy()))
"""
    r = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-1500:]
