"""Training runs: `python -m fer_core.train --data PATH --model NAME ... --out RUNS_DIR`.

A run is a directory: config.json, metrics.jsonl, status.json, last.pt, best.pt, train.log. The data set
lives on the training device as uint8; augmentation is one batched op per step on that device, so no
per-image Python work happens in the loop. Under torchrun it trains with DistributedDataParallel.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import sys
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .calibrate import trainer_settings
from .checkpoint import FORMAT_VERSION, CheckpointError, read_checkpoint, save_checkpoint
from .data import CLASSES, DataError, atomic_write_bytes, load_split
from .config import TrainConfig, load_config, options, parse_json_object
from .models import count_parameters, create_model
from .preprocess import AugmentConfig, Preprocess, augment_batch, fit_normalization, random_erase

PROGRESS_EVERY = 1.0  # seconds between status.json updates within an epoch (steps done, images/s, elapsed)


def progress_every() -> float:
    """Seconds between in-epoch status updates; `FER_PROGRESS_EVERY` overrides (tests whose epochs last < 1 s)."""
    try:
        return max(0.0, float(os.environ.get("FER_PROGRESS_EVERY", PROGRESS_EVERY)))
    except ValueError:
        return PROGRESS_EVERY


# ----------------------------------------------------------------------------------------------
# run directory helpers (the dashboard reads these files; every write is atomic)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path, obj, fsync: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode(), fsync=fsync)


def append_jsonl(path, obj) -> None:
    """metrics.jsonl is rewritten whole through a temp file so a reader never sees half a line."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    atomic_write_bytes(path, old + (json.dumps(obj) + "\n").encode())


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA GPU is available (use --device auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError("--device mps was requested but MPS is not available (use --device auto or cpu)")
    return torch.device(name)


# ----------------------------------------------------------------------------------------------
# run directories are created exclusively and held with a lock, so two trainers never share one

LOCK_FILE = "train.lock"
LAUNCHER_FILE = "launch.json"  # written by fer_core.runs.launch into the folder it makes for the trainer


def create_run_dir(out_dir, name: str | None, default_base: str) -> Path:
    """A new run directory under `out_dir`. A taken default name gets a suffix (-2, -3, ...); an explicit
    `name` that exists is an error, unless it is the empty folder runs.launch made for this trainer."""
    root = Path(out_dir or "runs")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot make the runs folder {root}: {e.strerror or e}") from None
    if name:
        run = root / name
        try:
            run.mkdir()
        except FileExistsError:
            made_by_launcher = (run / LAUNCHER_FILE).exists() and not any(
                (run / f).exists() for f in ("config.json", "last.pt", "metrics.jsonl"))
            if not made_by_launcher:
                raise ValueError(f"run {name!r} already exists in {root}; choose another --name "
                                 f"or continue it with --resume {run}") from None
        return run
    for i in range(1, 10_000):
        run = root / (default_base if i == 1 else f"{default_base}-{i}")
        try:
            run.mkdir()  # atomic: of two launches in the same second only one gets each name
            return run
        except FileExistsError:
            continue
    raise ValueError(f"no free run name for {default_base} in {root}")


def lock_run_dir(run: Path):
    """Hold an exclusive lock on `run` for this process: an open file with flock, released when the file is
    closed or the process dies (so a lock left by a killed trainer is never in the way). -> the open file."""
    f = open(run / LOCK_FILE, "a+")
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no lock
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise ValueError(f"{run}: another trainer ({holder or 'unknown process'}) is using this run; "
                         "stop it or wait for it to end") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    return f


def _remove_if_empty(run: Path) -> None:
    try:
        (run / LOCK_FILE).unlink(missing_ok=True)
        run.rmdir()
    except OSError:
        pass


def release_run_lock(f) -> None:
    if f is not None:
        f.close()  # closing the file releases the flock


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


def make_optimizer(cfg: TrainConfig, model):
    wd = cfg.weight_decay
    if cfg.optimizer == "sgd":
        wd = 5e-4 if wd is None else wd
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=wd)
    if cfg.optimizer == "adamw":
        wd = 0.05 if wd is None else wd
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=wd)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=wd or 0.0)


