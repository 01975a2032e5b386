"""What distillation costs per training epoch on this machine: the teacher's forward pass on every augmented batch
vs the teacher's logits precomputed once for each face and its mirror (what fer_core.distill does).

Times, in one run: the student's training step (the cpu recipe's model, batch and precision), the teacher's
forward pass on the same batch (fp32, and the bf16 inference twin where the CPU computes bf16 natively), and
prints each as a ratio to the student's step: per-batch distillation adds `teacher / student` to every epoch,
precomputing costs `2 x teacher / student` of one epoch, once (then nothing: the logits are cached on disk).

  python benchmarks/distill_cost.py [--teacher checkpoints/fer_best.pt] [--steps 8]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from fer_core.calibrate import cpu_name  # noqa: E402
from fer_core.precision import trainer_settings  # noqa: E402
from fer_core.checkpoint import load_model  # noqa: E402
from fer_core.inference import cpu_native_bf16, fast_model  # noqa: E402
from fer_core.models import create_model  # noqa: E402
from fer_core.recipes import recipe_config  # noqa: E402
from fer_core.steps import make_optimizer, train_step  # noqa: E402


def timed(fn, steps: int) -> float:
    fn()  # warm-up (oneDNN picks its kernels on the first call)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="checkpoints/fer_best.pt")
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    cfg = recipe_config(a.recipe, data="-", device="cpu")
    amp = trainer_settings(cfg, "cpu")["amp"]
    torch.manual_seed(0)
    x = torch.randn(cfg.batch_size, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (cfg.batch_size,))
    student = create_model(cfg.model, **cfg.model_args).to(memory_format=torch.channels_last).train()
    opt = make_optimizer(cfg, student)
    t_student = timed(lambda: train_step(student, opt, x, y, cfg.lr, cfg.label_smoothing, amp), a.steps)
    teacher, _ = load_model(a.teacher)
    with torch.no_grad():
        t_fp32 = timed(lambda: teacher(x), a.steps)
        rows = [("teacher forward, fp32", t_fp32)]
        if cpu_native_bf16():
            twin, dtype = fast_model(teacher, "bf16", cfg.batch_size)
            rows.append(("teacher forward, bf16 twin", timed(lambda: twin(x.to(dtype)), a.steps)))
    print(f"{cpu_name()} ({torch.get_num_threads()} threads, native bf16: {cpu_native_bf16()}), batch {cfg.batch_size}, "
          f"{a.steps} timed steps each")
    print(f"  student training step ({cfg.model} {cfg.model_args}, {'bf16' if amp else 'fp32'}): {t_student * 1e3:.0f} ms")
    for name, t in rows:
        print(f"  {name} ({Path(a.teacher).name}): {t * 1e3:.0f} ms = {t / t_student:.2f} x the student's step: "
              f"per-batch distillation makes each epoch {1 + t / t_student:.2f} x as long; precomputing each face "
              f"and its mirror costs {2 * t / t_student:.2f} epochs' time, once")


if __name__ == "__main__":
    main()
