"""Issue 24, classes 1 and 8: outputs never destroy inputs, and bad command lines get one line, not a traceback."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from fer_core.checkpoint import read_checkpoint
from tests.conftest import ROOT
from tests.test_video import make_clip


def run(module, *args, timeout=180):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(r, *needles, code=2):
    assert r.returncode == code, (r.returncode, r.stdout[-500:], r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.startswith("error:") or ": error:" in l]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("hclips") / "in.mp4", n=6)


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink", "relative"])
def test_annotated_never_overwrites_the_input(clip, tmp_path, kind):
    src = tmp_path / "clip.mp4"
    src.write_bytes(clip.read_bytes())
    before = digest(src)
    out = {"same": src, "symlink": tmp_path / "link.mp4", "hardlink": tmp_path / "hard.mp4",
           "relative": tmp_path / "sub" / ".." / "clip.mp4"}[kind]
    if kind == "symlink":
        out.symlink_to(src)
    elif kind == "hardlink":
        os.link(src, out)
    elif kind == "relative":
        (tmp_path / "sub").mkdir()
    r = run("fer_core.predict", src, "--annotated", out)
    one_line_error(r, "--annotated", "input")
    assert digest(src) == before


def test_annotated_refuses_a_folder_and_photos_only(clip, tmp_path):
    folder = tmp_path / "out.mp4"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    one_line_error(run("fer_core.predict", clip, "--annotated", folder), "existing folder")
    assert (folder / "keep.txt").read_text() == "x"
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(photo)
    one_line_error(run("fer_core.predict", photo, "--annotated", tmp_path / "boxed.mp4"), "no clip")
    assert not (tmp_path / "boxed.mp4").exists()


@pytest.mark.parametrize("fps", ["nan", "inf", "-1", "0", "1e9", "fast"])
def test_bad_fps_is_one_line(clip, fps):
    r = run("fer_core.predict", clip, "--fps", fps)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--fps" in r.stderr.strip().splitlines()[-1]


def test_extreme_aspect_ratio_images_are_rows_not_crashes(tmp_path):
    rng = np.random.default_rng(0)
    for name, shape in (("wide.png", (30, 20000)), ("tall.png", (12000, 30)), ("sliver.png", (3, 20000))):
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(tmp_path / name)
    r = run("fer_core.predict", "--format", "csv", tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [l for l in r.stdout.splitlines()[1:]]
    assert len(errors) == 3 and not any("Error:" in l for l in errors), r.stdout  # no Python exception names


@pytest.mark.parametrize("name", ["a/b", "../escaped", "x" * 300, ".hidden", "-dash", "tab\tname"])
def test_bad_run_names_are_refused(synth_npz, tmp_path, name):
    out = tmp_path / "runs"
    r = run("fer_core.train", "--data", synth_npz, "--model", "mini_cnn", "--epochs", "1", "--out", out,
            f"--name={name}")
    one_line_error(r, "run name")
    assert not (tmp_path / "escaped").exists()
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_out_is_one_line(synth_npz):
    r = run("fer_core.train", "--data", synth_npz, "--model", "mini_cnn", "--epochs", "1", "--out", "/proc/self")
    one_line_error(r)


def test_resume_with_a_last_pt_of_other_shapes(tiny_checkpoint, synth_npz, tmp_path):
    """A stopped run whose last.pt holds another width's weights: one line, and last.pt is untouched."""
    from fer_core.train import TrainConfig, train

    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 8}, epochs=3, batch_size=64,
                      max_train_samples=128, device="cpu", seed=0)
    run_dir = train(cfg, out_dir=str(tmp_path), run_dir="r", max_epochs_this_call=1)
    last = run_dir / "last.pt"
    ck = read_checkpoint(last)
    ck["state_dict"] = {k: torch.cat([v, v]) if v.dim() else v for k, v in ck["state_dict"].items()}  # wrong shapes
    torch.save(ck, last)
    before = digest(last)
    one_line_error(run("fer_core.train", "--resume", run_dir), "does not fit", "size mismatch")
    assert digest(last) == before
