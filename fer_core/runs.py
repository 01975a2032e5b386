"""Training runs on disk, for the dashboard and scripts (no Streamlit here).

A run is a directory under a runs folder; its files are the single source of truth, so a run survives a page
refresh and a dashboard restart:

    config.json    hyperparameters, model, data (written by fer_core.train once the data is loaded)
    metrics.jsonl  one JSON line per finished epoch
    status.json    {state, epoch, epochs, pid, host, ...}; fer_core.train keeps it current
    launch.json    written here: the command line, the process id and host of the launched process
    launch_config.json  written here: the whole TrainConfig, which the trainer reads (--config)
    output.log     stdout and stderr of the training process (the log lines, and any error)
    stop_requested written here when a stop is asked for
    best.pt, last.pt

`launch()` starts `python -m fer_core.train ...` as a separate process in a new session; `stop()` sends SIGTERM
to its process group (the trainer saves last.pt and writes state "stopped"); `resume()` continues from last.pt.
`read_run()` reports the *effective* state: a run whose status says running but whose process is gone (killed,
machine rebooted) is "stale", or "stopped"/"failed" when the reason is known, never "running" forever.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from .data import DataError, atomic_write_bytes, source_kind
from .config import TrainConfig, config_from_dict, save_config

STATES = ("queued", "running", "completed", "stopped", "failed", "stale")
ACTIVE_STATES = ("queued", "running")
OUTPUT_LOG = "output.log"
LAUNCH_FILE = "launch.json"
CONFIG_FILE = "launch_config.json"  # the config launch() hands the trainer (--config)
STOP_FILE = "stop_requested"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds fer_core/



class LaunchError(ValueError):
    """A run that cannot be launched (bad option, unavailable device, missing data); the message says why."""


@dataclass
class Run:
    """What the dashboard shows of one run directory."""

    name: str
    path: Path
    state: str  # effective state, one of STATES
    status: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # config.json, or the launch request until that exists
    metrics: list = field(default_factory=list)
    reason: str = ""  # why the state is what it is, when it was inferred (stale, failed, ...)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def hyperparameters(self) -> dict:
        return self.config.get("hyperparameters", {})

    @property
    def epoch(self) -> int:
        return int(self.metrics[-1]["epoch"]) if self.metrics else int(self.status.get("epoch") or 0)

    @property
    def epochs(self) -> int:
        return int(self.status.get("epochs") or self.hyperparameters.get("epochs") or 0)

    @property
    def best_val_acc(self) -> float | None:
        accs = [m["val_acc"] for m in self.metrics if "val_acc" in m]
        return max(accs) if accs else None

    @property
    def duration(self) -> float | None:
        """Seconds the trainer has spent on this run over all its sessions (status.json's "elapsed", which a
        resume carries on), plus, while it runs, the time since that was written. Never goes backwards."""
        spent = self.status.get("elapsed")
        if spent is None:  # a run from before "elapsed" was recorded: finished epochs only
            if not self.metrics:
                return 0.0 if self.active else None
            spent = self.metrics[-1].get("elapsed", 0.0)
        spent = float(spent)
        if self.state == "running":
            since = self.status.get("updated_ts") or _parse_time(self.status.get("updated"))
            if since is not None:
                spent += max(0.0, time.time() - float(since))
        return spent

    @property
    def progress(self) -> dict:
        """The epoch in progress: {epoch, step, steps, step_seconds, images_per_s} ({} when none is)."""
        p = self.status.get("progress")
        return p if self.state == "running" and isinstance(p, dict) and p.get("steps") else {}

    @property
    def images_per_s(self) -> float | None:
        """Training throughput: the epoch in progress, else the last finished epoch's."""
        v = self.progress.get("images_per_s") or self.status.get("images_per_s") or (
            self.metrics[-1].get("images_per_s") if self.metrics else None)
        return float(v) if v else None

    @property
    def device(self) -> str:
        return str(self.status.get("device") or self.config.get("device") or self.hyperparameters.get("device") or "")

    @property
    def eta(self) -> float | None:
        if not self.active:
            return None
        p = self.progress
        if p and p.get("step_seconds"):
            return eta_from_progress(p, self.metrics, self.epochs,
                                     self.status.get("updated_ts") or _parse_time(self.status.get("updated")))
        return eta_seconds(self.metrics, self.epochs)

    def summary(self) -> str:
        """State and finished epochs, as the run picker shows them (the runs table and the live panel show the
        same two; the steps of the epoch in progress go in the live panel only, which polls)."""
        return f"{self.state} {self.epoch}/{self.epochs}"

    @property
    def error(self) -> str | None:
        return self.status.get("error") or (self.reason if self.state == "failed" else None)

    @property
    def launch(self) -> dict:
        return _read_json(self.path / LAUNCH_FILE)

    @property
    def best_checkpoint(self) -> Path | None:
        p = self.path / "best.pt"
        return p if p.exists() else None

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "stale", "failed") and (self.path / "last.pt").exists() and (
            self.path / "config.json").exists()


