"""fer_core.runs: launching real training processes, their live state, stop/resume, stale detection, deletion."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields, replace

import pytest
import torch

from tests.conftest import non_default_config, synthetic_faces, write_npz
from fer_core import devices, durations, runfiles, runs, runstate
from fer_core.config import TrainConfig, save_config
from fer_core.recipes import RECIPES, recipe_config
from fer_core.train import build_parser, config_from_args

TINY = dict(model="mini_cnn", model_args={"width": 8}, epochs=2, batch_size=32, max_train_samples=140,
            augment=False, normalize="global", device="cpu", seed=0)


def tiny(data, **kw):
    return {**TINY, "data": str(data), **kw}


def wait_for(pred, timeout=60.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cli_argv(values: dict) -> list[str]:
    """`values` as command-line flags, written out by hand: the known answer for the flags build_parser makes."""
    argv = []
    for k, v in values.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + flag[2:])
        else:
            argv += [flag, json.dumps(v) if isinstance(v, dict) else str(v)]
    return argv


def test_every_field_has_a_flag(synth_npz):
    values = non_default_config(synth_npz)
    assert config_from_args(build_parser().parse_args(cli_argv(values))) == TrainConfig(**values)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_a_config_file_and_the_flags_after_it(tmp_path, recipe):
    # model_args as a dict: the old flag writer sent {'width': 8} as Python repr, which the CLI refused
    cfg = recipe_config(recipe, data="somewhere.npz", model_args={"width": 8} if recipe == "quick" else {})
    save_config(cfg, tmp_path / "c.json")
    assert config_from_args(build_parser().parse_args(["--config", str(tmp_path / "c.json")])) == cfg
    argv = ["--config", str(tmp_path / "c.json"), "--epochs", "5", "--no-amp", "--model-args", '{"width": 4}']
    assert config_from_args(build_parser().parse_args(argv)) == replace(cfg, epochs=5, amp=False,
                                                                       model_args={"width": 4})


def test_every_field_travels_from_launch_to_the_run_config(tmp_path, synth_npz):
    requested = non_default_config(synth_npz)
    run = runs.launch(requested, tmp_path, name="all")
    r = runs.wait(run, timeout=120)
    assert r.state == "completed", runfiles.log_tail(run)
    hp = json.loads((run / "config.json").read_text())["hyperparameters"]
    for f in fields(TrainConfig):
        assert hp[f.name] == requested[f.name], f.name
    assert "--config" in json.loads((run / runfiles.LAUNCH_FILE).read_text())["argv"]


@pytest.mark.parametrize("bad,needle", [({"val_split": "nope"}, "--val-split must be one of"),
                                        ({"model_args": {"width": -3}}, "--model-args"),
                                        ({"model_args": {"nope": 1}}, "'nope'"),
                                        ({"model_args": [8]}, "--model-args must be a JSON object")])
def test_bad_val_split_and_model_args_are_one_line_errors_before_a_run(tmp_path, synth_npz, bad, needle):
    with pytest.raises(ValueError, match=needle) as e:
        TrainConfig(**tiny(synth_npz, **bad)).validate()
    assert "\n" not in str(e.value)
    with pytest.raises(runs.LaunchError, match=needle):
        runs.launch(tiny(synth_npz, **bad), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_options_and_missing_gpu_are_refused_without_a_run(tmp_path, synth_npz):
    with pytest.raises(runs.LaunchError, match="epochs"):
        runs.launch(tiny(synth_npz, epochs=0), tmp_path)
    with pytest.raises(runs.LaunchError, match="unknown training option"):
        runs.launch(tiny(synth_npz, epoch=3), tmp_path)
    with pytest.raises(runs.LaunchError, match="no such file"):
        runs.launch(tiny(tmp_path / "missing.npz"), tmp_path)
    with pytest.raises(runs.LaunchError, match="no PrivateTest"):  # synth_npz: train and test only
        runs.launch(tiny(synth_npz, val_split="private_test"), tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(runs.LaunchError, match="CUDA GPU was requested"):
            runs.launch(tiny(synth_npz, device="cuda"), tmp_path)
        assert devices.check_device("cuda:0") is not None
    assert devices.check_device("cpu") is None and devices.check_device("auto") is None
    assert "cpu" in devices.available_devices()
    assert list(tmp_path.iterdir()) == []  # nothing was created, nothing was started


def test_launch_runs_in_its_own_process_and_completes(tmp_path, synth_npz):
    run = runs.launch(tiny(synth_npz), tmp_path, name="quick")
    assert run == tmp_path / "quick"
    first = runstate.read_run(run)
    assert first.state in ("queued", "running") and first.active
    launch = json.loads((run / runfiles.LAUNCH_FILE).read_text())
    assert launch["pid"] != os.getpid() and os.getpgid(launch["pid"]) == launch["pid"]  # its own session
    r = runs.wait(run, timeout=120)
    assert r.state == "completed", runfiles.log_tail(run)
    assert [m["epoch"] for m in r.metrics] == [1, 2]
    assert r.epoch == r.epochs == 2 and r.eta is None and r.duration > 0
    assert r.best_checkpoint == run / "best.pt" and r.best_val_acc == max(m["val_acc"] for m in r.metrics)
    assert r.hyperparameters["model_args"] == {"width": 8} and r.config["data"]["train_size"] == 140
    assert r.status["pid"] == launch["pid"]
    assert "completed 2 epochs" in runfiles.log_tail(run)
    wait_for(lambda: not runstate.pid_alive(launch["pid"]), 10, "the trainer to be reaped")
    assert [x.name for x in runstate.list_runs(tmp_path)] == ["quick"]
    with pytest.raises(runs.LaunchError, match="already exists"):
        runs.launch(tiny(synth_npz), tmp_path, name="quick")
    with pytest.raises(runs.LaunchError, match="already completed"):
        runs.resume(run)


def test_stop_saves_and_resume_continues(tmp_path, synth_npz):
    run = runs.launch(tiny(synth_npz, epochs=40), tmp_path, name="long")
    wait_for(lambda: runstate.read_run(run).epoch >= 1, 90, "the first epoch")
    assert runs.stop(run)
    r = runs.wait(run, timeout=60)
    assert r.state == "stopped" and 1 <= r.epoch < 40 and r.resumable
    assert not runs.stop(run)  # nothing left to stop
    stopped_at = r.epoch
    runs.resume(run)
    assert runstate.read_run(run).active
    wait_for(lambda: runstate.read_run(run).epoch > stopped_at, 90, "an epoch after resuming")
    runs.stop(run)
    r = runs.wait(run, timeout=60)
    assert r.state == "stopped"
    epochs = [m["epoch"] for m in r.metrics]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) > stopped_at  # continued, not restarted
    assert "resumed from epoch" in runfiles.log_tail(run, 200)


def test_stop_right_after_launch_is_stopped_not_stale(tmp_path, synth_npz):
    run = runs.launch(tiny(synth_npz, epochs=40), tmp_path)
    time.sleep(0.5)  # the trainer is still importing torch: the default SIGTERM action ends it
    assert runs.stop(run)
    r = runs.wait(run, timeout=60)
    assert r.state == "stopped"


def test_two_runs_at_once_and_a_killed_run_turns_stale(tmp_path, synth_npz):
    a = runs.launch(tiny(synth_npz, epochs=40), tmp_path, name="a")
    b = runs.launch(tiny(synth_npz, epochs=40), tmp_path, name="b")
    wait_for(lambda: [r.state for r in runstate.list_runs(tmp_path)] == ["running", "running"], 60, "both runs running")
    runs.stop(a)
    assert runs.wait(a, timeout=60).state == "stopped"
    # b dies without a word (kill -9, out of memory): it must not show "running" forever
    pid = runstate.read_run(b).status["pid"]
    os.killpg(pid, signal.SIGKILL)
    r = runs.wait(b, timeout=30)
    assert r.state == "stale" and f"process {pid} is no longer running" in r.reason
    assert r.status["state"] == "running"  # what the dead trainer left in status.json


def test_failure_in_the_trainer_is_reported(tmp_path):
    data = write_npz(tmp_path / "test_only.npz", {"test": synthetic_faces(20, 0)})
    run = runs.launch(tiny(data), tmp_path / "runs")
    r = runs.wait(run, timeout=60)
    assert r.state == "failed"
    assert "split 'train' is missing" in r.error


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _fake_run(root, name, **status):
    run = root / name
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "running", "epoch": 3, "epochs": 10, **status}))
    return run


def test_dead_or_foreign_process_is_stale_not_running(tmp_path):
    import socket

    host = socket.gethostname()
    dead = _fake_run(tmp_path, "dead", pid=_dead_pid(), host=host)
    r = runstate.read_run(dead)
    assert r.state == "stale" and "no longer running" in r.reason and not r.active
    # a live pid that is not a trainer (pid reused by another program) is not taken for the run
    assert runstate.read_run(_fake_run(tmp_path, "reused", pid=os.getpid(), host=host)).state == "stale"
    other = runstate.read_run(_fake_run(tmp_path, "elsewhere", pid=os.getpid(), host=host + "-other"))
    assert other.state == "stale" and "host" in other.reason
    assert runstate.read_run(_fake_run(tmp_path, "done", state="completed", pid=_dead_pid())).state == "completed"
    assert runs.stop(dead) is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_resuming_a_gpu_run_on_a_machine_without_gpu_is_refused_clearly(tmp_path):
    run = _fake_run(tmp_path, "gpu-run", state="stopped")
    (run / "config.json").write_text(json.dumps({"hyperparameters": {**TINY, "data": "x.npz", "device": "cuda"}}))
    (run / "last.pt").write_bytes(b"")
    assert runstate.read_run(run).resumable
    with pytest.raises(runs.LaunchError, match="resume it with device='cpu'"):
        runs.resume(run)
    assert runstate.read_run(run).state == "stopped"  # untouched


def test_zombie_is_not_alive():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for(lambda: not runstate.pid_alive(p.pid), 20, "the child to exit")  # exited but not yet reaped
    finally:
        p.wait()


def test_delete_run(tmp_path):
    with pytest.raises(runs.LaunchError, match="not a run directory"):
        runs.delete_run(tmp_path / "empty", tmp_path)
    done = _fake_run(tmp_path, "done", state="completed")
    runs.delete_run(done, tmp_path)
    assert not done.exists()
    spawning = tmp_path / "spawning"  # launched a moment ago, pid not recorded yet: counts as active
    spawning.mkdir()
    (spawning / runfiles.LAUNCH_FILE).write_text(json.dumps({"launched": runfiles.now_iso(), "pid": None}))
    (spawning / "status.json").write_text(json.dumps({"state": "queued"}))
    with pytest.raises(runs.LaunchError, match="stop it"):
        runs.delete_run(spawning, tmp_path)
    assert spawning.exists()


def test_delete_run_only_inside_the_runs_folder(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    outside = _fake_run(tmp_path / "elsewhere", "precious", state="completed")  # any folder with run files
    (outside / "config.json").write_text("{}")
    for target in (outside, root / ".." / "elsewhere" / "precious", tmp_path / "elsewhere"):
        with pytest.raises(runs.LaunchError, match="refusing"):
            runs.delete_run(target, root)
    (root / "link").symlink_to(outside)  # a link inside the runs folder to a run outside it
    with pytest.raises(runs.LaunchError, match="refusing"):
        runs.delete_run(root / "link", root)
    assert (outside / "config.json").exists()


@pytest.mark.parametrize("name,needle", [("--epochs", "start with '-'"), ("-x", "start with '-'"),
                                         ("a\x00b", "control characters"), ("a\nb", "control characters"),
                                         ("../up", "plain folder name"), (".hidden", "plain folder name")])
def test_bad_run_names_are_refused_before_anything_starts(tmp_path, synth_npz, name, needle):
    with pytest.raises(runs.LaunchError, match=needle):
        runs.launch(tiny(synth_npz), tmp_path, name=name)
    assert list(tmp_path.iterdir()) == []


def test_run_name_travels_as_one_argument(tmp_path, synth_npz):
    run = runs.launch(tiny(synth_npz, epochs=1), tmp_path, name="my run")
    argv = json.loads((run / runfiles.LAUNCH_FILE).read_text())["argv"]
    assert "--name=my run" in argv and "--name" not in argv
    assert runs.wait(run, timeout=120).state == "completed"


def test_argparse_error_of_the_trainer_is_a_failure(tmp_path):
    run = _fake_run(tmp_path, "badargs", state="queued", pid=_dead_pid(), host=__import__("socket").gethostname())
    (run / runfiles.OUTPUT_LOG).write_text("usage: python -m fer_core.train [-h] [--data DATA]\n"
                                           "python -m fer_core.train: error: argument --epochs: expected one argument\n")
    r = runstate.read_run(run)
    assert r.state == "failed" and "expected one argument" in r.reason


def test_metrics_reader_skips_broken_lines_and_keeps_the_latest_of_a_repeated_epoch(tmp_path):
    lines = [{"epoch": 1, "val_acc": 0.1}, {"epoch": 2, "val_acc": 0.2}, {"epoch": 2, "val_acc": 0.25},
             {"epoch": 3, "val_acc": 0.3}]
    text = "\n".join(json.dumps(m) for m in lines[:2]) + "\n{not json\n" + "\n".join(
        json.dumps(m) for m in lines[2:]) + "\n"
    (tmp_path / "metrics.jsonl").write_text(text)
    assert runfiles.read_metrics(tmp_path) == [lines[0], lines[2], lines[3]]
    assert runfiles.read_metrics(tmp_path / "nothing") == []


def test_eta_and_durations():
    ms = [{"epoch": 1, "seconds": 30.0}, {"epoch": 2, "seconds": 10.0}, {"epoch": 3, "seconds": 12.0}]
    assert durations.eta_seconds(ms, 10) == pytest.approx(7 * 11.0)  # first epoch (start-up) left out
    assert durations.eta_seconds(ms[:1], 10) == pytest.approx(9 * 30.0)
    assert durations.eta_seconds([], 10) is None and durations.eta_seconds(ms, 3) == 0
    assert durations.format_seconds(None) == "-" and durations.format_seconds(75) == "1m 15s"
    assert [durations.format_seconds(s) for s in (0.04, 0.5, 0.94, 0.95, 6.2, 59.4)] == ["0.0s", "0.5s", "0.9s", "1s",
                                                                                       "6s", "59s"]
    assert durations.format_seconds(2 * 3600 + 5 * 60) == "2h 05m" and durations.format_seconds(3 * 86400) == "3d 00h"


def test_progress_within_an_epoch_and_elapsed_that_survives_resume(tmp_path, synth_npz, monkeypatch):
    # 700 faces in batches of 8: epochs of 88 steps. An epoch lasts 0.7 s on some CPUs (AVX2 kernels), under the
    # default 1 s between in-epoch updates, so the launched trainer reports every 0.05 s here.
    monkeypatch.setenv("FER_PROGRESS_EVERY", "0.05")
    run = runs.launch(tiny(synth_npz, epochs=40, batch_size=8, max_train_samples=None), tmp_path, name="long")
    r = wait_for(lambda: (lambda x: x if x.progress and x.progress["step"] < x.progress["steps"] else None)(
        runstate.read_run(run)), 120, "progress inside an epoch")
    p = r.progress
    assert r.state == "running" and p["steps"] == 88 and p["epoch"] == r.epoch + 1
    assert p["images_per_s"] > 0 and r.images_per_s == p["images_per_s"] and r.device == "cpu"
    eta1 = r.eta
    time.sleep(1.2)
    eta2 = runstate.read_run(run).eta
    assert eta1 is not None and eta2 is not None and eta1 != eta2  # moves within the epoch, not frozen
    wait_for(lambda: runstate.read_run(run).epoch >= 1, 120, "the first epoch")
    seen = []
    for _ in range(3):
        seen.append(runstate.read_run(run).duration)
        time.sleep(0.3)
    assert runs.stop(run)
    stopped = runs.wait(run, timeout=60)
    assert stopped.progress == {} and "progress" not in stopped.status
    seen.append(stopped.duration)
    assert seen == sorted(seen) and stopped.duration == stopped.status["elapsed"]
    m = stopped.metrics[-1]
    assert m["images_per_s"] > 0 and 0 < m["train_seconds"] <= m["seconds"]
    runs.resume(run)
    queued = runstate.read_run(run)
    assert queued.duration >= stopped.duration  # the resumed run starts from the time already spent
    for _ in range(4):
        d = runstate.read_run(run).duration
        assert d >= seen[-1], (d, seen)  # never backwards (the issue saw 3m21s -> 2m28s)
        seen.append(d)
        time.sleep(0.5)
    runs.stop(run)
    final = runs.wait(run, timeout=60)
    assert final.status["elapsed"] >= stopped.status["elapsed"]
    # the quick check's duration is estimated from this machine's measured throughput of the same model
    est = durations.estimate_from_past_runs(runstate.list_runs(tmp_path), "mini_cnn", {"width": 8}, 700, 3)
    assert est is not None and est[1] == "long" and est[0] > 0 and est[2] > 0
    assert durations.estimate_from_past_runs(runstate.list_runs(tmp_path), "vgg_bn", {}, 700, 3) is None


def test_eta_from_progress_counts_steps_and_evaluations():
    ms = [{"epoch": 1, "seconds": 12.0, "train_seconds": 10.0}]
    p = {"epoch": 2, "step": 5, "steps": 10, "step_seconds": 1.0}
    # 5 steps left in epoch 2 + 10 in epoch 3, and 2 evaluations of 2 s each
    assert durations.eta_from_progress(p, ms, 3, None) == pytest.approx(15 + 4)
    later = durations.eta_from_progress(p, ms, 3, time.time() - 3)
    assert later == pytest.approx(16, abs=0.5)  # less the time since the progress was written
    assert durations.eta_from_progress(p, [], 3, None) == pytest.approx(15)  # no evaluation measured yet


def test_eta_counts_the_dearer_epochs_after_low_resolution_ones():
    from fer_core.durations import epoch_costs

    costs = epoch_costs({"low_res": 24, "low_res_epochs": 2}, 4)  # sides 24, 36, 48, 48
    assert costs == pytest.approx([0.25, 0.5625, 1.0, 1.0])
    assert epoch_costs({}, 4) is None and epoch_costs({"low_res": 0}, 4) is None
    p = {"epoch": 1, "step": 5, "steps": 10, "step_seconds": 1.0}  # epoch 1 at 24 px: 1 s per step
    # 5 steps of epoch 1, then epoch 2 at 2.25x and epochs 3-4 at 4x the seconds per step
    assert durations.eta_from_progress(p, [], 4, None, costs) == pytest.approx(5 + 10 * 2.25 + 2 * 10 * 4)
    ms = [{"epoch": 1, "seconds": 5.0}, {"epoch": 2, "seconds": 11.25}]  # 20 s per 48-pixel epoch
    assert durations.eta_seconds(ms, 4, costs=costs) == pytest.approx(2 * 20.0)


def test_a_launched_run_stores_its_config_once(tmp_path, synth_npz):
    """The config reaches the trainer on its stdin; the only copy in the run folder is the trainer's config.json
    (with its format_version); launch.json keeps the command line, pid, host and times."""
    run = runs.launch(tiny(synth_npz, epochs=1, lr=0.0123), tmp_path, name="once")
    assert runs.wait(run, timeout=120).state == "completed", runfiles.log_tail(run)
    launch = json.loads((run / runfiles.LAUNCH_FILE).read_text())
    assert set(launch) == {"argv", "pid", "host", "launched", "created"}
    assert launch["argv"][launch["argv"].index("--config") + 1] == "-"
    files = sorted(p.name for p in run.iterdir())
    assert [f for f in files if f.endswith(".json")] == ["config.json", "launch.json", "status.json"]
    conf = json.loads((run / "config.json").read_text())
    assert conf["format_version"] == 1 and conf["hyperparameters"]["lr"] == 0.0123
    assert "0.0123" not in (run / runfiles.LAUNCH_FILE).read_text()


def test_a_newer_config_format_is_a_problem_not_a_guess(tmp_path):
    from fer_core.runfiles import read_config_checked

    run = _fake_run(tmp_path, "future", state="completed")
    (run / "config.json").write_text(json.dumps({"format_version": 2, "hyperparameters": {"model": "mini_cnn"}}))
    cfg, problems = read_config_checked(run)
    assert problems == ["config.json has format_version 2; this fer_core reads 1"]
    (run / "config.json").write_text(json.dumps({"hyperparameters": {"model": "mini_cnn"}}))  # before versions
    assert read_config_checked(run)[1] == []
