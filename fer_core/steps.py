"""The arithmetic of training, with no files and no processes: the learning rate at a step, the optimizer,
one augmented batch, one optimizer step and the validation pass. fer_core.train drives them; the benchmarks
time them alone."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import TrainConfig
from .distill import distill_loss
from .precision import trainer_settings
from .preprocess import AugmentConfig, Preprocess, augment_batch, random_erase


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimizer step `step` of `total` (computed, so resuming needs no scheduler state)."""
    t = step / max(1, total)
    warm = cfg.warmup_epochs / cfg.epochs
    if cfg.schedule == "onecycle":
        warm = warm or 0.15
        if t < warm:
            return cfg.lr * (0.04 + 0.96 * t / warm)
        return cfg.lr * (0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))) + 1e-6
    if warm and t < warm:
        return cfg.lr * (t / warm)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (t - warm) / max(1e-9, 1 - warm)))
    if cfg.schedule == "step":  # /10 at 50% and 75%
        return cfg.lr * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return cfg.lr


def param_groups(model, bn_lr: float, wd: float) -> list[dict]:
    """One group of every parameter, or with bn_lr != 1 two: the batch-norm weights and biases (lr_mult bn_lr,
    no weight decay) and the rest; train_step sets each group's lr to lr * lr_mult."""
    if bn_lr == 1.0:
        return [{"params": list(model.parameters()), "weight_decay": wd, "lr_mult": 1.0}]
    norm = {id(p) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._NormBase)
            for p in m.parameters(recurse=False)}
    rest = [p for p in model.parameters() if id(p) not in norm]
    bn = [p for p in model.parameters() if id(p) in norm]
    return [{"params": rest, "weight_decay": wd, "lr_mult": 1.0},
            {"params": bn, "weight_decay": 0.0, "lr_mult": float(bn_lr)}]