# ----------------------------------------------------------------------------------------------
# reading


def _parse_time(s) -> float | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(str(s)).timestamp()
    except ValueError:
        return None


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path) -> dict:
    try:
        obj = json.loads(Path(path).read_text())
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def read_metrics(run_dir) -> list[dict]:
    """metrics.jsonl as a list of dicts in epoch order (lines that do not parse are skipped). An epoch logged
    twice (a run resumed from a last.pt older than its last logged epoch) keeps its latest line."""
    by_epoch = {}
    try:
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
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
    cfg = _read_json(run / "config.json")
    if cfg:
        return cfg
    req = _read_json(run / LAUNCH_FILE).get("config")
    if req:
        return {"hyperparameters": req, "model_name": req.get("model"), "model_args": req.get("model_args", {}),
                "data": {"source": req.get("data")}}
    return {}


def is_run_dir(path) -> bool:
    p = Path(path)
    return p.is_dir() and any((p / f).exists() for f in ("status.json", "config.json", LAUNCH_FILE))


def pid_alive(pid) -> bool:
    """True if process `pid` exists on this machine and is not a zombie."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    try:  # a zombie has exited; only its exit status waits to be collected
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_trainer(pid) -> bool:
    """Guard against a reused pid: on Linux the process must be a fer_core.train process."""
    try:
        cmd = Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, TypeError):
        return True  # no /proc: trust the pid
    return any(b"fer_core.train" in c for c in cmd)


def _output_error(run: Path) -> str | None:
    """The trainer's last `error: ...` line (bad arguments, missing data) or the last line of a traceback."""
    lines = tail(run / OUTPUT_LOG, 60).splitlines()
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
        if line.startswith("python -m fer_core.train: error: "):  # argparse refused the command line
            return "bad arguments: " + line.split(": error: ", 1)[1]
    for line in reversed(lines):
        if line and not line.startswith((" ", "\t", "[")) and ("Error" in line or "Exception" in line):
            return line
    return None


def process_alive(status: dict, launch: dict) -> tuple[bool | None, str]:
    """(alive, reason): alive None when it cannot be told from here (another host)."""
    host = status.get("host") or launch.get("host")
    if host and host != socket.gethostname():
        return None, f"started on host {host}; its process cannot be checked from {socket.gethostname()}"
    pid = status.get("pid") or launch.get("pid")
    if pid is None:
        launched = _parse_time(launch.get("launched"))
        if launched is not None and time.time() - launched < 30:
            return True, ""  # being spawned right now
        return False, "no process id recorded"
    if pid_alive(pid) and _is_trainer(pid):
        return True, ""
    return False, f"process {pid} is no longer running"


def effective_state(run_dir) -> tuple[str, str, dict]:
    """(state, reason, status): status.json's state, corrected when the recorded process is gone."""
    run = Path(run_dir)
    status = _read_json(run / "status.json")
    launch = _read_json(run / LAUNCH_FILE)
    state = status.get("state") or ("queued" if launch else "stale")
    if state not in ACTIVE_STATES:
        return (state if state in STATES else "stale"), "", status
    alive, why = process_alive(status, launch)
    if alive:
        return state, "", status
    if alive is None:
        return "stale", why, status
    if (run / STOP_FILE).exists():
        if state == "queued":
            return "stopped", f"stopped before the trainer had started ({why})", status
        return "stopped", f"stop was requested; the process ended without recording it ({why})", status
    err = _output_error(run)
    if err:
        return "failed", err, status
    return "stale", why + " without recording an end (killed, out of memory or machine restarted?)", status