class Log:
    def __init__(self, path, enabled: bool):
        self.path, self.enabled = path, enabled

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        line = f"[{datetime.now().strftime('%H:%M:%S')}] {msg}"
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:  # e.g. a signal before the run directory exists
            pass
        print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _progress(total, desc, enabled):
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def make_batch(x_u8, y, idx, cfg: TrainConfig, aug_cfg: AugmentConfig, prep: Preprocess, gen):
    """uint8 faces (N, 1, 48, 48) on the device + batch indices -> augmented, normalized batch."""
    xb = x_u8[idx].float() / 255.0  # (B, 1, 48, 48)
    if cfg.augment:
        xb = augment_batch(xb, aug_cfg, gen)
    xb = prep.normalize(xb)
    if cfg.augment and cfg.erase:
        xb = random_erase(xb, cfg.erase, gen)  # after normalization, so erased = mean
    if trainer_settings(cfg, xb.device.type)["channels_last"]:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, y[idx]


def train_step(net, opt, xb, yb, lr: float, label_smoothing: float, amp: bool):
    for group in opt.param_groups:
        group["lr"] = lr
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = net(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, logits


@torch.no_grad()
def evaluate_tensors(model, x_u8, y, prep, batch_size, device, amp):
    """Loss and accuracy over uint8 faces (N, 1, 48, 48) already on `device`."""
    model.eval()
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
    for i in range(0, len(y), batch_size):
        xb = prep.normalize(x_u8[i : i + batch_size].float() / 255.0)
        if device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb).float()
        loss_sum += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
        correct += (logits.argmax(1) == y[i : i + batch_size]).sum()
    n = max(1, len(y))
    return loss_sum.item() / n, correct.item() / n


