"""Training images/s of fer_core's loop vs a plain torchvision baseline, same model, same run, and the share
of the machine's measured matmul peak that the training step reaches.

Project loop: uint8 data resident on the device, one batched augmentation op per step (rotation, zoom,
flip on the GPU when there is one), channels_last, bf16 autocast on CUDA and on CPUs with native bf16.
Baseline: torchvision ImageFolder over the extracted JPEGs + per-image PIL transforms + DataLoader.
Achieved GFLOP/s = images/s x 3 x 2 x the model's multiply-adds per face (forward + backward = 3 forwards;
convolutions and linear layers counted by hooks); the peak is a large torch.mm in fp32 and in bf16, timed here.

  python benchmarks/train_throughput.py --device cpu                     # the cpu recipe's model, batch and precision
  python benchmarks/train_throughput.py --data ../shared/data/fer2013.zip [--device auto] [--model seed_vgg]
  python benchmarks/train_throughput.py --device cpu --profile --skip-baseline   # where a step's time goes
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fer_core.data import cache_dir, load_split, file_key  # noqa: E402
from fer_core.models import create_model  # noqa: E402
from fer_core.preprocess import Preprocess, fit_normalization  # noqa: E402
from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.precision import trainer_settings  # noqa: E402
from fer_core.recipes import RECIPES, recipe_config  # noqa: E402
from fer_core.devices import resolve_device  # noqa: E402
from fer_core.steps import make_batch, train_step  # noqa: E402


def macs_per_face(model) -> int:
    """Multiply-adds of one 48x48 face through the model's convolutions and linear layers."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total[0] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, 48, 48))
    for h in hooks:
        h.remove()
    return total[0]


