"""A short, measured calibration of training speed on this machine, for the Train page's duration estimate.

A few real training steps (forward, backward, SGD step) of the chosen model at the chosen batch size, with the
trainer's settings for the device (bf16 autocast and channels_last where the trainer uses them), on random
faces: the augmentation is cheap next to the convolutions (benchmarks/train_throughput.py measures both)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .models import create_model


@dataclass
class Calibration:
    train_images_per_s: float  # training step throughput
    eval_images_per_s: float  # validation forward throughput
    seconds: float  # what the calibration itself took


def calibrate(model: str, model_args: dict | None = None, batch_size: int = 32, device: str = "cpu",
              amp: bool = False, channels_last: bool = True, steps: int = 2, budget_s: float = 1.0,
              seed: int = 0, clock=time.perf_counter, train: bool = True) -> Calibration:
    """Time training steps after one warm-up step (at least `steps`, more until `budget_s` has passed), then
    evaluation batches (a quarter of the budget); each rate from the median call. On a CPU images/s hardly
    depend on the batch size (measured: within 7% from 64 to 256 faces), so a small batch keeps the calibration
    short for the big models. `clock`: seconds as a float (a test's own clock). `train=False` times the
    evaluation only (train_images_per_s is nan): a teacher's pass, which never trains."""
    t_start = clock()
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = create_model(model, **(model_args or {})).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch_size, 1, 48, 48, device=dev).contiguous(memory_format=fmt)  # (B, 1, 48, 48)
    y = torch.randint(0, 7, (batch_size,), device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def images_per_s(fn, budget: float) -> float:
        """batch_size / the median time of `fn` over at least `steps` calls and `budget` seconds: a call slowed by
        another process does not move it."""
        fn()  # warm-up: oneDNN/cuDNN pick their kernels
        sync()
        times, t0 = [], clock()
        while len(times) < steps or clock() - t0 < budget:
            t = clock()
            fn()
            sync()
            times.append(clock() - t)
        return batch_size / statistics.median(times)

    train_ips = images_per_s(step, budget_s) if train else float("nan")
    net.eval()
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        eval_ips = images_per_s(lambda: net(x), budget_s / 4)
    return Calibration(train_ips, eval_ips, clock() - t_start)


def teacher_pass_rates(paths: list[str], reader=None) -> list[tuple[str, float]]:
    """(file name, faces/s) of each teacher checkpoint's forward pass as fer_core.distill runs it (on the CPU, fp32,
    channels_last, TEACHER_BATCH faces a batch), from a calibration of its model: the distilled run's pass over
    every training face and its mirror takes 2 x faces / rate seconds per teacher. `reader(path)` ->
    (model name, model_args); default: read from the checkpoint (weights_only)."""
    from .checkpoint import read_checkpoint
    from .distill import TEACHER_BATCH

    def from_checkpoint(path):
        ckpt = read_checkpoint(path)
        return ckpt["model_name"], ckpt["model_args"]

    out = []
    for path in paths:
        name, args = (reader or from_checkpoint)(path)
        cal = calibrate(name, args, batch_size=TEACHER_BATCH, device="cpu", amp=False, channels_last=True,
                        train=False)
        out.append((Path(path).name, cal.eval_images_per_s))
    return out


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo; platform.processor() elsewhere): benchmarks state it beside every figure."""
    import platform

    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def estimate_from_calibration(cal: Calibration, n_train: int, n_val: int, epochs: int, startup: float = 5.0,
                              train_epochs: float | None = None) -> float:
    """A planned run's seconds from this machine's calibration (durations.estimate_from_past_runs estimates from
    the runs already done here): `epochs` epochs over n_train faces with a validation pass over n_val faces
    after each. `train_epochs`: the training in 48-pixel epochs when some epochs train at a lower side
    (TrainConfig.epoch_cost()); the calibration measured 48-pixel faces."""
    train_epochs = epochs if train_epochs is None else train_epochs
    return startup + train_epochs * n_train / cal.train_images_per_s + epochs * n_val / cal.eval_images_per_s
