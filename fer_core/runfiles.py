"""The files of a run directory, in one place: their names, and reading and writing them.

The trainer (fer_core.train) writes them and the dashboard (fer_core.runs) reads them; every write is atomic
(a temp file renamed over the old one), so a reader never sees half a file:

    config.json    hyperparameters, model, data (written by the trainer once the data is loaded)
    metrics.jsonl  one JSON line per finished epoch
    status.json    {state, epoch, epochs, pid, host, elapsed, progress, ...}; the trainer keeps it current
    launch.json    the launcher's record: the command line, the process id and host of the launched process
    launch_config.json  the whole TrainConfig the launcher hands the trainer (--config)
    output.log     stdout and stderr of the training process (the log lines, and any error)
    train.log      the trainer's own log lines
    train.lock     held (flock) by the live trainer, so two trainers never share a run
    stop_requested written when a stop is asked for
    best.pt, last.pt
"""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from .data import atomic_write_bytes

STATUS_FILE = "status.json"
RUN_CONFIG = "config.json"
METRICS_FILE = "metrics.jsonl"
LAUNCH_FILE = "launch.json"
LAUNCH_CONFIG = "launch_config.json"
OUTPUT_LOG = "output.log"
LOG_FILE = "train.log"
LOCK_FILE = "train.lock"
STOP_FILE = "stop_requested"
BEST_FILE = "best.pt"
LAST_FILE = "last.pt"


def parse_time(s) -> float | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(str(s)).timestamp()
    except ValueError:
        return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_json(path) -> dict:
    try:
        obj = json.loads(Path(path).read_text())
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def write_json(path, obj, fsync: bool = True) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode(), fsync=fsync)


def append_jsonl(path, obj) -> None:
    """metrics.jsonl is rewritten whole through a temp file so a reader never sees half a line."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    atomic_write_bytes(path, old + (json.dumps(obj) + "\n").encode())


def read_metrics(run_dir) -> list[dict]:
    """metrics.jsonl as a list of dicts in epoch order (lines that do not parse are skipped). An epoch logged
    twice (a run resumed from a last.pt older than its last logged epoch) keeps its latest line."""
    by_epoch = {}
    try:
        lines = (Path(run_dir) / METRICS_FILE).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if isinstance(m, dict) and isinstance(m.get("epoch"), int):
            by_epoch[m["epoch"]] = m
    return [by_epoch[e] for e in sorted(by_epoch)]


def read_config(run_dir) -> dict:
    """config.json; before the trainer has written it, the launch request in the same shape."""
    run = Path(run_dir)
    cfg = read_json(run / RUN_CONFIG)
    if cfg:
        return cfg
    req = read_json(run / LAUNCH_FILE).get("config")
    if req:
        return {"hyperparameters": req, "model_name": req.get("model"), "model_args": req.get("model_args", {}),
                "data": {"source": req.get("data")}}
    return {}


def is_run_dir(path) -> bool:
    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in (STATUS_FILE, RUN_CONFIG, LAUNCH_FILE))


def tail(path, n: int = 40, max_bytes: int = 64_000) -> str:
    """The last `n` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").replace("\r", "\n").splitlines()
    return "\n".join(lines[-n:])


def log_tail(run_dir, n: int = 40) -> str:
    run = Path(run_dir)
    return tail(run / OUTPUT_LOG, n) or tail(run / LOG_FILE, n)


# ----------------------------------------------------------------------------------------------
# run directories are created exclusively and held with a lock, so two trainers never share one


def run_base_name(model: str) -> str:
    """The default name of a new run: its start time and model."""
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{model}"


def run_name_problem(name: str) -> str | None:
    """Why `name` is not one plain folder name (no path separators, no leading '.' or '-', no control
    characters, at most 200 bytes), or None: a run never lands outside its runs folder."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        return f"run name {name!r} must be a plain folder name"
    if name.startswith("-"):
        return f"run name {name!r} must not start with '-'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"run name {name!r} must not hold control characters"
    if len(name.encode()) > 200:
        return "run name is too long (at most 200 bytes)"
    return None


def create_run_dir(out_dir, name: str | None, default_base: str) -> Path:
    """A new run directory under `out_dir`. A taken default name gets a suffix (-2, -3, ...); an explicit
    `name` that exists is an error, unless it is the empty folder runs.launch made for this trainer."""
    root = Path(out_dir or "runs")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot make the runs folder {root}: {e.strerror or e}") from None
    if name:
        problem = run_name_problem(name)
        if problem:
            raise ValueError(problem)
        run = root / name
        try:
            run.mkdir()
        except FileExistsError:
            made_by_launcher = (run / LAUNCH_FILE).exists() and not any(
                (run / f).exists() for f in (RUN_CONFIG, LAST_FILE, METRICS_FILE))
            if not made_by_launcher:
                raise ValueError(f"run {name!r} already exists in {root}; choose another --name "
                                 f"or continue it with --resume {run}") from None
        except OSError as e:
            raise ValueError(f"cannot make the run folder {run}: {e.strerror or e}") from None
        return run
    for i in range(1, 10_000):
        run = root / (default_base if i == 1 else f"{default_base}-{i}")
        try:
            run.mkdir()  # atomic: of two launches in the same second only one gets each name
            return run
        except FileExistsError:
            continue
        except OSError as e:
            raise ValueError(f"cannot make a run folder in {root}: {e.strerror or e}") from None
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


def remove_if_empty(run: Path) -> None:
    try:
        (run / LOCK_FILE).unlink(missing_ok=True)
        run.rmdir()
    except OSError:
        pass


def release_run_lock(f) -> None:
    if f is not None:
        f.close()  # closing the file releases the flock
