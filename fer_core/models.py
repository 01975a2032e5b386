"""Model registry. Every model is FERNet: `features` (conv trunk) + `head` (classifier), so saliency,
Grad-CAM and filter views can reach the first conv (`first_conv`) and the last conv block (`cam_layer`)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

_REGISTRY: dict[str, Callable[..., "FERNet"]] = {}


def register(fn):
    """Add a model constructor under its function name; a second model of the same name is refused (timm), so
    a checkpoint's model_name always means one architecture."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> "FERNet":
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r} (available: {', '.join(list_models())})")
    model = _REGISTRY[name](**kwargs)
    model.model_name, model.model_args = name, dict(kwargs)
    return model


class FERNet(nn.Module):
    def __init__(self, features: nn.Sequential, head: nn.Sequential, cam_layer: str):
        super().__init__()
        self.features = features  # (B, 1, 48, 48) -> (B, C, h, w)
        self.head = head  # (B, C, h, w) -> (B, num_classes) logits
        self.cam_layer_name = cam_layer  # module path of the last conv block's activation, e.g. "features.25"
        self.get_submodule(cam_layer)  # a wrong name fails here, not in the first Grad-CAM
        self.model_name, self.model_args = "", {}

    def forward(self, x):
        return self.head(self.features(x))

    @property
    def first_conv(self) -> nn.Conv2d:
        return next(m for m in self.features.modules() if isinstance(m, nn.Conv2d))

    @property
    def cam_layer(self) -> nn.Module:
        """Output of the last conv block, before its pooling: Grad-CAM's target."""
        return self.get_submodule(self.cam_layer_name)


def _conv(cin, cout, pad, bn, act):
    layers = [nn.Conv2d(cin, cout, 3, padding=pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(act())
    return layers


@register
def seed_vgg(num_classes: int = 7, dropout: float = 0.25, dense_dropout: float = 0.5, negative_slope: float = 0.3):
    """The course report's network: 3x3 'valid' convs 64-64 / 128-128 / 256-256 with LeakyReLU (Keras'
    default slope 0.3), 2x2 max-pool + dropout after each pair, dense 2048 + dropout, dense 7.
    3,257,799 parameters: 48 -> 46 -> 44 -> 22 -> 20 -> 18 -> 9 -> 7 -> 5 -> 2, so the flatten is 256*2*2."""
    act = lambda: nn.LeakyReLU(negative_slope)
    layers, cin = [], 1
    for w in (64, 128, 256):
        layers += _conv(cin, w, 0, False, act) + _conv(w, w, 0, False, act)
        layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
        cin = w
    features = nn.Sequential(*layers)
    cam_layer = f"features.{len(layers) - 3}"  # the last LeakyReLU, before the final pool
    head = nn.Sequential(
        nn.Flatten(), nn.Linear(256 * 2 * 2, 2048), act(), nn.Dropout(dense_dropout), nn.Linear(2048, num_classes)
    )
    return FERNet(features, head, cam_layer)


def _vgg_bn(widths, depths, num_classes, dropout, drop2d):
    layers, cin = [], 1
    for i, (w, depth) in enumerate(zip(widths, depths)):
        for _ in range(depth):
            # ReLU not inplace: Grad-CAM hooks need the activation intact
            layers += _conv(cin, w, 1, True, nn.ReLU)
            cin = w
        if i < len(widths) - 1:
            layers += [nn.MaxPool2d(2)]
            if drop2d:
                layers += [nn.Dropout2d(drop2d)]
    features = nn.Sequential(*layers)
    cam_layer = f"features.{len(layers) - 1}"  # the last ReLU
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
    return FERNet(features, head, cam_layer)


@register
def vgg_bn(num_classes: int = 7, dropout: float = 0.4, drop2d: float = 0.0, width: int = 64,
           depths: tuple = (2, 2, 2, 2)):
    """Stronger modern design: same-padding 3x3 convs with batch norm, two per stage (`depths`) at 48, 24, 12, 6
    pixels (widths 64-128-256-512), global average pooling, dropout, linear. 4.7M parameters."""
    depths = tuple(int(d) for d in depths)  # a JSON list from model_args
    if len(depths) != 4 or min(depths) < 1:
        raise ValueError(f"vgg_bn: depths must be 4 counts of at least 1 (one per stage), got {list(depths)}")
    return _vgg_bn((width, width * 2, width * 4, width * 8), depths, num_classes, dropout, drop2d)


@register
def mini_cnn(num_classes: int = 7, dropout: float = 0.2, width: int = 16):
    """A small, fast net for CPU quick checks and tests (~100k parameters at width 16)."""
    return _vgg_bn((width, width * 2, width * 4), (2, 2, 2), num_classes, dropout, 0.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_table(model_name: str, model_args: dict | None = None) -> tuple[list[tuple], int, int]:
    """Keras-summary rows (layer, type, output shape (C, H, W) or (F,), parameters) of a registered model, its
    total and trainable parameter counts, from one face through a fresh copy (not the caller's model: its hooks
    stay its own)."""
    net = create_model(model_name, **(model_args or {})).eval()
    rows: list[tuple] = []

    def hook(name):
        return lambda mod, _inp, out: rows.append(
            (name, type(mod).__name__, tuple(out.shape[1:]), sum(p.numel() for p in mod.parameters(recurse=False))))

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 1, 48, 48))
    finally:
        for h in handles:
            h.remove()
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return rows, count_parameters(net), trainable
