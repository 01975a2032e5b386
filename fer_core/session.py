"""One training run's life in a process, as named steps around a small state object (`Session`).

fer_core.train.train() reads as: open the session (device, ranks, run directory, lock), catch stop signals,
start the status, then nanoGPT's order: the data, the model, the run's files, the optimizer (restoring last.pt
on resume), the epochs; then finish, fail or close. Every file goes through fer_core.runfiles, so the dashboard and the trainer agree on the layout.
"""
from __future__ import annotations

import copy
import gc
import os
import platform
import signal
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .distill import teacher_targets
from .data import load_split
from .sources import CLASSES, skipped_note
from .devices import setup_training_device
from .models import count_parameters, create_model
from .preprocess import Preprocess, fit_normalization
from .runfiles import (CONFIG_FORMAT, LAST_FILE, LOG_FILE, METRICS_FILE, RUN_CONFIG, STATUS_FILE, create_run_dir, lock_run_dir,
                       now_iso, read_status, release_run_lock, remove_if_empty, run_base_name, trim_metrics,
                       write_json)
from .precision import trainer_settings
from .steps import make_optimizer
from .trainset import check_trainable, training_faces
from .whiten import patch_whitening, whiten_first_conv


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run ends "diverged"; last.pt and best.pt keep the last
    finite epoch (nothing after it is saved)."""


class Log:
    """Timestamped lines to train.log and stderr, from rank 0 only."""

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


@dataclass
class Session:
    """What one call of train() holds. Rank 0 (`main`) owns the run's files; every rank trains."""

    cfg: TrainConfig
    run: Path
    device: torch.device
    world: int
    rank: int
    resume: bool
    lock: object = None  # the open train.lock (rank 0)
    amp: bool = False  # bf16 autocast: CUDA, or a CPU with native bf16 and cpu_fast
    stop: bool = False  # a signal or the callback asked to stop; honoured after the current step
    status: dict = field(default_factory=dict)
    # status["elapsed"]: wall seconds over all the run's sessions, so a resume continues the count where the
    # stopped process left it (it never goes backwards)
    clock_base: float = 0.0
    clock_t0: float = field(default_factory=time.time)
    channels_last: bool = False  # the layout of the model and its batches (fer_core.precision)
    # set by load_data / build_model / write_run_files / build
    faces: dict = field(default_factory=dict)  # "train", "val": the FaceSets (host copies)
    data: dict = field(default_factory=dict)  # x_tr, y_tr, x_va, y_va: uint8 (N, 1, 48, 48) and labels, on device
    prep: Preprocess | None = None
    model: torch.nn.Module | None = None
    net: torch.nn.Module | None = None  # the model, wrapped in DDP when distributed
    ema: torch.nn.Module | None = None  # the weight average (--ema): what is validated and saved as the model
    teacher: torch.Tensor | None = None  # (N, 2, 7) distillation targets of each face and its mirror
    opt: torch.optim.Optimizer | None = None
    meta: dict = field(default_factory=dict)  # what every checkpoint carries besides weights
    start_epoch: int = 0
    best_acc: float = -1.0
    elapsed: float = 0.0  # seconds of finished epochs (stored in checkpoints)
    saved_epoch: int = 0  # epoch held by last.pt
    finished: bool = False  # finish() ran: this rank is past its last collective, so close() may sync the ranks

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def shard_size(self) -> int:
        """Training faces per rank and epoch: equal shards, so every rank takes the same number of steps."""
        return len(self.data["y_tr"]) // self.world

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-self.shard_size // self.cfg.batch_size))

    @property
    def log(self) -> Log:
        return Log(self.run / LOG_FILE, self.main)

    def touch(self, fsync: bool = True, **fields) -> None:
        """Update status.json (rank 0 only calls this)."""
        now = time.time()  # "updated_ts": to the ms, so a reader's "elapsed + time since" stays monotone
        self.status.update(fields, updated=now_iso(), updated_ts=round(now, 3),
                           elapsed=round(self.clock_base + now - self.clock_t0, 3))
        write_json(self.run / STATUS_FILE, self.status, fsync=fsync)

    def any_rank(self, flag: bool) -> bool:
        """True if `flag` is set on any rank (all ranks must leave a loop at the same step)."""
        if not self.distributed:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(t)
        return t.item() > 0

    def checkpoint(self, epoch: int, metrics: dict, full: bool) -> dict:
        """A plain-dict checkpoint; `full` adds the optimizer state (last.pt, for resume)."""
        scored = self.ema if self.ema is not None else self.model  # the weights the metrics were measured on
        ck = dict(self.meta, state_dict={k: v.detach().cpu() for k, v in scored.state_dict().items()},
                  epoch=epoch, metrics=metrics, best_val_acc=self.best_acc, elapsed=self.elapsed)
        if full:
            ck["optimizer"] = self.opt.state_dict()
            if self.ema is not None:  # the trained (not averaged) weights, to resume from
                ck["train_state_dict"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return ck

    def save_last(self, epoch: int, metrics: dict) -> None:
        save_checkpoint(self.checkpoint(epoch, metrics, True), self.run / LAST_FILE)
        self.saved_epoch = epoch


def open_session(cfg: TrainConfig, out_dir, run_dir, resume: bool) -> Session:
    """Device and ranks, then the run directory: made exclusively and locked by rank 0 (a second trainer is
    refused before anything is written)."""
    device, world, rank = setup_training_device(cfg)
    lock, run = None, None
    if resume:
        run = Path(run_dir)
        if rank == 0:
            lock = lock_run_dir(run)
    else:
        if rank == 0:
            run = create_run_dir(out_dir, run_dir, run_base_name(cfg.model))
            try:
                lock = lock_run_dir(run)
            except ValueError:
                if not run_dir:  # our own fresh folder: leave nothing behind
                    remove_if_empty(run)
                raise
        if world > 1:  # every rank must agree on the name chosen by rank 0
            obj = [str(run)]
            torch.distributed.broadcast_object_list(obj, src=0)
            run = Path(obj[0])
    s = Session(cfg, run, device, world, rank, resume, lock, **trainer_settings(cfg, device.type))
    s.status = {"state": "running", "epoch": 0, "epochs": cfg.epochs, "pid": os.getpid(),
                "host": socket.gethostname(), "started": now_iso(), "updated": now_iso(), "error": None,
                "best_val_acc": None, "world_size": world}
    return s


def catch_stop_signals(s: Session) -> dict:
    """SIGTERM/SIGINT set `s.stop`: the run saves last.pt and ends "stopped". -> the old handlers."""
    def on_signal(signum, _frame):
        s.stop = True
        s.log(f"received signal {signum}: stopping after the current step")

    return {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}


def start_status(s: Session) -> None:
    """status.json says "running"; a resumed run keeps its start time, epoch and elapsed count."""
    if not s.main:
        return
    if s.resume:
        old = read_status(s.run)[0]  # checked by type: a garbled status.json does not block the resume
        s.status["started"] = old.get("started", s.status["started"])
        s.clock_base = float(old.get("elapsed") or 0.0)
        s.status.update(resumed=now_iso(), epoch=old.get("epoch", 0), best_val_acc=old.get("best_val_acc"))
    s.touch(device=str(s.device))


def load_data(s: Session) -> None:
    """The faces to the device as uint8 (N, 1, 48, 48) and the normalization fitted on the training faces."""
    cfg = s.cfg
    t_load = time.time()
    train_set = load_split(cfg.data, "train")
    val_set = load_split(cfg.data, cfg.val_split)
    train_set = training_faces(cfg, train_set)
    check_trainable(cfg, len(train_set), len(val_set))
    s.prep = Preprocess(fit_normalization(train_set.x, cfg.normalize)).to(s.device)
    s.log(f"data {cfg.data}: train {len(train_set)}, {cfg.val_split} {len(val_set)} faces "
          f"(loaded in {time.time() - t_load:.1f}s)")
    if val_set.resolved is not None and val_set.resolved.note:
        s.log(f"note: {val_set.resolved.note}")
    for fs in (train_set, val_set):
        if fs.skipped:
            s.log(f"note: {skipped_note(cfg.data, fs.split, fs.skipped)}")
    s.faces = {"train": train_set, "val": val_set}
    s.data = {"x_tr": torch.from_numpy(train_set.x).to(s.device)[:, None],
              "y_tr": torch.from_numpy(train_set.y).to(s.device),
              "x_va": torch.from_numpy(val_set.x).to(s.device)[:, None],
              "y_va": torch.from_numpy(val_set.y).to(s.device)}


def build_model(s: Session) -> None:
    """The model (in the precision rule's layout), its first-layer whitening, the weight average, the teacher's
    targets. Seeded here, so a run's initial weights depend on its seed only."""
    cfg = s.cfg
    torch.manual_seed(cfg.seed)
    s.model = create_model(cfg.model, **cfg.model_args).to(s.device)
    if s.channels_last:
        s.model = s.model.to(memory_format=torch.channels_last)
    if cfg.whiten_init and not s.resume:  # before the EMA copy: the average starts at these weights too
        whiten_first_conv(s.model, patch_whitening(s.faces["train"].x, s.prep))
    if cfg.ema:
        s.ema = copy.deepcopy(s.model).eval().requires_grad_(False)  # starts at the initial weights
    if cfg.teacher:
        t0 = time.time()
        s.teacher = teacher_targets(cfg.teacher_paths(), s.data["x_tr"], cfg.distill_temperature)
        s.log(f"teacher targets from {', '.join(cfg.teacher_paths())} ({time.time() - t0:.1f}s)")
    s.log(f"model {cfg.model} ({count_parameters(s.model):,} params) on {s.device}"
          + (f", {s.world} processes" if s.distributed else ""))


def write_run_files(s: Session) -> None:
    """config.json (a new run's; a resumed run keeps its own) and the metadata every checkpoint carries."""
    cfg, train_set, val_set = s.cfg, s.faces["train"], s.faces["val"]
    if s.main and not s.resume:
        write_json(s.run / RUN_CONFIG, {
            "format_version": CONFIG_FORMAT, "hyperparameters": asdict(cfg), "model_name": cfg.model, "model_args": cfg.model_args,
            "n_params": count_parameters(s.model), "data": {"source": str(Path(cfg.data).resolve()),
            "train_size": len(train_set), "val_split": cfg.val_split, "val_size": len(val_set),
            "class_counts": train_set.class_counts(),
            # what val_split read in this source, and FER2013's name for it (fer_core.splits)
            "val_split_resolved": val_set.resolved.as_dict() if val_set.resolved else None,
            # what each split left out of the source (SkippedDataWarning): unknown class folders, rows, FIFOs
            "skipped": {"train": train_set.skipped, cfg.val_split: val_set.skipped}},
            "seed": cfg.seed, "device": str(s.device), "world_size": s.world,
            "versions": {"fer_core": __version__, "torch": torch.__version__, "python": platform.python_version(),
                         "numpy": np.__version__},
            "host": socket.gethostname(), "created": now_iso()})
    s.meta = {"format_version": FORMAT_VERSION, "model_name": cfg.model, "model_args": cfg.model_args,
              "normalization": s.prep.state(), "classes": list(CLASSES), "train_config": asdict(cfg)}


def build(s: Session) -> None:
    """The optimizer; on resume the model and optimizer from last.pt (and metrics after it dropped), else an
    epoch-0 last.pt; DDP around the model when distributed."""
    s.opt = make_optimizer(s.cfg, s.model)
    if s.resume:
        ck = read_checkpoint(s.run / LAST_FILE, map_location=s.device)
        s.model.load_state_dict(ck.get("train_state_dict", ck["state_dict"]))
        if s.ema is not None:
            s.ema.load_state_dict(ck["state_dict"])
        s.opt.load_state_dict(ck["optimizer"])
        s.start_epoch, s.best_acc, s.elapsed = ck["epoch"], ck.get("best_val_acc", -1.0), ck.get("elapsed", 0.0)
        s.clock_base = max(s.clock_base, s.elapsed)  # a status.json older than the checkpoint's count
        s.status.update(epoch=s.start_epoch, best_val_acc=s.best_acc if s.best_acc >= 0 else None)
        if s.main:
            # epochs after last.pt's (a kill after their metrics were written) are trained again; lines that
            # are not metrics lines are kept and counted
            bad = trim_metrics(s.run, s.start_epoch)
            if bad:
                s.log(f"note: {bad} line{'s' * (bad != 1)} of {METRICS_FILE} skipped (not JSON or wrong-typed values)")
            s.touch()
        s.log(f"resumed from epoch {s.start_epoch} (best val acc {s.best_acc:.4f})")
    elif s.main:
        s.save_last(0, {})
    s.saved_epoch = s.start_epoch
    s.net = s.model
    if s.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        s.net = DDP(s.model, device_ids=[s.device.index] if s.device.type == "cuda" else None)


def finish(s: Session, last_epoch: int, end_epoch: int, partial: bool) -> None:
    """The end state: "stopped" (asked to, or `partial`: fewer epochs this call) or "completed"."""
    s.finished = True  # this rank is past its last collective: close() syncs the ranks before they leave the group
    if not s.main:
        return
    cfg = s.cfg
    s.status.pop("progress", None)  # no epoch is in progress any more
    # the log's last line first, then the state: whoever reads "completed" or "stopped" in status.json reads a
    # log that already says so (CI once saw the state before the line)
    if s.stop or (last_epoch + 1 < cfg.epochs and not partial):
        s.log(f"stopped; last.pt holds epoch {s.saved_epoch}. Resume with --resume {s.run}")
        s.touch(state="stopped", epoch=s.saved_epoch)
    elif end_epoch < cfg.epochs:
        s.touch(state="stopped")
    else:
        s.log(f"completed {cfg.epochs} epochs; best val acc {s.best_acc:.4f}; {s.elapsed:.1f}s training")
        s.touch(state="completed", finished=now_iso())


def fail(s: Session, e: BaseException) -> None:
    """Record a failure in status.json and the log (the exception is raised on by the caller); a Diverged run
    ends "diverged", at the epoch its last.pt holds."""
    if s.main and s.run.exists():
        s.status.pop("progress", None)
        if isinstance(e, Diverged):
            s.touch(state="diverged", epoch=s.saved_epoch, error=" ".join(str(e).split())[:500])
            s.log(f"diverged: {e}")
            return
        s.touch(state="failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:500])
        s.log("failed: " + "".join(traceback.format_exception_only(type(e), e)).strip())


def close(s: Session, old_handlers: dict) -> None:
    """Release the lock, restore the signal handlers, leave the process group."""
    release_run_lock(s.lock)
    for sig, h in old_handlers.items():
        signal.signal(sig, h)
    if s.distributed and torch.distributed.is_initialized():
        # gloo aborted a rank at exit about once in 15 runs ("terminate called without an active exception") while
        # the DDP wrapper, whose reducer holds gloo work, outlived the group: drop it first, then leave together
        s.net = s.model
        gc.collect()
        try:
            if s.finished:  # after a failure the other rank may be inside a collective: no barrier to mismatch
                torch.distributed.barrier()
        finally:
            torch.distributed.destroy_process_group()
