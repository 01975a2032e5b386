"""Every bad input of the train/evaluate CLIs: a one-line error naming the file, exit 2, nothing damaged."""
import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT


def run(module, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_evaluate_json(tiny_checkpoint, synth_npz):
    r = run("fer_core.evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_npz, "--split", "test", "--tta", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "n"} <= set(m)
    assert m["n"] == 210 and sum(map(sum, m["confusion_matrix"])) == 210
    assert set(m["per_class"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert m["accuracy"] > 0.6
    text = run("fer_core.evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_npz)
    assert "confusion matrix" in text.stdout and "macro F1" in text.stdout


def test_bad_data_paths(tmp_path, tiny_checkpoint):
    out = tmp_path / "runs"
    one_line_error(run("fer_core.train", "--data", tmp_path / "missing.csv", "--out", out), "missing.csv", "no such file")
    odd = tmp_path / "faces.parquet"
    odd.write_bytes(b"PAR1")
    one_line_error(run("fer_core.train", "--data", odd, "--out", out), "faces.parquet", "unsupported data format")
    bad = tmp_path / "fer2013.csv"
    bad.write_text("emotion,pixels,Usage\n3," + " ".join(["0"] * 2304) + ",Training\n3,1 2 3,Training\n")
    one_line_error(run("fer_core.train", "--data", bad, "--out", out), "fer2013.csv", "line 3", "3 pixel values")
    assert not out.exists()  # bad data is refused before a run directory is made
    lab = tmp_path / "labels.csv"
    lab.write_text("emotion,pixels,Usage\n8," + " ".join(["0"] * 2304) + ",Training\n")
    one_line_error(run("fer_core.evaluate", "--checkpoint", tiny_checkpoint, "--data", lab, "--split", "train"),
                   "labels.csv", "line 2", "label '8'")
    one_line_error(run("fer_core.evaluate", "--checkpoint", tiny_checkpoint, "--data", lab, "--split", "val"),
                   "labels.csv", "split 'val'")


def test_bad_checkpoints(tmp_path, tiny_checkpoint, synth_npz):
    good = tiny_checkpoint.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    other = tmp_path / "v99.pt"
    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["format_version"] = 99
    torch.save(ck, other)
    for p, needle in ((trunc, "corrupt"), (garbage, "corrupt"), (other, "format version 99"),
                      (tmp_path / "none.pt", "not found")):
        before = digest(p) if p.exists() else None
        one_line_error(run("fer_core.evaluate", "--checkpoint", p, "--data", synth_npz), p.name, needle)
        assert (digest(p) if p.exists() else None) == before


def test_unsafe_pickle_is_refused(tmp_path, synth_npz):
    import pickle

    evil = tmp_path / "evil.pt"

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(evil, "wb") as f:
        pickle.dump({"format_version": 1, "x": Boom()}, f)
    one_line_error(run("fer_core.evaluate", "--checkpoint", evil, "--data", synth_npz), "evil.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("flag,value,needle", [("--epochs", 0, "--epochs"), ("--batch-size", -4, "--batch-size"),
                                               ("--lr", 0, "--lr"), ("--lr", -0.1, "--lr"),
                                               ("--max-train-samples", 0, "--max-train-samples")])
def test_bad_hyperparameters(synth_npz, tmp_path, flag, value, needle):
    one_line_error(run("fer_core.train", "--data", synth_npz, flag, value, "--out", tmp_path), needle)
    assert not any(tmp_path.iterdir())  # no run directory left behind


def test_bad_resume_targets(tmp_path, tiny_checkpoint):
    one_line_error(run("fer_core.train", "--resume", tmp_path), str(tmp_path), "not a run directory")
    run_dir = tiny_checkpoint.parent  # a completed run
    before = {p.name: digest(p) for p in run_dir.iterdir()}
    one_line_error(run("fer_core.train", "--resume", run_dir), "already completed")
    assert {p.name: digest(p) for p in run_dir.iterdir()} == before


def test_gpu_requested_without_gpu(synth_npz, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    one_line_error(run("fer_core.train", "--data", synth_npz, "--device", "cuda", "--out", tmp_path), "no CUDA GPU")
