"""Runs never overwrite each other: exclusive run directories and a lock that --resume and a second launch respect."""
import json
import signal
import subprocess
import sys
import time

import pytest

from fer_core import runfiles
from fer_core.runfiles import lock_run_dir, release_run_lock
from fer_core.train import TrainConfig, train
from tests.conftest import ROOT
from tests.test_cli_errors import digest, one_line_error, run

QUICK = ("--model", "mini_cnn", "--model-args", '{"width": 4}', "--epochs", "1", "--batch-size", "50",
         "--max-train-samples", "100", "--no-augment", "--device", "cpu")


def _cfg(data, epochs=1):
    return TrainConfig(data=str(data), model="mini_cnn", model_args={"width": 4}, epochs=epochs, batch_size=50,
                       max_train_samples=100, augment=False, device="cpu")


def test_default_names_in_the_same_second_get_their_own_folders(synth_npz, tmp_path, monkeypatch):
    from datetime import datetime

    class Frozen(datetime):  # both launches see the same second
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(runfiles, "datetime", Frozen)
    a = train(_cfg(synth_npz), out_dir=str(tmp_path))
    b = train(_cfg(synth_npz), out_dir=str(tmp_path))
    assert a != b and a.name == "20260102-030405-mini_cnn" and b.name == "20260102-030405-mini_cnn-2"
    for r in (a, b):
        assert len((r / "metrics.jsonl").read_text().splitlines()) == 1  # not interleaved
        assert json.loads((r / "status.json").read_text())["state"] == "completed"


def test_two_concurrent_cli_launches(synth_npz, tmp_path):
    env_run = [sys.executable, "-m", "fer_core.train", "--data", str(synth_npz), *QUICK, "--out", str(tmp_path)]
    procs = [subprocess.Popen(env_run, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(runs) == 2
    for r in runs:
        assert len((r / "metrics.jsonl").read_text().splitlines()) == 1


def test_same_name_twice_is_refused_and_changes_nothing(synth_npz, tmp_path):
    r = run("fer_core.train", "--data", synth_npz, *QUICK, "--out", tmp_path, "--name", "X")
    assert r.returncode == 0, r.stderr
    before = {p.name: digest(p) for p in (tmp_path / "X").iterdir() if p.name != "train.lock"}
    one_line_error(run("fer_core.train", "--data", synth_npz, *QUICK, "--out", tmp_path, "--name", "X"),
                   "'X' already exists", "--resume")
    assert {p.name: digest(p) for p in (tmp_path / "X").iterdir() if p.name != "train.lock"} == before


def test_same_name_launched_concurrently_only_one_trains(synth_npz, tmp_path):
    argv = [sys.executable, "-m", "fer_core.train", "--data", str(synth_npz), *QUICK, "--out", str(tmp_path),
            "--name", "same"]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert sorted(p.returncode for p in procs) == [0, 2], outs
    assert len(((tmp_path / "same") / "metrics.jsonl").read_text().splitlines()) == 1


def _wait_for(pred, timeout=90):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise TimeoutError


def test_resume_of_a_live_run_is_refused(synth_npz, tmp_path):
    live = tmp_path / "live"
    argv = [sys.executable, "-m", "fer_core.train", "--data", str(synth_npz), *QUICK, "--out", str(tmp_path),
            "--name", "live"]
    argv[argv.index("--epochs") + 1] = "100000"
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (live / "metrics.jsonl").exists())  # training, with last.pt written
        r = run("fer_core.train", "--resume", live)
        one_line_error(r, "another trainer", f"pid {proc.pid}")
        # a second launch under the same name is refused too
        one_line_error(run("fer_core.train", "--data", synth_npz, *QUICK, "--out", tmp_path, "--name", "live"),
                       "already exists")
        assert proc.poll() is None
        assert json.loads((live / "status.json").read_text())["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert json.loads((live / "status.json").read_text())["state"] == "stopped"
    # the lock ended with its process
    lock = lock_run_dir(live)  # free again
    release_run_lock(lock)


def test_stale_lock_file_is_ignored(synth_npz, tmp_path):
    part = train(_cfg(synth_npz, epochs=2), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=1)
    (part / "train.lock").write_text("pid 999999 on somewhere\n")  # left by a killed trainer: no flock held
    r = run("fer_core.train", "--resume", part)
    assert r.returncode == 0, r.stderr
    assert json.loads((part / "status.json").read_text())["state"] == "completed"


def test_lock_is_held_while_training(synth_npz, tmp_path):
    seen = []

    def probe(_m):
        with pytest.raises(ValueError, match="another trainer"):
            lock_run_dir(tmp_path / "held")
        seen.append(True)

    train(_cfg(synth_npz), out_dir=str(tmp_path), run_dir="held", callback=probe)
    assert seen == [True]
    release_run_lock(lock_run_dir(tmp_path / "held"))  # released at the end
