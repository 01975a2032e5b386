"""The files of a run directory, in one place: their names, and reading and writing them.

The trainer (fer_core.train) writes them and the dashboard (fer_core.runs) reads them; every write is atomic
(a temp file renamed over the old one), so a reader never sees half a file:

    config.json    the run's one copy of its config: format_version, hyperparameters (every TrainConfig field),
                   model, data, versions; written once, by the trainer, once the data is loaded (a launched
                   trainer gets the config on its stdin: `--config -`). Checkpoints carry train_config too,
                   so that a checkpoint exported from its run still says how it was trained
    metrics.jsonl  one JSON line per finished epoch
    status.json    {state, epoch, epochs, pid, host, elapsed, progress, ...}; the trainer keeps it current
    launch.json    the launcher's record: the command line, the process id and host, when it was first created
                   and last launched (a resume launches again)
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
from .typedjson import BOOL, DICT, FLOAT, INT, LIST, STR, fits, read_json_checked, typed

STATUS_FILE = "status.json"
RUN_CONFIG = "config.json"
METRICS_FILE = "metrics.jsonl"
LAUNCH_FILE = "launch.json"
CONFIG_FORMAT = 1  # config.json's format_version (absent in runs written before it had one: read as 1)
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
    if old and not old.endswith(b"\n"):  # a last line cut short (or edited by hand) stays apart from the new one
        old += b"\n"
    atomic_write_bytes(path, old + (json.dumps(obj) + "\n").encode())


# ----------------------------------------------------------------------------------------------
# what is read from a run directory is checked by type (fer_core.typedjson): a field of the wrong type is
# left out and named in a one-line problem; a metrics line that does not parse or holds a wrong-typed value
# is skipped and counted.


def _read_typed(path, schema) -> tuple[dict, list[str]]:
    obj, problem = read_json_checked(path)
    if problem:
        return {}, [problem]
    return typed(obj, schema, Path(path).name)


_PROGRESS = {"epoch": INT, "step": INT, "steps": INT, "step_seconds": FLOAT, "images_per_s": FLOAT}
STATUS_SCHEMA = {"state": STR, "epoch": INT, "epochs": INT, "pid": INT, "host": STR, "elapsed": FLOAT,
                 "updated": STR, "updated_ts": FLOAT, "started": STR, "finished": STR, "error": STR, "device": STR,
                 "images_per_s": FLOAT, "best_val_acc": FLOAT, "progress": _PROGRESS, "last": DICT}
LAUNCH_SCHEMA = {"argv": LIST, "pid": INT, "host": STR, "launched": STR, "created": STR}
_DATA = {"source": STR, "train_size": INT, "val_size": INT, "val_split": STR, "class_counts": DICT}


def hyperparameter_schema() -> dict:
    """TrainConfig's fields by the kind of value each holds."""
    from .config import options  # (config imports torch: only when a run's hyperparameters are read)

    kinds = {"int": INT, "float": FLOAT, "bool": BOOL, "str": STR, "json": DICT}
    return {o.name: kinds.get(o.kind, STR) for o in options()}


def config_schema() -> dict:
    return {"format_version": INT, "hyperparameters": hyperparameter_schema(), "model_name": STR, "model_args": DICT,
            "data": _DATA,
            "device": STR, "created": STR, "n_params": INT, "seed": INT, "world_size": INT}


def read_status(run_dir) -> tuple[dict, list[str]]:
    """status.json, checked by type -> (status, problems)."""
    return _read_typed(Path(run_dir) / STATUS_FILE, STATUS_SCHEMA)


def read_launch(run_dir) -> tuple[dict, list[str]]:
    """launch.json, checked by type -> (launch record, problems)."""
    return _read_typed(Path(run_dir) / LAUNCH_FILE, LAUNCH_SCHEMA)


def _metrics_line(line: str) -> dict | None:
    """One metrics.jsonl line as a dict, or None when it is not a line the trainer writes: an object with an
    integer epoch >= 0 whose known fields (METRICS_SCHEMA) hold numbers (or null), "time" a string."""
    try:
        m = json.loads(line)
    except ValueError:
        return None
    if not isinstance(m, dict) or not fits(m.get("epoch"), INT) or m["epoch"] < 0:
        return None
    return None if typed(m, METRICS_SCHEMA, "")[1] else m


METRICS_SCHEMA = {k: FLOAT for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "elapsed",
                                     "train_seconds", "images_per_s", "train_size")} | {"time": STR}


def _parsed_lines(text: str) -> list[tuple[str, dict | None]]:
    """Each non-blank line of metrics.jsonl with its metrics dict, or None where it is not a metrics line."""
    return [(line, _metrics_line(line)) for line in text.splitlines() if line.strip()]


def read_metrics_checked(run_dir) -> tuple[list[dict], int]:
    """(metrics.jsonl as a list of dicts in epoch order, the number of lines skipped because they do not parse
    or hold a wrong-typed value). An epoch logged twice (a run resumed from a last.pt older than its last
    logged epoch) keeps its latest line."""
    try:
        parsed = _parsed_lines((Path(run_dir) / METRICS_FILE).read_text(errors="replace"))
    except OSError:
        return [], 0
    by_epoch = {m["epoch"]: m for _, m in parsed if m is not None}
    return [by_epoch[e] for e in sorted(by_epoch)], sum(m is None for _, m in parsed)


def read_metrics(run_dir) -> list[dict]:
    """read_metrics_checked without the count of skipped lines."""
    return read_metrics_checked(run_dir)[0]


def trim_metrics(run_dir, last_epoch: int) -> int:
    """On resume: drop the lines of epochs after `last_epoch` (they are trained again). Lines that are not
    metrics lines are kept as they are (readers skip them; nothing written by someone else is lost), each
    ending in a newline so the next line appended stays a line of its own. -> the number of such lines."""
    path = Path(run_dir) / METRICS_FILE
    try:
        parsed = _parsed_lines(path.read_text(errors="replace"))
    except FileNotFoundError:
        return 0
    keep = [line for line, m in parsed if m is None or m["epoch"] <= last_epoch]
    atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())
    return sum(m is None for _, m in parsed)


def read_config_checked(run_dir) -> tuple[dict, list[str]]:
    """config.json checked by type -> (config, problems); ({}, []) before the trainer has written it. A newer
    format_version than this fer_core knows is a problem (its fields may mean something else)."""
    cfg, problems = _read_typed(Path(run_dir) / RUN_CONFIG, config_schema())
    version = cfg.get("format_version", 1)
    if version > CONFIG_FORMAT:
        problems = problems + [f"{RUN_CONFIG} has format_version {version}; this fer_core reads {CONFIG_FORMAT}"]
    return cfg, problems


def read_config(run_dir) -> dict:
    """read_config_checked without its problems."""
    return read_config_checked(run_dir)[0]


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
