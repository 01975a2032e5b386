"""Training runs on disk, for the dashboard and scripts (no Streamlit here).

A run is a directory under a runs folder; its files (fer_core.runfiles) are the single source of truth, so a run
survives a page refresh and a dashboard restart. This module controls the trainer processes; what the files say
about a run (the Run view, its effective state) is fer_core.runstate, its time left fer_core.durations, the
devices fer_core.devices.

`launch()` starts `python -m fer_core.train ...` as a separate process in a new session; `stop()` sends SIGTERM
to its process group (the trainer saves last.pt and writes state "stopped"); `resume()` continues from last.pt.
`read_run()` reports the *effective* state: a run whose status says running but whose process is gone (killed,
machine rebooted) is "stale", or "stopped"/"failed" when the reason is known, never "running" forever.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from .config import TrainConfig, config_from_dict
from .data import atomic_write_bytes, resolve_split
from .devices import check_device
from .images import DataError
from .runfiles import (LAUNCH_FILE, OUTPUT_LOG, STATUS_FILE, STOP_FILE, is_run_dir, log_tail, now_iso, run_base_name,
                       run_name_problem, write_json)
from .runstate import Run, process_alive, read_run
from .sources import source_kind

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds fer_core/


class LaunchError(ValueError):
    """A run that cannot be launched (bad option, unavailable device, missing data); the message says why."""


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
    base = run_base_name(model)
    name, i = base, 1
    while (Path(runs_dir) / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def check_run_name(name: str) -> None:
    """A run name is one plain folder name (runfiles.run_name_problem)."""
    problem = run_name_problem(name)
    if problem:
        raise LaunchError(problem)


def _spawn(argv: list[str], run: Path, stdin_text: str | None = None) -> subprocess.Popen:
    """Start the trainer in its own session, its output appended to output.log; `stdin_text` is written to its
    stdin (the config of a launch, `--config -`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PYTHONUNBUFFERED"] = "1"
    with open(run / OUTPUT_LOG, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                                cwd=str(PACKAGE_ROOT), env=env, start_new_session=True, close_fds=True)
    if stdin_text is not None:
        try:  # a few KB: fits the pipe's buffer, so this never waits for the trainer
            proc.stdin.write(stdin_text.encode())
            proc.stdin.close()
        except BrokenPipeError:  # the trainer died at once: its output.log and state say why
            pass
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
        resolve_split(cfg.data, cfg.val_split)  # e.g. private_test in a source without one: said before launch
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
    now = now_iso()
    # the whole config travels on the trainer's stdin, so every field reaches it, flag or no flag, and the only
    # copy on disk is the config.json the trainer writes
    argv = [python or sys.executable, "-m", "fer_core.train", "--config", "-",
            "--out", str(root.resolve()), f"--name={name}"]  # one token: a name can never be read as an option
    write_json(run / STATUS_FILE, {"state": "queued", "epoch": 0, "epochs": cfg.epochs, "pid": None,
                                      "host": socket.gethostname(), "started": None, "updated": now_iso(),
                                      "error": None, "best_val_acc": None})
    record = {"argv": argv, "pid": None, "host": socket.gethostname(), "launched": now, "created": now}
    write_json(run / LAUNCH_FILE, record)
    proc = _spawn(argv, run, json.dumps(asdict(cfg)))
    # the pid goes to launch.json only: status.json belongs to the trainer from now on
    write_json(run / LAUNCH_FILE, dict(record, pid=proc.pid))
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
    atomic_write_bytes(run / STOP_FILE, now_iso().encode())
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
    status = dict(r.status, state="queued", pid=None, host=socket.gethostname(), updated=now_iso(), error=None)
    write_json(run / STATUS_FILE, status)
    launch_info = dict(r.launch, argv=argv, pid=None, host=socket.gethostname(), launched=now_iso())
    write_json(run / LAUNCH_FILE, launch_info)
    with open(run / OUTPUT_LOG, "ab") as f:
        f.write(f"\n--- resumed at {now_iso()} ---\n".encode())
    proc = _spawn(argv, run)
    write_json(run / LAUNCH_FILE, dict(launch_info, pid=proc.pid))
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


def wait(run_dir, states=("completed", "stopped", "failed", "diverged", "stale"), timeout: float = 60.0,
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