def make_optimizer(cfg: TrainConfig, model):
    wd = cfg.weight_decay
    if cfg.optimizer == "sgd":
        wd = 5e-4 if wd is None else wd
        return torch.optim.SGD(param_groups(model, cfg.bn_lr, wd), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        wd = 0.05 if wd is None else wd
        return torch.optim.AdamW(param_groups(model, cfg.bn_lr, wd), lr=cfg.lr)
    return torch.optim.Adam(param_groups(model, cfg.bn_lr, wd or 0.0), lr=cfg.lr)


def make_batch(x_u8, y, idx, cfg: TrainConfig, aug_cfg: AugmentConfig, prep: Preprocess, gen, size: int = 48,
               flips=None):
    """uint8 faces (N, 1, 48, 48) on the device + batch indices -> augmented, normalized batch (B, 1, size, size).
    flips: (B,) bool from alternating_flips, or None for a coin per face."""
    xb = x_u8[idx].float() / 255.0  # (B, 1, 48, 48)
    if cfg.augment:
        xb = augment_batch(xb, aug_cfg, gen, size if size != xb.shape[-1] else None, flips)
    elif size != xb.shape[-1]:
        xb = F.interpolate(xb, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    xb = prep.normalize(xb)
    if cfg.augment and cfg.erase:
        xb = random_erase(xb, cfg.erase, gen)  # after normalization, so erased = mean
    if trainer_settings(cfg, xb.device.type)["channels_last"]:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, y[idx]


def alternating_flips(n: int, seed: int, epoch: int) -> torch.Tensor:
    """(n,) bool: which training faces are mirrored in epoch `epoch` under the alternating flip (airbench's
    derandomised flip): a fixed coin per face (from the seed) decides epoch 0, and every epoch after flips the
    choice, so any two consecutive epochs show each face once as it is and once mirrored."""
    base = torch.rand(n, generator=torch.Generator().manual_seed(seed * 7_368_787 + 12_345)) < 0.5
    return base ^ bool(epoch % 2)


def mix_plan(cfg: TrainConfig, epoch: int, steps: int, rank: int = 0) -> list[tuple[str, float, float, float]] | None:
    """Per step of an epoch: ("mixup" | "cutmix", lambda, box centre y, x in [0, 1)), or None when both are off.

    Drawn up front on the CPU from (seed, epoch, rank), so a resumed epoch mixes exactly as the first try did and
    the device never waits for a draw. With both on, each step takes one of the two with p = 0.5 (as timm does)."""
    if not (cfg.mixup or cfg.cutmix):
        return None
    rng = np.random.default_rng([cfg.seed, epoch, rank, 0x5EED])
    out = []
    for _ in range(steps):
        kind = "mixup" if not cfg.cutmix or (cfg.mixup and rng.random() < 0.5) else "cutmix"
        a = cfg.mixup if kind == "mixup" else cfg.cutmix
        out.append((kind, float(rng.beta(a, a)), float(rng.random()), float(rng.random())))
    return out


def mix_batch(xb, yb, kind: str, lam: float, cy: float = 0.5, cx: float = 0.5):
    """Mix each face with its partner in the reversed batch (the batch is in random order already).

    mixup: lam * x + (1 - lam) * partner. cutmix: the partner's pixels in a box of (1 - lam) of the area centred
    at (cy, cx) of the side, clipped to the face; lam is then the share of the face's own pixels actually left.
    -> (mixed batch, partner labels, lam): the loss is lam * CE(yb) + (1 - lam) * CE(partner labels)."""
    other = xb.flip(0)
    if kind == "mixup":
        return lam * xb + (1 - lam) * other, yb.flip(0), lam
    H, W = xb.shape[-2:]
    r = math.sqrt(1 - lam)
    h, w = round(H * r), round(W * r)
    top, left = round(cy * H - h / 2), round(cx * W - w / 2)  # may lie outside: the box is clipped, not moved
    y0, y1 = max(0, top), min(H, top + h)
    x0, x1 = max(0, left), min(W, left + w)
    out = xb.clone()
    out[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
    return out, yb.flip(0), 1 - max(0, y1 - y0) * max(0, x1 - x0) / (H * W)


def train_step(net, opt, xb, yb, lr: float, label_smoothing: float, amp: bool, mix=None, soft=None):
    """One optimizer step; mix: (partner labels, lam) from mix_batch, or None; soft: (teacher probabilities
    (B, 7), alpha, temperature) for distillation, or None."""
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = net(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=label_smoothing)
        if mix is not None:
            y2, lam = mix
            loss = lam * loss + (1 - lam) * F.cross_entropy(logits.float(), y2, label_smoothing=label_smoothing)
        if soft is not None:
            target, alpha, temperature = soft
            loss = (1 - alpha) * loss + alpha * distill_loss(logits, target, temperature)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, logits


def ema_decay(step: int, decay: float) -> float:
    """The averaging decay at optimizer step `step` (0-based): `decay`, but lower early, so that the average is
    not held at the random initial weights for the first ~1/(1 - decay) steps ((1 + t) / (10 + t), as
    TensorFlow's ExponentialMovingAverage with num_updates)."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for every floating-point tensor of the state dict: the weights
    and the batch-norm running statistics alike (so the averaged net's statistics match its weights); integer
    buffers (num_batches_tracked) are copied."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.is_floating_point():
            e.lerp_(m.to(e.dtype), 1.0 - decay)
        else:
            e.copy_(m)


@torch.no_grad()
def evaluate_tensors(model, x_u8, y, prep, batch_size, device, amp, tta: bool = False, channels_last: bool = False):
    """Loss and accuracy over uint8 faces (N, 1, 48, 48) already on `device`; `tta`: each face's probabilities
    averaged with its horizontal mirror's (the loss is then the NLL of the averaged probabilities). `amp` and
    `channels_last`: as the trainer's (fer_core.precision), so validation runs the model as training did."""
    model.eval()
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    for i in range(0, len(y), batch_size):
        xb = prep.normalize(x_u8[i : i + batch_size].float() / 255.0)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb).float()
            if tta:  # log of the mean probability of the face and its mirror: a log-probability, as logits
                mirror = model(xb.flip(-1)).float()
                logits = torch.logsumexp(torch.stack([logits.log_softmax(1), mirror.log_softmax(1)]), 0) - math.log(2)
        loss_sum += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
        correct += (logits.argmax(1) == y[i : i + batch_size]).sum()
    n = max(1, len(y))
    return loss_sum.item() / n, correct.item() / n
