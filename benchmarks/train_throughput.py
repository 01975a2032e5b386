"""Training images/s of fer_core's loop vs a plain torchvision baseline, same model, same run, and the share
of the machine's measured matmul peak that the training step reaches.

Project loop: uint8 data resident on the device, one batched augmentation op per step (rotation, zoom,
flip on the GPU when there is one), channels_last, bf16 autocast on CUDA and on CPUs with native bf16.
Baseline: torchvision ImageFolder over the extracted JPEGs + per-image PIL transforms + DataLoader.
Achieved GFLOP/s = images/s x 3 x 2 x the model's multiply-adds per face (forward + backward = 3 forwards;
convolutions and linear layers counted by hooks); the peak is a large torch.mm in fp32 and in bf16, timed here.

  python benchmarks/train_throughput.py --device cpu                     # the cpu recipe's model, batch and precision
  python benchmarks/train_throughput.py --data ../shared/data/fer2013.zip [--device auto] [--model seed_vgg]
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

from fer_core.data import cache_dir, load_split, source_key  # noqa: E402
from fer_core.models import create_model  # noqa: E402
from fer_core.preprocess import Preprocess, fit_normalization  # noqa: E402
from fer_core.train import TrainConfig, make_batch, resolve_device, train_step  # noqa: E402


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


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


def make_model(name, device):
    torch.manual_seed(0)
    m = create_model(name).to(device)
    if device.type == "cuda":
        m = m.to(memory_format=torch.channels_last)
    return m.train()


def bench_project(data, model_name, device, batch, steps, warmup):
    cfg = TrainConfig(data=str(data), model=model_name, batch_size=batch)  # report recipe: rotation 30, zoom .25, flip
    ts = load_split(data, "train")
    prep = Preprocess(fit_normalization(ts.x, "pixel")).to(device)
    x = torch.from_numpy(ts.x).to(device)[:, None]
    y = torch.from_numpy(ts.y).to(device)
    net = make_model(model_name, device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    amp = device.type == "cuda"
    perm = torch.randperm(len(y), device=device)
    aug = cfg.augment_config()
    t0 = None
    for s in range(warmup + steps):
        if s == warmup:
            sync(device)
            t0 = time.perf_counter()
        i = (s * batch) % (len(y) - batch)
        xb, yb = make_batch(x, y, perm[i : i + batch], cfg, aug, prep, gen)
        train_step(net, opt, xb, yb, 1e-3, 0.0, amp)
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def extracted_folder(data) -> Path:
    """The baseline reads JPEG files: extract the zip once into the cache (an image folder is used as is)."""
    p = Path(data)
    if p.is_dir():
        return p / "train"
    out = cache_dir() / f"extracted-{p.stem}-{source_key(p)}"
    if not (out / "train").exists():
        with zipfile.ZipFile(p) as zf:
            zf.extractall(out)
    return out / "train"


def bench_baseline(data, model_name, device, batch, steps, warmup, workers):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.Grayscale(1), T.RandomAffine(degrees=30, scale=(0.75, 1.25)), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Normalize([0.5], [0.25])])
    ds = ImageFolder(str(extracted_folder(data)), transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    net = make_model(model_name, device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    amp = device.type == "cuda"
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
            if device.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(net(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            s += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013.zip")
    ap.add_argument("--model", default="seed_vgg")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=None, help="default 256 on CUDA, 64 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 200 on CUDA, 15 on CPU)")
    ap.add_argument("--workers", type=int, default=None, help="baseline DataLoader workers (default: CPU count, max 8)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    device = resolve_device(a.device)
    cuda = device.type == "cuda"
    batch = a.batch_size or (256 if cuda else 64)
    steps = a.steps or (200 if cuda else 15)
    warmup = 20 if cuda else 3
    workers = a.workers if a.workers is not None else min(8, os.cpu_count() or 1)
    load_split(a.data, "train")  # decode/cache outside the timed region, as both loops would in a long run
    proj = bench_project(a.data, a.model, device, batch, steps, warmup)
    base = bench_baseline(a.data, a.model, device, batch, steps, warmup, workers)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    res = {"device": name, "model": a.model, "batch_size": batch, "steps": steps, "baseline_workers": workers,
           "project_images_per_s": round(proj, 1), "baseline_images_per_s": round(base, 1), "ratio": round(proj / base, 2)}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{name}, model {a.model}, batch {batch}, {steps} timed steps")
        print(f"  fer_core loop (GPU-resident data, batched augmentation): {proj:10.1f} images/s")
        print(f"  baseline (ImageFolder + PIL transforms + DataLoader, {workers} workers): {base:10.1f} images/s")
        print(f"  ratio: {proj / base:.2f}x")


if __name__ == "__main__":
    main()