def read_run(run_dir) -> Run:
    run = Path(run_dir)
    state, reason, status = effective_state(run)
    if not status and state == "stale":
        reason = reason or "no status.json"
    return Run(run.name, run, state, status, read_config(run), read_metrics(run), reason)


def list_runs(runs_dir) -> list[Run]:
    """Every run under `runs_dir`, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if is_run_dir(p)]
    dirs.sort(key=lambda p: (_created(p), p.name), reverse=True)
    return [read_run(p) for p in dirs]


def _created(run: Path) -> float:
    """When the run was launched (launch.json), else created (config.json), else the folder's mtime."""
    launch = _read_json(run / LAUNCH_FILE)
    t = _parse_time(launch.get("created") or launch.get("launched")) or _parse_time(
        _read_json(run / "config.json").get("created"))
    if t is None:
        try:
            t = run.stat().st_mtime
        except OSError:
            t = 0.0
    return t


def active_runs(runs_dir) -> list[Run]:
    return [r for r in list_runs(runs_dir) if r.active]


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
    return tail(run / OUTPUT_LOG, n) or tail(run / "train.log", n)


def eta_seconds(metrics: list[dict], epochs: int, window: int = 5) -> float | None:
    """Seconds left: mean duration of the last `window` epochs times the epochs still to run
    (the first epoch is left out once there are others: it carries the start-up cost)."""
    if not metrics or not epochs:
        return None
    secs = [float(m["seconds"]) for m in metrics if m.get("seconds") is not None]
    if len(secs) > 1:
        secs = secs[1:]
    if not secs:
        return None
    recent = secs[-window:]
    left = max(0, int(epochs) - int(metrics[-1]["epoch"]))
    return left * sum(recent) / len(recent)


def eta_from_progress(p: dict, metrics: list[dict], epochs: int, updated: float | None) -> float:
    """Seconds left from within-epoch progress: steps still to run times the measured seconds per step, plus
    each remaining epoch's evaluation time (measured: epoch seconds - training seconds), less the time since
    the progress was written, so the estimate moves between updates."""
    steps, step, epoch = int(p["steps"]), int(p["step"]), int(p["epoch"])
    steps_left = (steps - step) + max(0, int(epochs) - epoch) * steps
    evals = [float(m["seconds"]) - float(m["train_seconds"]) for m in metrics
             if m.get("seconds") is not None and m.get("train_seconds") is not None]
    per_eval = sum(evals[-5:]) / len(evals[-5:]) if evals else 0.0
    evals_left = max(0, int(epochs) - epoch) + (1 if step < steps or epoch > len(metrics) else 0)
    left = steps_left * float(p["step_seconds"]) + evals_left * per_eval
    if updated is not None:
        left -= max(0.0, time.time() - updated)
    return max(0.0, left)


def estimate_seconds(runs_list, model: str, model_args: dict, n_train: int, epochs: int):
    """(seconds, run name, images/s): how long training `model` on `n_train` faces for `epochs` should take
    here, from the newest run of the same model and arguments on this machine that measured its throughput
    (training images/s, evaluation and start-up time). None when no such run exists yet."""
    host = socket.gethostname()
    for r in runs_list:
        hp = r.hyperparameters
        if (hp.get("model") != model or (hp.get("model_args") or {}) != (model_args or {})
                or (r.status.get("host") or r.launch.get("host")) != host or not r.metrics):
            continue
        ips = [m["images_per_s"] for m in r.metrics if m.get("images_per_s")]
        if not ips:
            continue
        rate = sum(ips) / len(ips)
        evals = [m["seconds"] - m["train_seconds"] for m in r.metrics if m.get("train_seconds") is not None]
        per_eval = sum(evals) / len(evals) if evals else 0.0
        # start-up: process start + data load, the time from launch to the first epoch's start
        startup = 0.0
        launched, first = _parse_time(r.launch.get("created")), _parse_time(r.metrics[0].get("time"))
        if launched is not None and first is not None and r.metrics[0].get("seconds") is not None:
            startup = max(0.0, first - launched - float(r.metrics[0]["seconds"]))
        return epochs * (n_train / rate + per_eval) + startup, r.name, rate
    return None


