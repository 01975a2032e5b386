"""The one precision rule: the dtype and memory layout of training and validation on a device, for a config.
The trainer's steps, its validation pass, the Train page's estimate and the benchmarks all ask here."""
from __future__ import annotations

from . import inference


def trainer_settings(cfg, device: str) -> dict:
    """{"amp": bf16 autocast, "channels_last": the layout} for `cfg` on a device of type `device`: CUDA as the
    config says; a CPU with cpu_fast: channels-last, and bf16 only where it computes bf16 natively (elsewhere
    emulated bf16 is slower than fp32); otherwise (mps, a plain CPU run) fp32 in the default layout."""
    if device == "cuda":
        return dict(amp=cfg.amp, channels_last=cfg.channels_last)
    if device == "cpu":
        return dict(amp=cfg.cpu_fast and inference.cpu_native_bf16(), channels_last=cfg.cpu_fast)
    return dict(amp=False, channels_last=False)
