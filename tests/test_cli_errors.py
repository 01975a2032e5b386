"""Every bad input of the train/evaluate CLIs: a one-line error naming the file, exit 2, nothing damaged."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import LEARNED_ACC, ROOT


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
    # flip TTA on the synthetic task: squares 0/1 and 3/4 are each other's mirror images, so only the classes whose
    # square is its own mirror (2, 5, 6) have a defined answer; their 30 faces each must be right on any CPU
    cm = np.array(m["confusion_matrix"])
    assert all(cm[k, k] == 30 for k in (2, 5, 6)), cm
    plain = run("fer_core.evaluate", "--checkpoint", tiny_checkpoint, "--data", synth_npz, "--json")
    assert json.loads(plain.stdout)["accuracy"] >= LEARNED_ACC  # the fixture itself checks it learned
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


# ---- issue 13: one-line errors (exit 2, nothing written), run in-process through the CLIs' main()

def main_error(capsys, main, argv, *needles):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_out_that_is_a_file(capsys, synth_npz, tmp_path):
    from fer_core.train import main

    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    main_error(capsys, main, ["--data", synth_npz, "--model", "mini_cnn", "--out", f], "--out", "not a directory")
    main_error(capsys, main, ["--data", synth_npz, "--model", "mini_cnn", "--out", f / "runs"], "not a directory")
    assert f.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [f]


@pytest.mark.parametrize("margs,needle", [('{"width": -3}', "negative dimension"), ('{"nope": 1}', "'nope'"),
                                          ('{"num_classes": 3}', "3 outputs")])
def test_bad_model_args(capsys, synth_npz, tmp_path, margs, needle):
    from fer_core.train import main

    main_error(capsys, main, ["--data", synth_npz, "--model", "mini_cnn", "--model-args", margs, "--out", tmp_path],
               "--model-args", needle)
    assert not any(tmp_path.iterdir())  # no run directory, no last.pt


@pytest.mark.parametrize("config,needle", [({"data": "DATA", "val_split": "nope"}, "--val-split must be one of"),
                                           ({"data": "DATA", "model": "mini_cnn", "model_args": {"nope": 1}},
                                            "'nope'"),
                                           ({"data": "DATA", "epoch": 3}, "unknown training option(s): epoch"),
                                           ("{not json", "unreadable run config")])
def test_bad_config_files(capsys, synth_npz, tmp_path, config, needle):
    from fer_core.train import main

    f = tmp_path / "config.json"
    f.write_text(json.dumps(config).replace('"DATA"', json.dumps(str(synth_npz))) if isinstance(config, dict)
                 else config)
    out = tmp_path / "runs"
    main_error(capsys, main, ["--config", f, "--out", out], needle)
    assert not out.exists()  # validated before any run directory


@pytest.mark.parametrize("device,needle", [("banana", "--device must be"), ("cuda:x", "--device must be"),
                                           ("cuda", "no CUDA GPU")])
def test_evaluate_bad_device(capsys, tiny_checkpoint, synth_npz, device, needle):
    from fer_core.evaluate import main

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    main_error(capsys, main, ["--checkpoint", tiny_checkpoint, "--data", synth_npz, "--device", device], needle)


def _malformed(ck):
    def norm_string(c):
        c["normalization"] = "global"

    def weight_not_tensor(c):
        k = next(iter(c["state_dict"]))
        c["state_dict"][k] = [1.0, 2.0]

    def mean_wrong_shape(c):
        c["normalization"] = dict(c["normalization"], mean=torch.zeros(3))

    def three_classes(c):
        c["classes"] = ["a", "b", "c"]

    return [(norm_string, "normalization is a str"), (weight_not_tensor, "is a list, not a tensor"),
            (mean_wrong_shape, "mean has shape (3,)"), (three_classes, "7 outputs but the checkpoint names 3 classes")]


def test_malformed_checkpoints(capsys, tmp_path, tiny_checkpoint, synth_npz):
    from fer_core.evaluate import main

    for i, (spoil, needle) in enumerate(_malformed(None)):
        ck = torch.load(tiny_checkpoint, weights_only=True)
        spoil(ck)
        p = tmp_path / f"bad{i}.pt"
        torch.save(ck, p)
        before = digest(p)
        line = main_error(capsys, main, ["--checkpoint", p, "--data", synth_npz], p.name, "malformed", needle)
        assert "Traceback" not in line and digest(p) == before


def test_architecture_mismatch_message_is_whole(capsys, tmp_path, tiny_checkpoint, synth_npz):
    from fer_core.evaluate import main

    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["model_args"] = {"width": 4}  # trained at width 8: every layer's shape differs
    p = tmp_path / "narrow.pt"
    torch.save(ck, p)
    line = main_error(capsys, main, ["--checkpoint", p, "--data", synth_npz], "narrow.pt", "do not fit")
    assert line.count("size mismatch") > 3  # every mismatched layer, not the first line only
    assert "head" in line


def test_unsafe_checkpoint_message_gives_no_unsafe_advice(capsys, tmp_path, synth_npz):
    import pickle

    from fer_core.evaluate import main

    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"format_version": 1, "x": Exception("boom")}, f)
    line = main_error(capsys, main, ["--checkpoint", p, "--data", synth_npz], "evil.pt", "unsafe")
    assert "weights_only" not in line and "trust" not in line


def test_unknown_class_folders_are_named(capsys, tmp_path, tiny_checkpoint):
    from PIL import Image

    from fer_core.evaluate import main

    for cls in ("bored", "grumpy"):
        d = tmp_path / "faces" / "test" / cls
        d.mkdir(parents=True)
        Image.new("L", (48, 48), 128).save(d / "a.png")
    main_error(capsys, main, ["--checkpoint", tiny_checkpoint, "--data", tmp_path / "faces", "--split", "test"],
               "bored, grumpy", "no recognised class folders")
