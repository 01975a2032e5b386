"""What a run directory says about its run: the Run view the dashboard shows and its effective state (a run
whose process is gone is never "running" forever). Its time left is worked out in fer_core.durations."""
from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .durations import epoch_costs, eta_from_progress, eta_seconds
from .runfiles import (BEST_FILE, LAST_FILE, LAUNCH_FILE, METRICS_FILE, OUTPUT_LOG, RUN_CONFIG, STOP_FILE,
                       is_run_dir, parse_time, read_config_checked, read_json, read_launch, read_metrics_checked,
                       read_status, tail)

# "diverged": the trainer stopped a run whose loss became NaN or infinite (last.pt/best.pt keep finite weights)
STATES = ("queued", "running", "completed", "stopped", "failed", "diverged", "stale")
ACTIVE_STATES = ("queued", "running")


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
    problems: list = field(default_factory=list)  # what of its files could not be read (typedjson.typed)
    skipped_metrics: int = 0  # metrics.jsonl lines skipped: not JSON, or a wrong-typed value

    @property
    def unreadable(self) -> str:
        """One line on what of this run's files could not be read ('' when all of it could): its wrong-typed
        fields are left out of what the accessors give."""
        parts = list(self.problems)
        if self.skipped_metrics:
            parts.append(f"{METRICS_FILE}: {self.skipped_metrics} line{'s' * (self.skipped_metrics != 1)} "
                         "skipped (not JSON or wrong-typed values)")
        return " ".join("; ".join(parts).split())

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def hyperparameters(self) -> dict:
        return self.config.get("hyperparameters") or {}

    @property
    def epoch(self) -> int:
        return int(self.metrics[-1]["epoch"]) if self.metrics else int(self.status.get("epoch") or 0)

    @property
    def epochs(self) -> int:
        return int(self.status.get("epochs") or self.hyperparameters.get("epochs") or 0)

    @property
    def best_val_acc(self) -> float | None:
        accs = [m["val_acc"] for m in self.metrics if m.get("val_acc") is not None and math.isfinite(m["val_acc"])]
        return max(accs) if accs else None

    @property
    def duration(self) -> float | None:
        """Seconds the trainer has spent on this run over all its sessions (status.json's "elapsed", which a
        resume carries on), plus, while it runs, the time since that was written. Never goes backwards."""
        spent = self.status.get("elapsed")
        if spent is None:  # a run from before "elapsed" was recorded: finished epochs only
            if not self.metrics:
                return 0.0 if self.active else None
            spent = self.metrics[-1].get("elapsed") or 0.0
        spent = float(spent)
        if self.state == "running":
            since = self.status.get("updated_ts") or parse_time(self.status.get("updated"))
            if since is not None:
                spent += max(0.0, time.time() - float(since))
        return spent

    @property
    def progress(self) -> dict:
        """The epoch in progress: {epoch, step, steps, step_seconds, images_per_s} ({} when none is)."""
        p = self.status.get("progress")
        whole = isinstance(p, dict) and all(p.get(k) is not None for k in ("epoch", "step", "steps"))
        return p if self.state == "running" and whole and p.get("steps") else {}

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
        p, costs = self.progress, epoch_costs(self.hyperparameters, self.epochs)
        if p and p.get("step_seconds"):
            return eta_from_progress(p, self.metrics, self.epochs,
                                     self.status.get("updated_ts") or parse_time(self.status.get("updated")), costs)
        return eta_seconds(self.metrics, self.epochs, costs=costs)

    def summary(self) -> str:
        """State and finished epochs, as the run picker shows them (the runs table and the live panel show the
        same two; the steps of the epoch in progress go in the live panel only, which polls)."""
        return f"{self.state} {self.epoch}/{self.epochs}"

    @property
    def error(self) -> str | None:
        return self.status.get("error") or (self.reason if self.state in ("failed", "diverged") else None)

    @property
    def launch(self) -> dict:
        return read_launch(self.path)[0]

    @property
    def best_checkpoint(self) -> Path | None:
        p = self.path / BEST_FILE
        return p if p.exists() else None

    @property
    def resumable(self) -> bool:
        return self.state in ("stopped", "stale", "failed") and (self.path / LAST_FILE).exists() and (
            self.path / RUN_CONFIG).exists()


# ----------------------------------------------------------------------------------------------
# effective state


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
        launched = parse_time(launch.get("launched"))
        if launched is not None and time.time() - launched < 30:
            return True, ""  # being spawned right now
        return False, "no process id recorded"
    if pid_alive(pid) and _is_trainer(pid):
        return True, ""
    return False, f"process {pid} is no longer running"


def effective_state(run_dir) -> tuple[str, str, dict]:
    """(state, reason, status): status.json's state, corrected when the recorded process is gone."""
    run = Path(run_dir)
    return _effective_state(run, read_status(run)[0], read_launch(run)[0])


def _effective_state(run: Path, status: dict, launch: dict) -> tuple[str, str, dict]:
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
    (status, p_status), (launch, p_launch) = read_status(run), read_launch(run)
    state, reason, status = _effective_state(run, status, launch)
    if not status and state == "stale":
        reason = reason or "no status.json"
    config, p_config = read_config_checked(run)
    metrics, skipped = read_metrics_checked(run)
    return Run(run.name, run, state, status, config, metrics, reason, p_status + p_launch + p_config, skipped)


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
    launch = read_json(run / LAUNCH_FILE)
    t = parse_time(launch.get("created") or launch.get("launched")) or parse_time(
        read_json(run / RUN_CONFIG).get("created"))
    if t is None:
        try:
            t = run.stat().st_mtime
        except OSError:
            t = 0.0
    return t


def active_runs(runs_dir) -> list[Run]:
    return [r for r in list_runs(runs_dir) if r.active]