def matmul_peak(device, dtype, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n x n torch.mm, best of `reps` (what the machine's units can do for a dense matmul)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_model(cfg, device, channels_last):
    torch.manual_seed(0)
    m = create_model(cfg.model, **cfg.model_args).to(device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m.train()


def loop_inputs(data, cfg, device, channels_last):
    """What fer_core's loop holds: uint8 faces (N, 1, 48, 48) and labels on the device, the normalization, the
    model, the augmentation generator and settings."""
    ts = load_split(data, "train")
    prep = Preprocess(fit_normalization(ts.x, "pixel")).to(device)
    x = torch.from_numpy(ts.x).to(device)[:, None]
    y = torch.from_numpy(ts.y).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    return x, y, prep, make_model(cfg, device, channels_last), gen, cfg.augment_config()


def bench_project(data, cfg, device, batch, steps, warmup, amp, channels_last):
    x, y, prep, net, gen, aug = loop_inputs(data, cfg, device, channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    perm = torch.randperm(len(y), device=device)
    t0 = None
    for s in range(warmup + steps):
        if s == warmup:
            sync(device)
            t0 = time.perf_counter()
        i = (s * batch) % (len(y) - batch)
        xb, yb = make_batch(x, y, perm[i : i + batch], cfg, aug, prep, gen)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        train_step(net, opt, xb, yb, 1e-3, 0.0, amp)
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def extracted_folder(data) -> Path:
    """The baseline reads JPEG files: extract the zip once into the cache (an image folder is used as is)."""
    p = Path(data)
    if p.is_dir():
        return p / "train"
    out = cache_dir() / f"extracted-{p.stem}-{file_key(p)}"
    if not (out / "train").exists():
        with zipfile.ZipFile(p) as zf:
            zf.extractall(out)
    return out / "train"


def bench_baseline(data, cfg, device, batch, steps, warmup, workers, amp, channels_last):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.Grayscale(1), T.RandomAffine(degrees=30, scale=(0.75, 1.25)), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Normalize([0.5], [0.25])])
    ds = ImageFolder(str(extracted_folder(data)), transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    net = make_model(cfg, device, channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    s, t0 = 0, None
    while True:
        for xb, yb in dl:
            if s == warmup:
                sync(device)
                t0 = time.perf_counter()
            if s == warmup + steps:
                sync(device)
                return steps * batch / (time.perf_counter() - t0)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(net(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            s += 1


# what each kind of operator is, by its ATen name (self time, so nested calls are counted once)
CATEGORIES = [
    ("convolution", ("convolution", "conv2d", "mkldnn_conv", "_convolution", "conv_depthwise", "slow_conv")),
    ("batch norm", ("batch_norm", "native_batch_norm", "_batch_norm")),
    ("pooling", ("max_pool", "avg_pool", "adaptive_avg", "pool2d")),
    ("activation", ("leaky_relu", "relu", "threshold", "gelu", "silu")),
    ("linear", ("addmm", "aten::mm", "aten::bmm", "linear", "matmul")),
    ("augmentation", ("grid_sampler", "affine_grid", "upsample", "index", "uniform", "rand", "where", "flip",
                      "linspace")),
    ("dropout", ("dropout", "bernoulli", "native_dropout")),
    ("optimizer", ("_foreach", "sgd", "adam", "add_", "mul_", "lerp", "addcmul", "addcdiv")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "_softmax")),
    ("precision casts", ("aten::to", "_to_copy", "copy_", "clone", "contiguous")),
]


def category(name: str) -> str:
    n = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in n for k in keys):
            return cat
    return "other"


def profile_step(data, cfg, device, batch, steps, amp, channels_last) -> dict:
    """Self CPU time of a training step's operators over `steps` steps, summed by CATEGORIES -> {category:
    seconds per step} (and the top operators of "other", so nothing is hidden)."""
    from torch.profiler import ProfilerActivity, profile

    x, y, prep, net, gen, aug = loop_inputs(data, cfg, device, channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for s in range(3):  # warm-up: first-call allocations and kernel choices
        xb, yb = make_batch(x, y, torch.arange(s * batch, (s + 1) * batch, device=device), cfg, aug, prep, gen)
        train_step(net, opt, xb, yb, 0.01, 0.1, amp)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for s in range(steps):
            idx = torch.arange(s * batch, (s + 1) * batch, device=device)
            xb, yb = make_batch(x, y, idx, cfg, aug, prep, gen)
            train_step(net, opt, xb, yb, 0.01, 0.1, amp)
        sync(device)
    wall = (time.perf_counter() - t0) / steps
    by, other = {}, {}
    for ev in prof.key_averages():
        sec = ev.self_cpu_time_total / 1e6 / steps
        c = category(ev.key)
        by[c] = by.get(c, 0.0) + sec
        if c == "other":
            other[ev.key] = other.get(ev.key, 0.0) + sec
    top_other = sorted(other.items(), key=lambda kv: -kv[1])[:6]
    return {"wall_s_per_step_profiled": wall, "by_category_s": dict(sorted(by.items(), key=lambda kv: -kv[1])),
            "top_other": top_other}


def print_profile(p: dict, name: str) -> None:
    total = sum(p["by_category_s"].values())
    print(f"  profile ({name}): {p['wall_s_per_step_profiled'] * 1e3:.0f} ms per step under the profiler; "
          "self time by operator kind:")
    for cat, sec in p["by_category_s"].items():
        print(f"    {cat:16s} {sec * 1e3:8.1f} ms  {sec / total:6.1%}")
    print("    largest 'other': " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in p["top_other"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--recipe", default=None, choices=sorted(RECIPES),
                    help="model, model arguments and precision settings (default: 'cpu' on a CPU, 'report' on a GPU)")
    ap.add_argument("--model", default=None, help="another model than the recipe's (its default arguments)")
    ap.add_argument("--model-args", default=None, type=json.loads,
                    help='JSON object of model arguments, e.g. \'{"width": 32, "depths": [1, 2, 2, 2]}\'')
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=None, help="default 256 on CUDA, the recipe's on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on CUDA, 15 on CPU)")
    ap.add_argument("--workers", type=int, default=None, help="baseline DataLoader workers (default: CPU count, max 8)")
    ap.add_argument("--skip-baseline", action="store_true", help="only fer_core's loop and the peak")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the step: self time by operator kind (convolution, batch norm, pooling, ...)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    device = resolve_device(a.device)
    cuda = device.type == "cuda"
    recipe = a.recipe or ("report" if cuda else "cpu")
    over = {"model": a.model, "model_args": {}} if a.model else {}
    if a.model_args is not None:
        over["model_args"] = a.model_args
    cfg = recipe_config(recipe, data=str(a.data), **over)
    settings = trainer_settings(cfg, device.type)
    batch = a.batch_size or (256 if cuda else cfg.batch_size)
    steps = a.steps or (200 if cuda else 15)
    warmup = 20 if cuda else 3
    workers = a.workers if a.workers is not None else min(8, os.cpu_count() or 1)
    load_split(a.data, "train")  # decode/cache outside the timed region, as both loops would in a long run
    macs = macs_per_face(create_model(cfg.model, **cfg.model_args))
    peak32, peak16 = matmul_peak(device, torch.float32), matmul_peak(device, torch.bfloat16)
    proj = bench_project(a.data, cfg, device, batch, steps, warmup, **settings)
    base = None if a.skip_baseline else bench_baseline(a.data, cfg, device, batch, steps, warmup, workers, **settings)
    gflops = proj * 3 * 2 * macs / 1e9  # forward + backward ~ 3 forwards, 2 FLOPs per multiply-add
    peak = peak16 if settings["amp"] else peak32
    name = (torch.cuda.get_device_name(device) if cuda else
            f"{cpu_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()})")
    res = {"device": name, "recipe": recipe, "model": cfg.model, "model_args": cfg.model_args, "batch_size": batch,
           "steps": steps, **settings, "macs_per_face": macs, "project_images_per_s": round(proj, 1),
           "achieved_gflops": round(gflops, 1), "matmul_peak_fp32_gflops": round(peak32, 1),
           "matmul_peak_bf16_gflops": round(peak16, 1), "share_of_peak": round(gflops / peak, 3)}
    if base is not None:
        res.update(baseline_workers=workers, baseline_images_per_s=round(base, 1), ratio=round(proj / base, 2))
    if a.profile:
        res["profile"] = profile_step(a.data, cfg, device, batch, min(steps, 10), **settings)
    if a.json:
        print(json.dumps(res))
        return
    prec = "bf16 autocast" if settings["amp"] else "fp32"
    print(f"{name}, recipe {recipe}: {cfg.model} {cfg.model_args or ''}, batch {batch}, {steps} timed steps, "
          f"{prec}{', channels_last' if settings['channels_last'] else ''}")
    print(f"  fer_core loop (resident data, batched augmentation): {proj:10.1f} images/s")
    print(f"  {macs / 1e6:.0f}M multiply-adds per face -> {gflops:.1f} GFLOP/s achieved in training")
    print(f"  measured matmul peak (2048^3 torch.mm): fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s "
          f"-> training reaches {gflops / peak:.0%} of the {'bf16' if settings['amp'] else 'fp32'} peak")
    if base is not None:
        print(f"  baseline (ImageFolder + PIL transforms + DataLoader, {workers} workers): {base:10.1f} images/s")
        print(f"  ratio: {proj / base:.2f}x")
    if a.profile:
        print_profile(res["profile"], name)


if __name__ == "__main__":
    main()
