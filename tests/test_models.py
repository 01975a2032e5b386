import pytest
import torch

from fer_core.models import count_parameters, create_model, list_models


def test_seed_vgg_has_the_reports_parameter_count():
    assert count_parameters(create_model("seed_vgg")) == 3_257_799


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_and_exposes_its_parts(name):
    m = create_model(name).eval()
    x = torch.randn(3, 1, 48, 48)  # (B, 1, 48, 48)
    assert m(x).shape == (3, 7)
    assert torch.allclose(m.head(m.features(x)), m(x))
    assert isinstance(m.first_conv, torch.nn.Conv2d) and m.first_conv.in_channels == 1
    feats = {}
    h = m.cam_layer.register_forward_hook(lambda mod, i, o: feats.setdefault("a", o))
    m(x)
    h.remove()
    assert feats["a"].dim() == 4 and feats["a"].shape[-1] >= 2  # a spatial map for Grad-CAM
    assert m.model_name == name
    # Grad-CAM's layer is named (a module path), and it is the last activation before the head's pooling
    assert m.cam_layer_name.startswith("features.") and m.get_submodule(m.cam_layer_name) is m.cam_layer
    assert isinstance(m.cam_layer, (torch.nn.ReLU, torch.nn.LeakyReLU))


def test_a_wrong_cam_layer_name_fails_when_the_model_is_built():
    from fer_core.models import FERNet

    with pytest.raises(AttributeError):
        FERNet(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), torch.nn.Flatten(), cam_layer="features.5")


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        create_model("nope")


def test_the_registry_refuses_a_second_model_of_the_same_name():
    from fer_core import models

    with pytest.raises(ValueError, match="already registered"):
        models.register(models.vgg_bn)  # a function of the same name as a registered one
    assert models.list_models().count("vgg_bn") == 1


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_of_every_model_gets_a_gradient(name):
    """One backward pass (timm's check): a parameter without a gradient is a layer the loss never reaches."""
    torch.manual_seed(0)
    net = create_model(name).train()
    loss = torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 48, 48)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.abs().sum() > 0]
    assert not missing, missing
