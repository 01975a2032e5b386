"""How long a run takes, from what its files say (no Streamlit): a running run's time left (from its finished
epochs, or from the steps of the epoch in progress), a planned run's duration from the runs already done on this
machine, and a duration as the pages print it."""
from __future__ import annotations

import math
import socket
import time

from .runfiles import parse_time


def epoch_costs(hp: dict, epochs: int) -> list[float] | None:
    """Each epoch's cost relative to a 48-pixel epoch for a run with progressive resizing (--low-res); None
    when every epoch costs the same."""
    from .config import TrainConfig

    if not hp.get("low_res") or not epochs:
        return None
    cfg = TrainConfig(epochs=int(epochs), low_res=int(hp["low_res"]), low_res_epochs=int(hp.get("low_res_epochs") or 0))
    return cfg.epoch_costs()


def eta_seconds(metrics: list[dict], epochs: int, window: int = 5, costs: list[float] | None = None) -> float | None:
    """Seconds left: mean duration of the last `window` epochs times the epochs still to run
    (the first epoch is left out once there are others: it carries the start-up cost). `costs`: each epoch's
    relative cost (epoch_costs), so that cheap low-resolution epochs do not shorten the estimate of the rest."""
    if not metrics or not epochs:
        return None
    costs = costs or [1.0] * int(epochs)
    cost = lambda e: costs[min(max(int(e), 1), len(costs)) - 1]  # noqa: E731 (e: a 1-based epoch)
    secs = [float(m["seconds"]) / cost(m["epoch"]) for m in metrics if m.get("seconds") is not None]
    if len(secs) > 1:
        secs = secs[1:]
    if not secs:
        return None
    recent = secs[-window:]
    left = sum(cost(e) for e in range(int(metrics[-1]["epoch"]) + 1, int(epochs) + 1))
    return left * sum(recent) / len(recent)


def eta_from_progress(p: dict, metrics: list[dict], epochs: int, updated: float | None,
                      costs: list[float] | None = None) -> float:
    """Seconds left from within-epoch progress: steps still to run times the measured seconds per step (scaled
    by each later epoch's relative cost, see epoch_costs), plus each remaining epoch's evaluation time (measured:
    epoch seconds - training seconds), less the time since the progress was written, so the estimate moves
    between updates."""
    steps, step, epoch = int(p["steps"]), int(p["step"]), int(p["epoch"])
    costs = costs or [1.0] * max(int(epochs), epoch)
    now = costs[min(epoch, len(costs)) - 1]  # this epoch's cost, which step_seconds measured
    later = range(epoch + 1, min(int(epochs), len(costs)) + 1)
    steps_left = (steps - step) + sum(steps * costs[e - 1] / now for e in later)
    evals = [float(m["seconds"]) - float(m["train_seconds"]) for m in metrics
             if m.get("seconds") is not None and m.get("train_seconds") is not None]
    per_eval = sum(evals[-5:]) / len(evals[-5:]) if evals else 0.0
    evals_left = max(0, int(epochs) - epoch) + (1 if step < steps or epoch > len(metrics) else 0)
    left = steps_left * float(p["step_seconds"]) + evals_left * per_eval
    if updated is not None:
        left -= max(0.0, time.time() - updated)
    return max(0.0, left)


def estimate_from_past_runs(runs_list, model: str, model_args: dict, n_train: int, epochs: int):
    """A planned run's (seconds, run name, images/s) on this machine, from its newest run of the same model and
    arguments that measured its throughput (training images/s, evaluation, start-up); None when none has yet. (From
    a calibration: calibrate.estimate_from_calibration; a running run's time left: eta_seconds.)"""
    host = socket.gethostname()
    for r in runs_list:
        hp = r.hyperparameters
        if (hp.get("model") != model or (hp.get("model_args") or {}) != (model_args or {})
                or (r.status.get("host") or r.launch.get("host")) != host or not r.metrics):
            continue
        ips = [m["images_per_s"] for m in r.metrics if m.get("images_per_s") and m.get("train_size", 48) == 48]
        if not ips:
            continue
        rate = sum(ips) / len(ips)
        evals = [m["seconds"] - m["train_seconds"] for m in r.metrics
                 if m.get("train_seconds") is not None and m.get("seconds") is not None]
        per_eval = sum(evals) / len(evals) if evals else 0.0
        # start-up: process start + data load, the time from launch to the first epoch's start
        startup = 0.0
        launched, first = parse_time(r.launch.get("created")), parse_time(r.metrics[0].get("time"))
        if launched is not None and first is not None and r.metrics[0].get("seconds") is not None:
            startup = max(0.0, first - launched - float(r.metrics[0]["seconds"]))
        return epochs * (n_train / rate + per_eval) + startup, r.name, rate
    return None


def format_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s < 0.95:  # tenths below a second: a 0.5 s epoch is not "0s" (and an estimate of 6 s not "6.0s")
        return f"{max(s, 0.0):.1f}s"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
