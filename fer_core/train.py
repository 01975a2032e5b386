"""Training runs: `python -m fer_core.train --data PATH --model NAME ... --out RUNS_DIR`.

A run is a directory (its files: fer_core.runfiles). The data set lives on the training device as uint8;
augmentation is one batched op per step on that device, so no per-image Python work happens in the loop.
Under torchrun it trains with DistributedDataParallel. train() is the outline; the run's life (directory,
lock, signals, data, resume, end state) is in fer_core.session, the arithmetic (learning rate, batches,
optimizer steps, evaluation) in fer_core.steps.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint, shape_mismatch
from .config import TrainConfig, load_config, options, parse_json_object
from .data import load_split
from .images import DataError
from .devices import dist_info, resolve_device
from .distill import batch_targets
from .runfiles import BEST_FILE, LAST_FILE, METRICS_FILE, RUN_CONFIG, STATUS_FILE, append_jsonl, now_iso, read_json
from .session import (Diverged, Session, build, build_model, catch_stop_signals, close, fail, finish, load_data,
                      open_session, start_status, write_run_files)
from .trainset import check_trainable, training_faces
from .steps import alternating_flips, ema_decay, ema_update, evaluate_tensors, lr_at, make_batch, mix_batch, mix_plan, train_step

PROGRESS_EVERY = 1.0  # seconds between status.json updates within an epoch (steps done, images/s, elapsed)


def progress_every() -> float:
    """Seconds between in-epoch status updates; `FER_PROGRESS_EVERY` overrides (tests whose epochs last < 1 s)."""
    try:
        return max(0.0, float(os.environ.get("FER_PROGRESS_EVERY", PROGRESS_EVERY)))
    except ValueError:
        return PROGRESS_EVERY


def _progress_bar(total, desc, enabled):
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def train(cfg: TrainConfig, out_dir: str | None = None, run_dir: str | None = None, resume: bool = False,
          max_epochs_this_call: int | None = None, callback=None) -> Path:
    """Train (or resume) one run; returns its directory.

    callback(metrics) runs after every epoch on rank 0; returning True stops the run (benchmarks use it).
    `max_epochs_this_call` ends the call early with state "stopped" (tests of resume use it)."""
    s = open_session(cfg, out_dir, run_dir, resume)
    old_handlers = catch_stop_signals(s)
    try:
        start_status(s)
        load_data(s)
        build_model(s)
        write_run_files(s)
        build(s)
        end_epoch = cfg.epochs if max_epochs_this_call is None else min(cfg.epochs, s.start_epoch + max_epochs_this_call)
        last_epoch = s.start_epoch
        for epoch in range(s.start_epoch, end_epoch):
            last_epoch = epoch
            m = run_epoch(s, epoch)
            if m is None or end_epoch_step(s, m, end_epoch, callback):
                break
        finish(s, last_epoch, end_epoch, partial=max_epochs_this_call is not None)
        return s.run
    except BaseException as e:
        fail(s, e)
        raise
    finally:
        close(s, old_handlers)


def run_epoch(s: Session, epoch: int) -> dict | None:
    """Train epoch `epoch` (0-based) and score it on the validation faces -> its metrics; None when a stop
    came in the middle (the epoch is not counted; resume trains it again from last.pt)."""
    cfg, dev, d = s.cfg, s.device, s.data
    t0 = time.time()
    s.net.train()
    gen = torch.Generator(device=dev).manual_seed(cfg.seed * 1_000_003 + epoch * 7919 + s.rank)  # augmentation
    torch.manual_seed(cfg.seed * 1_000_033 + epoch * 7907 + s.rank)  # dropout: per epoch, so resume is exact
    per_rank, steps = s.shard_size, s.steps_per_epoch
    g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)  # same order on every rank
    perm = torch.randperm(len(d["y_tr"]), generator=g)[: per_rank * s.world].to(dev)[s.rank :: s.world]  # (per_rank,)
    loss_sum, correct, seen = torch.zeros((), device=dev), torch.zeros((), device=dev), 0
    aug_cfg, every, size = cfg.augment_config(), progress_every(), cfg.train_size(epoch)
    bar, next_report = _progress_bar(steps, f"epoch {epoch + 1}/{cfg.epochs}", s.main), t0 + every
    mixes = mix_plan(cfg, epoch, steps, s.rank)
    flips = alternating_flips(len(d["y_tr"]), cfg.seed, epoch).to(dev) if cfg.alternate_flip else None
    stopped = diverged = False
    for step in range(steps):
        idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        fb = None if flips is None else flips[idx]  # (B,) which faces are mirrored, when known up front
        mirrors = cfg.augment and cfg.flip
        if s.teacher is not None and fb is None and mirrors:  # drawn here, so the teacher's target follows the face
            fb = torch.rand(len(idx), device=dev, generator=gen) < 0.5
        xb, yb = make_batch(d["x_tr"], d["y_tr"], idx, cfg, aug_cfg, s.prep, gen, size, fb)
        soft = None
        if s.teacher is not None:
            soft = batch_targets(s.teacher, idx, fb if mirrors else None)  # (B, 7)
        mix = None
        if mixes is not None:
            xb, y2, lam = mix_batch(xb, yb, *mixes[step])
            mix = (y2, lam)
            if soft is not None:  # the partner is the reversed batch (mix_batch); lam is its effective weight
                soft = lam * soft + (1 - lam) * soft.flip(0)
        if soft is not None:
            soft = (soft, cfg.distill_alpha, cfg.distill_temperature)
        lr = lr_at(cfg, epoch * steps + step, steps * cfg.epochs)
        loss, logits = train_step(s.net, s.opt, xb, yb, lr, cfg.label_smoothing, s.amp, mix, soft)
        if s.ema is not None:
            ema_update(s.ema, s.model, ema_decay(epoch * steps + step, cfg.ema))
        loss_sum += loss.detach() * len(yb)
        correct += (logits.detach().argmax(1) == yb).sum()
        seen += len(yb)
        if bar is not None:
            bar.update(1)
        if s.main and time.time() >= next_report:  # within-epoch progress for the dashboard (no fsync: advisory)
            next_report = time.time() + every
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)  # so images/s counts finished work
            # the epoch's running loss, read where the host waits anyway: a NaN run stops within a second
            # (one process; under torchrun every rank checks at the epoch's end below)
            diverged = not s.distributed and not bool(torch.isfinite(loss_sum))
            secs = time.time() - t0
            s.touch(fsync=False, progress={"epoch": epoch + 1, "step": step + 1, "steps": steps,
                                           "step_seconds": round(secs / (step + 1), 4),
                                           "images_per_s": round(seen * s.world / max(secs, 1e-6), 1)})
        stopped = s.any_rank(s.stop)
        if stopped or diverged:
            break
    if bar is not None:
        bar.close()
    if diverged:
        raise_diverged(s, epoch, step + 1, steps, float(loss_sum / max(1, seen)))
    if stopped:
        return None
    if s.distributed:
        t = torch.stack([loss_sum, correct, torch.tensor(float(seen), device=dev)])
        torch.distributed.all_reduce(t)
        loss_sum, correct, seen = t[0], t[1], t[2].item()
    train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
    train_secs = time.time() - t0  # the .item() above waited for the device
    if not math.isfinite(train_loss):  # before anything is saved: best.pt and last.pt keep finite weights
        raise_diverged(s, epoch, steps, steps, train_loss)
    val_loss, val_acc = evaluate_tensors(s.ema if s.ema is not None else s.model, d["x_va"], d["y_va"], s.prep,
                                         cfg.eval_batch_size, dev, s.amp, cfg.tta, s.channels_last)
    if not math.isfinite(val_loss):  # the epoch's last steps made the weights non-finite
        raise_diverged(s, epoch, steps, steps, val_loss, "validation loss")
    secs = time.time() - t0
    s.elapsed += secs
    return {"epoch": epoch + 1, "train_loss": round(train_loss, 5), "train_acc": round(train_acc, 5),
            "val_loss": round(val_loss, 5), "val_acc": round(val_acc, 5), "lr": lr, "seconds": round(secs, 3),
            "elapsed": round(s.elapsed, 3), "time": now_iso(), "train_seconds": round(train_secs, 3),
            "images_per_s": round(seen / max(train_secs, 1e-6), 1), "train_size": size}


def raise_diverged(s: Session, epoch: int, step: int, steps: int, value: float, what: str = "training loss"):
    """Stop a run whose loss is NaN or infinite (state "diverged"; nothing of this epoch is saved)."""
    raise Diverged(f"{s.run}: training diverged: {what} {value} in epoch {epoch + 1} (step {step}/{steps}) at lr "
                   f"{s.cfg.lr:g}; last.pt keeps epoch {s.saved_epoch}"
                   + (f" and best.pt the best finite epoch (val acc {s.best_acc:.4f})" if s.best_acc >= 0 else "")
                   + "; try a lower --lr")


def end_epoch_step(s: Session, m: dict, end_epoch: int, callback) -> bool:
    """Record a finished epoch (metrics line, best.pt, last.pt when due, status, log) -> True to stop now."""
    e, steps = m["epoch"], s.steps_per_epoch
    if s.main:
        append_jsonl(s.run / METRICS_FILE, m)
        if m["val_acc"] > s.best_acc:
            s.best_acc = m["val_acc"]
            save_checkpoint(s.checkpoint(e, m, False), s.run / BEST_FILE)
        if e % s.cfg.checkpoint_every == 0 or e == end_epoch:
            s.save_last(e, m)
        s.touch(epoch=e, best_val_acc=s.best_acc, last=m, images_per_s=m["images_per_s"],
                progress={"epoch": e, "step": steps, "steps": steps,
                          "step_seconds": round(m["train_seconds"] / steps, 4), "images_per_s": m["images_per_s"]})
        s.log(f"epoch {e}/{s.cfg.epochs} train loss {m['train_loss']:.4f} acc {m['train_acc']:.4f} | "
              f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.4f} | lr {m['lr']:.2e} | {m['seconds']:.1f}s")
        if callback is not None and callback(m):
            s.stop = True
    else:
        s.best_acc = max(s.best_acc, m["val_acc"])
    s.stop = s.any_rank(s.stop)  # a signal seen by any rank stops all of them after this epoch
    if s.stop and s.main and s.saved_epoch != e:
        s.save_last(e, m)
    return s.stop


# ----------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field; a flag not given is absent from the namespace, so the config file's
    value (or the field's default) stands."""
    p = argparse.ArgumentParser(prog="python -m fer_core.train", description=__doc__.split("\n")[0],
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE", help="JSON config (a run's config.json will do; '-' reads it from stdin); flags override it")
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
    cfile = run / RUN_CONFIG
    if not run.is_dir() or not cfile.exists():
        raise ValueError(f"{run_dir}: not a run directory (no config.json)")
    return load_config(cfile)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        if a.resume:
            cfg = config_of_run(a.resume)
            st = Path(a.resume) / STATUS_FILE
            if read_json(st).get("state") == "completed":  # (a status.json that does not parse: not completed)
                raise ValueError(f"{a.resume}: run already completed; nothing to resume")
            if not (Path(a.resume) / LAST_FILE).exists():
                raise ValueError(f"{a.resume}: no {LAST_FILE} to resume from")
            last = read_checkpoint(Path(a.resume) / LAST_FILE)
            problem = shape_mismatch({**last, "model_name": cfg.model, "model_args": cfg.model_args})
            if problem:  # a last.pt of another model: one line, not load_state_dict's traceback
                raise ValueError(f"{a.resume}/last.pt does not fit the run's model {cfg.model!r}: {problem}")
            if getattr(a, "device", "auto") != "auto":
                cfg.device = a.device
        else:
            cfg = config_from_args(a)
        cfg.validate()
        resolve_device(cfg.device)
        if not a.resume:
            check_out_dir(a.out)
        if not a.resume:  # bad data fails here, before a run directory exists (decoded once, then cached)
            check_trainable(cfg, len(training_faces(cfg, load_split(cfg.data, "train"))),
                            len(load_split(cfg.data, cfg.val_split)))
        run = train(cfg, out_dir=a.out, run_dir=a.resume or a.name, resume=bool(a.resume))
    except (ValueError, DataError, CheckpointError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written, a disk that is full: one line, the run is kept
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except Diverged as e:  # the run is kept, as "diverged", with its last finite checkpoints
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if dist_info()[1] != 0:
        return 0  # rank 0 reports for the run
    st = read_json(run / STATUS_FILE)
    print(f"run: {run} ({st.get('state')}, best val acc {st.get('best_val_acc')})")
    return 0 if st.get("state") in ("completed", "stopped", None) else 1


if __name__ == "__main__":
    sys.exit(main())
