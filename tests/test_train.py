"""Real training runs on the learnable synthetic task: learning, run files, stop + resume, DDP, evaluate."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fer_core.checkpoint import load_model, read_checkpoint
from fer_core.evaluate import evaluate
from fer_core.train import TrainConfig, train
from tests.conftest import LEARNED_ACC, ROOT, SYNTH_POS

PY = sys.executable


def _cfg(data, **kw):
    base = dict(data=str(data), model="mini_cnn", model_args={"width": 8}, epochs=4, batch_size=32, lr=0.01,
                optimizer="adam", augment=True, rotation=5.0, zoom=0.05, normalize="global", device="cpu", seed=1)
    base.update(kw)
    return TrainConfig(**base)


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_and_learning(tiny_checkpoint, synth_npz):
    run = tiny_checkpoint.parent
    for f in ("config.json", "metrics.jsonl", "status.json", "last.pt", "best.pt", "train.log"):
        assert (run / f).exists(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["hyperparameters"]["lr"] == 0.01 and cfg["model_name"] == "mini_cnn" and "torch" in cfg["versions"]
    st = json.loads((run / "status.json").read_text())
    assert st["state"] == "completed" and st["epoch"] == 6
    m = _metrics(run)
    assert [r["epoch"] for r in m] == list(range(1, 7))
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"} <= set(m[0])
    assert m[-1]["train_loss"] < m[0]["train_loss"]
    best = read_checkpoint(tiny_checkpoint)
    assert best["best_val_acc"] == max(r["val_acc"] for r in m) > 0.6  # chance: 0.14
    res = evaluate(tiny_checkpoint, synth_npz, "test")
    assert res["accuracy"] >= LEARNED_ACC and res["n"] == 210
    # flip TTA: the task is not mirror-symmetric (the mirror of square 0 is square 1, of 3 is 4), so averaging
    # a face with its mirror makes those classes a toss-up that float rounding decides (measured: 0.43 or
    # 0.71 accuracy by seed). The classes whose square sits on the middle column are their own mirror: exact.
    tta = evaluate(tiny_checkpoint, synth_npz, "test", tta=True)
    cm = np.array(tta["confusion_matrix"])
    assert tta["n"] == 210 and tta["tta"]
    for k in (k for k, (_, c) in enumerate(SYNTH_POS) if c + 5 == 24):  # classes 2, 5, 6
        assert cm[k, k] == cm[k].sum() == 30, (k, cm[k])


def test_resume_continues_exactly(synth_npz, tmp_path):
    full = train(_cfg(synth_npz), out_dir=str(tmp_path), run_dir="full")
    part = train(_cfg(synth_npz), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=2)
    assert json.loads((part / "status.json").read_text())["state"] == "stopped"
    train(_cfg(synth_npz), run_dir=str(part), resume=True)
    assert json.loads((part / "status.json").read_text())["state"] == "completed"
    a, b = _metrics(full), _metrics(part)
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert [r["val_acc"] for r in a] == [r["val_acc"] for r in b]
    wa, wb = read_checkpoint(full / "last.pt")["state_dict"], read_checkpoint(part / "last.pt")["state_dict"]
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5) for k in wa)


def _cli(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([PY, "-m", "fer_core.train", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_epoch(run, n, proc, timeout=120):
    # status.json's epoch is written after the epoch's last.pt; a metrics line alone comes before it, and a kill
    # between the two leaves last.pt one epoch behind (which resume handles, but this test counts on epoch n)
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = run / "status.json"
        if st.exists() and json.loads(st.read_text()).get("epoch", 0) >= n:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    raise AssertionError("no progress")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stop_or_kill_then_resume(synth_npz, tmp_path, sig):
    args = ["--data", str(synth_npz), "--model", "mini_cnn", "--model-args", '{"width": 8}', "--epochs", "30",
            "--batch-size", "32", "--device", "cpu", "--out", str(tmp_path), "--name", "r"]
    p = _cli(*args)
    run = tmp_path / "r"
    _wait_for_epoch(run, 1, p)
    p.send_signal(sig)
    p.wait(60)
    st = json.loads((run / "status.json").read_text())
    if sig == signal.SIGTERM:
        assert p.returncode == 0 and st["state"] == "stopped"
    else:
        assert st["state"] == "running"  # what a killed run leaves; the dashboard shows it as stale
    done = read_checkpoint(run / "last.pt")["epoch"]
    assert done >= 1
    # resume with only a few epochs left: edit nothing, just continue and finish
    cfg = json.loads((run / "config.json").read_text())
    cfg["hyperparameters"]["epochs"] = done + 1  # keep the test short: one more epoch
    (run / "config.json").write_text(json.dumps(cfg))
    r = _cli("--resume", str(run))
    out, err = r.communicate(timeout=120)
    assert r.returncode == 0, err
    m = _metrics(run)
    assert [x["epoch"] for x in m][-1] == done + 1
    assert json.loads((run / "status.json").read_text())["state"] == "completed"


def test_ddp_two_processes_gloo(synth_npz, tmp_path):
    torchrun = [PY, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "29517"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    r = subprocess.run(torchrun + ["-m", "fer_core.train", "--data", str(synth_npz), "--model", "mini_cnn",
                                   "--model-args", '{"width": 8}', "--epochs", "3", "--batch-size", "16",
                                   "--lr", "0.01", "--normalize", "global", "--device", "cpu",
                                   "--out", str(tmp_path), "--name", "ddp"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "ddp"
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    m = _metrics(run)
    assert len(m) == 3 and m[-1]["val_acc"] > 0.3  # learns; chance is 0.14
    model, prep = load_model(run / "best.pt")  # rank 0 saved the unwrapped model
    assert model.model_name == "mini_cnn"