def train(cfg: TrainConfig, out_dir: str | None = None, run_dir: str | None = None, resume: bool = False,
          max_epochs_this_call: int | None = None, callback=None) -> Path:
    """Train (or resume) one run; returns its directory.

    callback(metrics) runs after every epoch on rank 0; returning True stops the run (benchmarks use it).
    `max_epochs_this_call` ends the call early with state "stopped" (tests of resume use it)."""
    world, rank, local_rank = _dist_info()
    distributed = world > 1
    main = rank == 0
    device = resolve_device(cfg.device)
    if distributed:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp = trainer_settings(cfg, device.type)["amp"]  # bf16 autocast: CUDA, or a CPU with native bf16 and cpu_fast

    # ---- run directory: made exclusively and locked by rank 0 (a second trainer is refused, nothing written)
    lock = None
    if resume:
        run = Path(run_dir)
        if main:
            lock = lock_run_dir(run)
    else:
        run = None
        if main:
            run = create_run_dir(out_dir, run_dir, f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{cfg.model}")
            try:
                lock = lock_run_dir(run)
            except ValueError:
                if not run_dir:  # our own fresh folder: leave nothing behind
                    _remove_if_empty(run)
                raise
        if distributed:  # every rank must agree on the name chosen by rank 0
            obj = [str(run)]
            torch.distributed.broadcast_object_list(obj, src=0)
            run = Path(obj[0])
    log = Log(run / "train.log", main)
    status_path = run / "status.json"
    status = {"state": "running", "epoch": 0, "epochs": cfg.epochs, "pid": os.getpid(), "host": socket.gethostname(),
              "started": now_iso(), "updated": now_iso(), "error": None, "best_val_acc": None, "world_size": world}
    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True
        log(f"received signal {signum}: stopping after the current step")

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    # status["elapsed"]: wall seconds this run has spent in the trainer over all its sessions, so a resume
    # continues the count where the stopped process left it (it never goes backwards)
    clock = {"base": 0.0, "t0": time.time()}

    def touch(fsync=True, **fields):
        now = time.time()  # "updated_ts": to the ms, so a reader's "elapsed + time since" stays monotone
        status.update(fields, updated=now_iso(), updated_ts=round(now, 3),
                      elapsed=round(clock["base"] + now - clock["t0"], 3))
        write_json(status_path, status, fsync=fsync)

    if main:
        if resume:
            old = json.loads(status_path.read_text()) if status_path.exists() else {}
            status["started"] = old.get("started", status["started"])
            clock["base"] = float(old.get("elapsed") or 0.0)
            status.update(resumed=now_iso(), epoch=old.get("epoch", 0), best_val_acc=old.get("best_val_acc"))
        touch(device=str(device))


    try:
        torch.manual_seed(cfg.seed)
        t_load = time.time()
        train_set = load_split(cfg.data, "train")
        val_set = load_split(cfg.data, cfg.val_split)
        if cfg.max_train_samples and cfg.max_train_samples < len(train_set):
            pick = np.random.default_rng(cfg.seed).permutation(len(train_set))[: cfg.max_train_samples]
            train_set = train_set.subset(np.sort(pick))
        norm = fit_normalization(train_set.x, cfg.normalize)
        prep = Preprocess(norm).to(device)
        model = create_model(cfg.model, **cfg.model_args).to(device)
        if trainer_settings(cfg, device.type)["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        n_params = count_parameters(model)

        if main and not resume:
            write_json(run / "config.json", {
                "hyperparameters": asdict(cfg), "model_name": cfg.model, "model_args": cfg.model_args,
                "n_params": n_params, "data": {"source": str(Path(cfg.data).resolve()), "train_size": len(train_set),
                "val_split": cfg.val_split, "val_size": len(val_set), "class_counts": train_set.class_counts()},
                "seed": cfg.seed, "device": str(device), "world_size": world,
                "versions": {"fer_core": __version__, "torch": torch.__version__, "python": platform.python_version(),
                             "numpy": np.__version__},
                "host": socket.gethostname(), "created": now_iso()})
        log(f"data {cfg.data}: train {len(train_set)}, {cfg.val_split} {len(val_set)} faces "
            f"(loaded in {time.time() - t_load:.1f}s); model {cfg.model} ({n_params:,} params) on {device}"
            + (f", {world} processes" if distributed else ""))

        # data resident on the device as uint8: (N, 1, 48, 48)
        x_tr = torch.from_numpy(train_set.x).to(device)[:, None]
        y_tr = torch.from_numpy(train_set.y).to(device)
        x_va = torch.from_numpy(val_set.x).to(device)[:, None]
        y_va = torch.from_numpy(val_set.y).to(device)

        opt = make_optimizer(cfg, model)
        start_epoch, best_acc, elapsed = 0, -1.0, 0.0
        gen = torch.Generator(device=device)  # augmentation randomness, reseeded every epoch (exact resume)
        if resume:
            ck = read_checkpoint(run / "last.pt", map_location=device)
            model.load_state_dict(ck["state_dict"])
            opt.load_state_dict(ck["optimizer"])
            start_epoch, best_acc, elapsed = ck["epoch"], ck.get("best_val_acc", -1.0), ck.get("elapsed", 0.0)
            clock["base"] = max(clock["base"], elapsed)  # a status.json older than the checkpoint's count
            status.update(epoch=start_epoch, best_val_acc=best_acc if best_acc >= 0 else None)
            if main:
                # epochs after last.pt's (a kill after their metrics were written) are trained again
                mfile = run / "metrics.jsonl"
                if mfile.exists():
                    keep = [l for l in mfile.read_text().splitlines() if l.strip() and json.loads(l)["epoch"] <= start_epoch]
                    atomic_write_bytes(mfile, "".join(l + "\n" for l in keep).encode())
                touch()
            log(f"resumed from epoch {start_epoch} (best val acc {best_acc:.4f})")
        net = model
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

        per_rank = len(y_tr) // world  # equal shards so every rank takes the same number of steps
        steps_per_epoch = max(1, math.ceil(per_rank / cfg.batch_size))
        total_steps = steps_per_epoch * cfg.epochs
        aug_cfg = cfg.augment_config()
        meta = {"format_version": FORMAT_VERSION, "model_name": cfg.model, "model_args": cfg.model_args,
                "normalization": prep.state(), "classes": list(CLASSES), "train_config": asdict(cfg)}

        def checkpoint(epoch, metrics, full):
            ck = dict(meta, state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()},
                      epoch=epoch, metrics=metrics, best_val_acc=best_acc, elapsed=elapsed)
            if full:
                ck["optimizer"] = opt.state_dict()
            return ck

        if main and not resume:
            save_checkpoint(checkpoint(0, {}, True), run / "last.pt")

        saved_epoch = start_epoch  # epoch held by last.pt
        end_epoch = cfg.epochs if max_epochs_this_call is None else min(cfg.epochs, start_epoch + max_epochs_this_call)
        epoch = start_epoch
        report_every = progress_every()
        for epoch in range(start_epoch, end_epoch):
            t0 = time.time()
            net.train()
            gen.manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + rank)
            torch.manual_seed(cfg.seed * 1_000_033 + epoch * 7907 + rank)  # dropout: per epoch, so resume is exact
            g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)  # same order on every rank
            perm = torch.randperm(len(y_tr), generator=g)[: per_rank * world].to(device)
            perm = perm[rank::world]  # (per_rank,) this rank's shard
            loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
            bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", main)
            next_report = t0 + report_every
            for s in range(steps_per_epoch):
                idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                xb, yb = make_batch(x_tr, y_tr, idx, cfg, aug_cfg, prep, gen)
                lr = lr_at(cfg, epoch * steps_per_epoch + s, total_steps)
                loss, logits = train_step(net, opt, xb, yb, lr, cfg.label_smoothing, amp)
                loss_sum += loss.detach() * len(yb)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(yb)
                if bar is not None:
                    bar.update(1)
                now = time.time()
                if main and now >= next_report:  # within-epoch progress for the dashboard (no fsync: advisory)
                    next_report = now + report_every
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)  # so images/s counts finished work
                    touch(fsync=False, progress={
                        "epoch": epoch + 1, "step": s + 1, "steps": steps_per_epoch,
                        "step_seconds": round((time.time() - t0) / (s + 1), 4),
                        "images_per_s": round(seen * world / max(time.time() - t0, 1e-6), 1)})
                stop_now = stop["flag"]
                if distributed:  # all ranks must leave the loop at the same step
                    t = torch.tensor([float(stop_now)], device=device)
                    torch.distributed.all_reduce(t)
                    stop_now = t.item() > 0
                if stop_now:
                    break
            if bar is not None:
                bar.close()
            if stop_now:
                break
            if distributed:
                t = torch.stack([loss_sum, correct, torch.tensor(float(seen), device=device)])
                torch.distributed.all_reduce(t)
                loss_sum, correct, seen = t[0], t[1], t[2].item()
            train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
            train_secs = time.time() - t0  # the .item() above waited for the device
            val_loss, val_acc = evaluate_tensors(model, x_va, y_va, prep, cfg.eval_batch_size, device, amp)
            secs = time.time() - t0
            elapsed += secs
            m = {"epoch": epoch + 1, "train_loss": round(train_loss, 5), "train_acc": round(train_acc, 5),
                 "val_loss": round(val_loss, 5), "val_acc": round(val_acc, 5), "lr": lr, "seconds": round(secs, 3),
                 "elapsed": round(elapsed, 3), "time": now_iso(), "train_seconds": round(train_secs, 3),
                 "images_per_s": round(seen / max(train_secs, 1e-6), 1)}
            if main:
                append_jsonl(run / "metrics.jsonl", m)
                if val_acc > best_acc:
                    best_acc = val_acc
                    save_checkpoint(checkpoint(epoch + 1, m, False), run / "best.pt")
                if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == end_epoch:
                    save_checkpoint(checkpoint(epoch + 1, m, True), run / "last.pt")
                    saved_epoch = epoch + 1
                touch(epoch=epoch + 1, best_val_acc=best_acc, last=m, images_per_s=m["images_per_s"],
                      progress={"epoch": epoch + 1, "step": steps_per_epoch, "steps": steps_per_epoch,
                                "step_seconds": round(train_secs / steps_per_epoch, 4),
                                "images_per_s": m["images_per_s"]})
                log(f"epoch {epoch + 1}/{cfg.epochs} train loss {train_loss:.4f} acc {train_acc:.4f} | "
                    f"val loss {val_loss:.4f} acc {val_acc:.4f} | lr {lr:.2e} | {secs:.1f}s")
                if callback is not None and callback(m):
                    stop["flag"] = True
            else:
                best_acc = max(best_acc, val_acc)
            if distributed:  # a signal seen by any rank stops all of them after this epoch
                t = torch.tensor([float(stop["flag"])], device=device)
                torch.distributed.all_reduce(t)
                stop["flag"] = t.item() > 0
            if stop["flag"]:
                if main and saved_epoch != epoch + 1:
                    save_checkpoint(checkpoint(epoch + 1, m, True), run / "last.pt")
                    saved_epoch = epoch + 1
                break
        if main:
            status.pop("progress", None)  # no epoch is in progress any more
            if stop["flag"] or (epoch + 1 < cfg.epochs and max_epochs_this_call is None):
                touch(state="stopped", epoch=saved_epoch)
                log(f"stopped; last.pt holds epoch {saved_epoch}. Resume with --resume {run}")
            elif end_epoch < cfg.epochs:
                touch(state="stopped")
            else:
                touch(state="completed", finished=now_iso())
                log(f"completed {cfg.epochs} epochs; best val acc {best_acc:.4f}; {elapsed:.1f}s training")
        return run
    except BaseException as e:
        if main and status_path.parent.exists():
            status.pop("progress", None)
            touch(state="failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:500])
            log("failed: " + "".join(traceback.format_exception_only(type(e), e)).strip())
        raise
    finally:
        release_run_lock(lock)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field; a flag not given is absent from the namespace, so the config file's
    value (or the field's default) stands."""
    p = argparse.ArgumentParser(prog="python -m fer_core.train", description=__doc__.split("\n")[0],
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE", help="JSON config (a run's config.json will do); flags override it")
    for o in options():
        kw = dict(help=o.help + (f" (default: {o.placeholder or o.default})" if o.default != "" else ""))
        if o.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif o.kind in ("int", "float"):
            kw["type"] = {"int": int, "float": float}[o.kind]
        if o.choices:
            kw["choices"] = o.choices
        p.add_argument(o.flag, **kw)
    p.add_argument("--out", default="runs", help="directory that holds run directories")
    p.add_argument("--name", default=None, help="run directory name (default: timestamp-model)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue a stopped or killed run with its own config")
    return p


def check_out_dir(out) -> None:
    """--out must be a folder or a path where one can be made (not a file, nor under one)."""
    p = Path(out)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise ValueError(f"--out {out}: {q} is not a directory")
            break


def config_from_args(a) -> TrainConfig:
    """--config's file (if any), overridden by the flags given."""
    cfg = load_config(a.config) if getattr(a, "config", None) else TrainConfig()
    for o in options():
        if hasattr(a, o.name):
            v = getattr(a, o.name)
            setattr(cfg, o.name, parse_json_object(o, v) if o.kind == "json" else v)
    return cfg


def config_of_run(run_dir) -> TrainConfig:
    run = Path(run_dir)
    cfile = run / "config.json"
    if not run.is_dir() or not cfile.exists():
        raise ValueError(f"{run_dir}: not a run directory (no config.json)")
    return load_config(cfile)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        if a.resume:
            cfg = config_of_run(a.resume)
            st = Path(a.resume) / "status.json"
            if st.exists() and json.loads(st.read_text()).get("state") == "completed":
                raise ValueError(f"{a.resume}: run already completed; nothing to resume")
            if not (Path(a.resume) / "last.pt").exists():
                raise ValueError(f"{a.resume}: no last.pt to resume from")
            read_checkpoint(Path(a.resume) / "last.pt")
            if getattr(a, "device", "auto") != "auto":
                cfg.device = a.device
        else:
            cfg = config_from_args(a)
        cfg.validate()
        resolve_device(cfg.device)
        if not a.resume:
            check_out_dir(a.out)
        if not a.resume:  # bad data fails here, before a run directory exists (decoded once, then cached)
            load_split(cfg.data, "train")
            load_split(cfg.data, cfg.val_split)
        run = train(cfg, out_dir=a.out, run_dir=a.resume or a.name, resume=bool(a.resume))
    except (ValueError, DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if _dist_info()[1] != 0:
        return 0  # rank 0 reports for the run
    st = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
    print(f"run: {run} ({st.get('state')}, best val acc {st.get('best_val_acc')})")
    return 0 if st.get("state") in ("completed", "stopped", None) else 1


if __name__ == "__main__":
    sys.exit(main())
