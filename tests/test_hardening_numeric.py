"""Issue 24, classes 3 and 4: checkpoints that would allocate gigabytes or answer NaN are refused with one line
before any model is built; a diverging run stops as 'diverged'; data sets too small to train are refused."""
import os
import subprocess
import sys

import pytest
import torch

from fer_core.checkpoint import CheckpointError, load_model, read_checkpoint
from tests.conftest import ROOT


def run(module, *args, timeout=180):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def tampered(tiny_checkpoint, tmp_path, fn, name="bad.pt"):
    ckpt = read_checkpoint(tiny_checkpoint)
    fn(ckpt)
    p = tmp_path / name
    torch.save(ckpt, p)
    return p


def peak_mb_loading(path) -> tuple[str, float]:
    """(what load_model said, the peak resident memory in MB) of a fresh process that loads `path`."""
    code = ("import resource, sys\n"
            "from fer_core.checkpoint import load_model, CheckpointError\n"
            f"try:\n    load_model({str(path)!r})\n    print('loaded')\nexcept CheckpointError as e:\n"
            "    print('refused:', e)\n"
            "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert "peak_kb" in r.stdout, (r.stdout, r.stderr)
    return r.stdout.split("peak_kb")[0], int(r.stdout.split("peak_kb")[1]) / 1024


def test_huge_model_args_refused_before_building(tiny_checkpoint, tmp_path):
    """The small file's model_args ask for a net of width 4096 (GBs of weights): refused from the shapes, in a
    process whose peak memory stays near that of loading the untouched checkpoint (the baseline is measured
    here: importing torch alone takes 0.5-1.5 GB, by build and CPU)."""
    from fer_core.models import create_model

    ckpt = read_checkpoint(tiny_checkpoint)
    with torch.device("meta"):
        would_be_mb = sum(t.numel() * 4 for t in create_model(ckpt["model_name"], **{**ckpt["model_args"],
                                                                                      "width": 4096}).state_dict().values()) / 2**20
    assert would_be_mb > 2000, would_be_mb  # (the case is one a build would show)
    p = tampered(tiny_checkpoint, tmp_path, lambda c: c["model_args"].update(width=4096))
    assert p.stat().st_size < 2_000_000
    said, base_mb = peak_mb_loading(tiny_checkpoint)
    assert said.strip() == "loaded", said
    said, peak_mb = peak_mb_loading(p)
    assert "refused:" in said and "size mismatch" in said, said
    assert peak_mb < base_mb + would_be_mb / 4, (f"{peak_mb:.0f} MB peak vs {base_mb:.0f} MB for the untouched file:"
                                                 f" the {would_be_mb:.0f} MB model was built before the refusal")


@pytest.mark.parametrize("where", ["weight_nan", "weight_inf", "mean_nan", "std_inf"])
def test_non_finite_checkpoint_refused(tiny_checkpoint, tmp_path, where):
    def spoil(c):
        if where.startswith("weight"):
            k = next(k for k, v in c["state_dict"].items() if v.is_floating_point())
            c["state_dict"][k] = c["state_dict"][k].clone()
            c["state_dict"][k].view(-1)[0] = float("nan") if where == "weight_nan" else float("inf")
        elif where == "mean_nan":
            c["normalization"]["mean"] = torch.full_like(c["normalization"]["mean"], float("nan"))
        else:
            c["normalization"]["std"] = torch.full_like(c["normalization"]["std"], float("inf"))

    p = tampered(tiny_checkpoint, tmp_path, spoil)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_model(p)
    r = run("fer_core.predict", "--checkpoint", p, ROOT / "samples")
    one_line_error(r, "NaN or infinite")


def test_evaluate_refuses_nan_checkpoint(tiny_checkpoint, synth_npz, tmp_path):
    def spoil(c):
        for k, v in c["state_dict"].items():
            if v.is_floating_point():
                c["state_dict"][k] = torch.full_like(v, float("nan"))
    p = tampered(tiny_checkpoint, tmp_path, spoil)
    r = run("fer_core.evaluate", "--checkpoint", p, "--data", synth_npz, "--split", "test")
    one_line_error(r, "NaN or infinite")


def test_lr_1e6_stops_the_run_as_diverged_with_finite_checkpoints(synth_npz, tmp_path):
    """--lr 1e6 made NaN losses and the run ended 'completed' with best val acc 0.13: it stops 'diverged', says so
    on one line, and its last.pt and best.pt hold finite weights that load."""
    from fer_core import runstate

    r = run("fer_core.train", "--data", synth_npz, "--model", "mini_cnn", "--model-args", '{"width": 8}',
            "--epochs", "4", "--batch-size", "32", "--optimizer", "sgd", "--lr", "1e6", "--max-train-samples", "200",
            "--no-augment", "--device", "cpu", "--out", tmp_path, "--name", "nan")
    assert r.returncode == 1, (r.returncode, r.stderr[-1500:])
    lines = [l for l in r.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "diverged" in lines[0] and "Traceback" not in r.stderr, r.stderr
    state = runstate.read_run(tmp_path / "nan")
    assert state.state == "diverged" and "diverged" in state.error and not state.active
    assert all(m["train_loss"] == m["train_loss"] for m in state.metrics)  # no NaN line was logged
    for f in ("last.pt", "best.pt"):
        if (tmp_path / "nan" / f).exists():
            load_model(tmp_path / "nan" / f)  # finite: would raise CheckpointError otherwise
    assert (tmp_path / "nan" / "last.pt").exists()


def test_a_diverged_run_shows_on_the_train_page(synth_npz, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    run("fer_core.train", "--data", synth_npz, "--model", "mini_cnn", "--model-args", '{"width": 8}', "--epochs",
        "2", "--batch-size", "32", "--optimizer", "sgd", "--lr", "1e6", "--max-train-samples", "100",
        "--no-augment", "--device", "cpu", "--out", tmp_path, "--name", "nan")
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Diverged:" in e.value and "lower" in e.value for e in at.error), [e.value for e in at.error]
    assert at.dataframe[0].value.set_index("run").loc["nan", "state"] == "diverged"


@pytest.mark.parametrize("n_faces, n_test, args, needle", [
    (1, 1, [], "at least 8 are needed"),
    (9, 1, ["--val-split", "holdout"], "holdout tenth of the train split is empty"),
    (40, 0, [], "is empty or missing"),
])
def test_data_too_small_to_train_is_refused(tmp_path, n_faces, n_test, args, needle):
    """A folder with one image trained to NaN and exited 0: refused before a run directory exists."""
    from PIL import Image

    import numpy as np

    rng = np.random.default_rng(0)
    for i in range(n_faces):
        d = tmp_path / "data" / "train" / ("happy", "sad")[i % 2]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(d / f"{i}.png")
    (tmp_path / "data" / "test" / "happy").mkdir(parents=True)
    for i in range(n_test):
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(tmp_path / "data" / "test" / "happy" / f"t{i}.png")
    r = run("fer_core.train", "--data", tmp_path / "data", "--model", "mini_cnn", "--epochs", "1", "--device", "cpu",
            "--out", tmp_path / "runs", *args)
    one_line_error(r, needle)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