def format_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


# ----------------------------------------------------------------------------------------------
# devices


def available_devices() -> list[str]:
    """Devices torch can train on here, best first ("auto" is not included)."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out + ["cpu"]


def device_description() -> str:
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"cuda: {torch.cuda.get_device_name(0)}" + (f" (+{n - 1} more)" if n > 1 else "")
    if "mps" in available_devices():
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads, no GPU found by torch {torch.__version__})"


def check_device(device: str) -> str | None:
    """None if `device` can be used here, else a message saying why not."""
    if device in ("auto", "cpu"):
        return None
    have = available_devices()
    if device.startswith("cuda"):
        if "cuda" not in have:
            return (f"a CUDA GPU was requested but torch {torch.__version__} sees none on this machine "
                    "(choose device cpu or auto)")
        if ":" in device:
            try:
                idx = int(device.split(":", 1)[1])
            except ValueError:
                return f"device {device!r} is not a valid CUDA device"
            if idx >= torch.cuda.device_count():
                return f"{device} was requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        return None
    if device == "mps":
        return None if "mps" in have else "Apple MPS was requested but it is not available here (choose cpu or auto)"
    return f"unknown device {device!r} (use auto, cpu, cuda or mps)"


# ----------------------------------------------------------------------------------------------
# launching, stopping, resuming, deleting

def _reap(proc: subprocess.Popen) -> None:
    """Collect the exit status in the background, so a finished trainer leaves no zombie behind."""
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def make_config(options: dict | TrainConfig) -> TrainConfig:
    """A validated TrainConfig from a dict of its fields (unknown keys are an error)."""
    try:
        cfg = options if isinstance(options, TrainConfig) else config_from_dict(options)
        cfg.validate()
    except ValueError as e:
        raise LaunchError(str(e)) from None
    return cfg


def new_run_name(runs_dir, model: str) -> str:
    base = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{model}"
    name, i = base, 1
    while (Path(runs_dir) / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def check_run_name(name: str) -> None:
    """A run name is one plain folder name: no path separators, no leading '.' or '-', no control characters."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise LaunchError(f"run name {name!r} must be a plain folder name")
    if name.startswith("-"):
        raise LaunchError(f"run name {name!r} must not start with '-'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise LaunchError(f"run name {name!r} must not hold control characters")
    if len(name.encode()) > 200:
        raise LaunchError("run name is too long (at most 200 bytes)")


def _spawn(argv: list[str], run: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PYTHONUNBUFFERED"] = "1"
    with open(run / OUTPUT_LOG, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(PACKAGE_ROOT), env=env, start_new_session=True, close_fds=True)
    _reap(proc)
    return proc


def launch(options: dict | TrainConfig, runs_dir, name: str | None = None, python: str | None = None) -> Path:
    """Validate `options` (TrainConfig fields), create the run directory and start the trainer in its own
    process session. Returns the run directory at once; the run's files tell how it goes."""
    cfg = make_config(options)
    msg = check_device(cfg.device)
    if msg:
        raise LaunchError(msg)
    try:
        source_kind(cfg.data)
    except DataError as e:
        raise LaunchError(str(e)) from None
    cfg.data = str(Path(cfg.data).resolve())
    root = Path(runs_dir)
    name = (name or "").strip() or new_run_name(root, cfg.model)
    check_run_name(name)
    run = root / name
    if run.exists():
        raise LaunchError(f"a run named {name!r} already exists in {root}")
    run.mkdir(parents=True)
    now = _now_iso()
    # the whole config travels as a file: every field reaches the trainer, flag or no flag
    save_config(cfg, run / CONFIG_FILE)
    argv = [python or sys.executable, "-m", "fer_core.train", "--config", str((run / CONFIG_FILE).resolve()),
            "--out", str(root.resolve()), f"--name={name}"]  # one token: a name can never be read as an option
    _write_json(run / "status.json", {"state": "queued", "epoch": 0, "epochs": cfg.epochs, "pid": None,
                                      "host": socket.gethostname(), "started": None, "updated": _now_iso(),
                                      "error": None, "best_val_acc": None})
    _write_json(run / LAUNCH_FILE, {"argv": argv, "config": asdict(cfg), "pid": None, "host": socket.gethostname(),
                                    "launched": now, "created": now})
    proc = _spawn(argv, run)
    # the pid goes to launch.json only: status.json belongs to the trainer from now on
    _write_json(run / LAUNCH_FILE, {"argv": argv, "config": asdict(cfg), "pid": proc.pid,
                                    "host": socket.gethostname(), "launched": now, "created": now})
    return run


def stop(run_dir) -> bool:
    """Ask a run to stop: SIGTERM to its process group. The trainer finishes the current step, saves last.pt and
    writes state "stopped". Returns False if there was no live process to signal."""
    run = Path(run_dir)
    r = read_run(run)
    if not r.active:
        return False
    pid = r.status.get("pid") or r.launch.get("pid")
    alive, _ = process_alive(r.status, r.launch)
    if not pid or not alive:
        return False
    atomic_write_bytes(run / STOP_FILE, _now_iso().encode())
    try:
        os.killpg(os.getpgid(int(pid)), signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(int(pid), signal.SIGTERM)
    return True


def resume(run_dir, device: str | None = None, python: str | None = None) -> Path:
    """Continue a stopped, stale or failed run from its last.pt, with its own config."""
    run = Path(run_dir)
    r = read_run(run)
    if r.active:
        raise LaunchError(f"{run.name} is still {r.state}")
    if r.state == "completed":
        raise LaunchError(f"{run.name} already completed; nothing to resume")
    if not r.resumable:
        raise LaunchError(f"{run.name} cannot be resumed (it has no config.json and last.pt yet); launch it again")
    msg = check_device(device or r.hyperparameters.get("device", "auto"))
    if msg:
        raise LaunchError(msg if device else f"{msg}; this run was configured for "
                          f"{r.hyperparameters.get('device')}: resume it with device='cpu'")
    argv = [python or sys.executable, "-m", "fer_core.train", "--resume", str(run.resolve())]
    if device and device != "auto":
        argv += ["--device", device]
    try:
        (run / STOP_FILE).unlink()
    except FileNotFoundError:
        pass
    status = dict(r.status, state="queued", pid=None, host=socket.gethostname(), updated=_now_iso(), error=None)
    _write_json(run / "status.json", status)
    launch_info = dict(r.launch, argv=argv, pid=None, host=socket.gethostname(), launched=_now_iso())
    _write_json(run / LAUNCH_FILE, launch_info)
    with open(run / OUTPUT_LOG, "ab") as f:
        f.write(f"\n--- resumed at {_now_iso()} ---\n".encode())
    proc = _spawn(argv, run)
    _write_json(run / LAUNCH_FILE, dict(launch_info, pid=proc.pid))
    return run


def delete_run(run_dir, runs_dir) -> None:
    """Remove a run directory. Refuses a run that is still active, a folder that is not a run, and anything
    that is not a folder directly inside `runs_dir`."""
    run = Path(run_dir)
    root = Path(runs_dir).resolve()
    if run.is_symlink() or run.resolve().parent != root:
        raise LaunchError(f"{run}: not a run directly inside {root}; refusing to delete it")
    if not is_run_dir(run):
        raise LaunchError(f"{run}: not a run directory")
    r = read_run(run)
    if r.active:
        raise LaunchError(f"{run.name} is {r.state}; stop it before deleting it")
    shutil.rmtree(run)


def wait(run_dir, states=("completed", "stopped", "failed", "stale"), timeout: float = 60.0,
         poll: float = 0.2) -> Run:
    """Block until the run reaches one of `states` (for scripts and tests); TimeoutError otherwise."""
    end = time.time() + timeout
    while True:
        r = read_run(run_dir)
        if r.state in states:
            return r
        if time.time() > end:
            raise TimeoutError(f"{Path(run_dir).name} still {r.state} after {timeout:.0f}s:\n{log_tail(run_dir, 20)}")
        time.sleep(poll)
