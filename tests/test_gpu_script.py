"""scripts/gpu_train.py, the script a lent GPU runs (minutes of device time, no second try), run end to end on a
CPU with a tiny source: calibration, the concurrent runs validated on the holdout slice, the export of the seed
chosen on it, and the run logs. Marked slow (about a minute on 2 cores)."""
import json
import subprocess
import sys
import tarfile

import pytest
import torch

from fer_core.checkpoint import read_checkpoint
from tests.conftest import ROOT, synthetic_faces, write_npz


@pytest.mark.slow
def test_gpu_train_script_end_to_end_on_cpu(tmp_path):
    src = write_npz(tmp_path / "tiny.npz", {"train": synthetic_faces(140, 0), "test": synthetic_faces(70, 1)})
    out, runs = tmp_path / "out", tmp_path / "runs"
    cmd = [sys.executable, "scripts/gpu_train.py", "--data", str(src), "--out", str(out), "--runs", str(runs),
           "--device", "cpu", "--budget", "120", "--deadline", "1", "--best-epochs", "2", "--report-epochs", "2",
           "--ablation-epochs", "1", "--report-batch", "32", "--photometric", "0.5"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ("fer_best_s0", "fer_best_s1", "seed_vgg"):
        hp = json.loads((runs / name / "config.json").read_text())
        assert hp["hyperparameters"]["val_split"] == "holdout"
        assert hp["data"]["val_size"] == 14 and hp["data"]["train_size"] == 126  # a tenth of each class held out
    assert json.loads((runs / "fer_best_s0" / "config.json").read_text())["hyperparameters"]["photometric"] == 0.5
    # the exported fer_best is the seed with the better holdout accuracy
    best = {n: read_checkpoint(runs / n / "best.pt")["best_val_acc"] for n in ("fer_best_s0", "fer_best_s1")}
    shipped = read_checkpoint(out / "fer_best.pt")
    assert shipped["run_name"] == max(best, key=best.get)
    assert all(v.dtype == torch.float16 for v in shipped["state_dict"].values() if v.is_floating_point())
    assert (out / "seed_vgg.pt").exists()
    with tarfile.open(out / "runs.tar.gz") as tf:
        assert "fer_best_s0/metrics.jsonl" in tf.getnames()
    assert "skipped (time)" in r.stdout  # --deadline 1: no benchmark started after it
