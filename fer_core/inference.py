"""Batched prediction shared by evaluation, the interpretability views and the photo/webcam path.

Prediction runs on a fast twin of the model (`fast_model`): batch norm folded into the convolutions, and on a CPU
with native bf16 (AVX512-BF16 or AMX) bf16 weights and inputs, about twice the fp32 speed there (measured with
benchmarks/predict_latency.py and benchmarks/interpret_speed.py). Gradients (saliency) use the model itself."""
from __future__ import annotations

import copy
import os
import weakref

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# On a CPU small batches stay in cache (benchmarks/interpret_speed.py --batch-sizes measures it); a GPU wants big ones.
CPU_BATCH = 64
GPU_BATCH = 512
PRECISIONS = ("auto", "fp32", "bf16")


def default_batch_size(device) -> int:
    return CPU_BATCH if torch.device(device).type == "cpu" else GPU_BATCH


def cpu_native_bf16() -> bool:
    """Does this CPU compute in bf16 natively? Without it, bf16 is emulated and slower than fp32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def inference_precision(device, precision: str | None = None) -> str:
    """'fp32' or 'bf16' for `device`. precision (or $FER_PRECISION): 'auto' (default), 'fp32' or 'bf16'."""
    precision = precision or os.environ.get("FER_PRECISION") or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    # GPUs: the model is small enough that fp32 costs nothing there; CPUs: bf16 only where it is native
    return "bf16" if torch.device(device).type == "cpu" and cpu_native_bf16() else "fp32"


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every BatchNorm2d that follows a Conv2d in a Sequential folded into the conv
    (same outputs up to float rounding, one pass over memory fewer per layer)."""
    model = copy.deepcopy(model).eval()
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
    return model


class FusedConv(nn.Module):
    """Conv2d (+ ReLU / LeakyReLU) as one oneDNN call with its weights reordered once, for one input shape:
    per-call weight reordering and the separate activation pass are most of a batch-1 forward on a CPU."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module | None, in_shape: list[int]):
        super().__init__()
        self.args = [list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups]
        w = conv.weight.detach().contiguous(memory_format=torch.channels_last)
        # plain attributes, not parameters: oneDNN's opaque weight tensor refuses .to() and state_dict
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(w, *self.args, in_shape)
        self.bias = conv.bias.detach() if conv.bias is not None else None
        if isinstance(act, nn.LeakyReLU):
            self.attr, self.scalars = "leaky_relu", [act.negative_slope]
        else:
            self.attr, self.scalars = ("relu" if isinstance(act, nn.ReLU) else "none"), []

    def forward(self, x):
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, *self.args, self.attr,
                                                       self.scalars, "")


def _conv_input_shapes(net: nn.Module, batch: int) -> dict[nn.Conv2d, list[int]]:
    shapes, hooks = {}, []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_pre_hook(lambda mod, inp: shapes.__setitem__(mod, list(inp[0].shape))))
    try:
        with torch.no_grad():
            dtype = next(net.parameters()).dtype
            net(torch.zeros(batch, 1, 48, 48, dtype=dtype))  # (B, 1, 48, 48): every model here reads 48x48 faces
    finally:
        for h in hooks:
            h.remove()
    return shapes


def fuse_convs(net: nn.Module, batch: int) -> nn.Module:
    """Every Conv2d (and the ReLU/LeakyReLU right after it) in a Sequential becomes a FusedConv for batches of
    `batch` (other sizes work, a little slower). Raises if this torch has no such oneDNN ops."""
    shapes = _conv_input_shapes(net, batch)
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i, m in enumerate(seq):
            if isinstance(m, nn.Conv2d) and m in shapes:
                j = next((k for k in range(i + 1, len(seq)) if not isinstance(seq[k], nn.Identity)), None)
                act = seq[j] if j is not None and isinstance(seq[j], (nn.ReLU, nn.LeakyReLU)) else None
                seq[i] = FusedConv(m, act, shapes[m])
                if act is not None:
                    seq[j] = nn.Identity()
    return net


def _weights_key(model: nn.Module) -> tuple:
    # a tensor's _version grows with every in-place change: the twin is rebuilt if the weights were edited
    return tuple((t.data_ptr(), t._version, t.device.type) for t in [*model.parameters(), *model.buffers()])


def build_twin(model: nn.Module, precision: str, batch: int) -> tuple[nn.Module, torch.dtype]:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    device = next(model.parameters()).device
    net = fold_batchnorm(model).to(device=device, dtype=dtype, memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    if device.type == "cpu":
        try:
            fused = fuse_convs(copy.deepcopy(net), batch).eval()
            x = torch.randn(batch, 1, 48, 48).to(dtype).contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                want, got = net(x).float(), fused(x).float()
            tol = 0.02 if dtype == torch.bfloat16 else 1e-4
            if not torch.allclose(got, want, rtol=tol, atol=tol * (want.abs().max().item() + 1e-6)):
                raise RuntimeError("fused convolutions disagree with the model")
            net = fused
        except (RuntimeError, AttributeError, TypeError, ValueError):
            pass  # an older/other torch or an unusual layer: the folded model, still correct
    return net.eval(), dtype


# model -> {(precision, batch class): (key, twin, dtype)}; outside the model so copies, state_dict and .to() of
# the model never meet oneDNN's opaque weight tensors, and a twin goes when its model goes
_TWINS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def fast_model(model: nn.Module, precision: str | None = None, batch: int = CPU_BATCH) -> tuple[nn.Module, torch.dtype]:
    """-> (the model's inference twin, its input dtype), built once per model, weights, precision and batch
    class (a single face, or batches): oneDNN's weight layout depends on the batch size."""
    device = next(model.parameters()).device
    prec = inference_precision(device, precision)
    size = 1 if batch == 1 else CPU_BATCH
    key = (_weights_key(model), prec, size)
    twins = _TWINS.setdefault(model, {})
    if twins.get((prec, size), (None,))[0] != key:
        twins[(prec, size)] = (key, *build_twin(model, prec, size))
    return twins[(prec, size)][1:]


@torch.inference_mode()
def predict_logits(model, prep, faces, tta: bool = False, batch_size: int | None = None, device=None,
                   mirror: bool = False, progress=None, precision: str | None = None) -> np.ndarray:
    """faces: uint8 (N, 48, 48) -> logits (N, C). TTA averages the logits of each face and its mirror;
    mirror=True gives the mirror's logits only (so TTA can reuse a plain pass already made).
    progress(done, total) is called after every batch. precision: see inference_precision."""
    device = device or next(model.parameters()).device
    batch_size = batch_size or default_batch_size(device)
    net, dtype = fast_model(model, precision, min(batch_size, len(faces)))
    out = []
    for i in range(0, len(faces), batch_size):
        x = prep(faces[i : i + batch_size]).to(device, dtype).contiguous(memory_format=torch.channels_last)  # (B, 1, 48, 48)
        if mirror:
            x = torch.flip(x, dims=[3])
        logits = net(x).float()
        if tta:
            logits = (logits + net(torch.flip(x, dims=[3])).float()) / 2
        out.append(logits.cpu())
        if progress is not None:
            progress(min(i + batch_size, len(faces)), len(faces))
    if not out:
        return np.zeros((0, len(getattr(model, "classes", range(7)))), dtype=np.float32)
    return torch.cat(out).numpy()


def predict_proba(model, prep, faces, tta: bool = False, batch_size: int | None = None,
                  precision: str | None = None) -> np.ndarray:
    logits = torch.from_numpy(predict_logits(model, prep, faces, tta, batch_size, precision=precision))
    return torch.softmax(logits, 1).numpy()
