"""Knowledge distillation (--teacher): the loss's closed form, the precomputed (and cached) targets of each face
and its mirror, a student that learns its teacher's answers rather than the given labels, exact resume."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_core.checkpoint import CheckpointError, load_model, read_checkpoint
from fer_core.distill import batch_targets, distill_loss, face_and_mirror_logits, teacher_targets
from fer_core.evaluate import evaluate
from fer_core.train import TrainConfig, train
from tests.conftest import ROOT, synthetic_faces, write_npz


def test_distill_loss_is_t_squared_kl():
    s = torch.tensor([[2.0, 0.0, -1.0, 0, 0, 0, 0], [0.5, 0.5, 3.0, 0, 0, 0, 0]])
    p = torch.softmax(torch.tensor([[0.0, 1.0, 0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 2.0]]), 1)
    T = 3.0
    log_q = torch.log_softmax(s / T, 1)
    want = (p * (p.log() - log_q)).sum(1).mean() * T * T
    assert distill_loss(s, p, T).item() == pytest.approx(want.item(), rel=1e-6)
    assert distill_loss(s, torch.softmax(s / T, 1), T).item() == pytest.approx(0.0, abs=1e-6)


def test_batch_targets_follow_each_faces_mirror():
    t = torch.arange(4 * 2 * 7, dtype=torch.float32).reshape(4, 2, 7)
    idx, mirrored = torch.tensor([3, 0, 2]), torch.tensor([True, False, True])
    assert torch.equal(batch_targets(t, idx, mirrored), torch.stack([t[3, 1], t[0, 0], t[2, 1]]))
    assert torch.equal(batch_targets(t, idx, None), t[idx, 0])


def test_teacher_logits_are_the_model_on_each_face_and_its_mirror_and_are_cached(tiny_checkpoint, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    x, _ = synthetic_faces(37, 5)
    xu = torch.from_numpy(x)[:, None]  # (37, 1, 48, 48) uint8
    got = face_and_mirror_logits(str(tiny_checkpoint), xu, batch_size=16)  # batches of 16, 16, 5
    model, prep = load_model(tiny_checkpoint)
    with torch.no_grad():
        xb = prep.normalize(xu.float() / 255)
        want = torch.stack([model(xb), model(xb.flip(-1))], 1)
    assert got.shape == (37, 2, 7) and torch.allclose(got, want, atol=1e-5)
    # the synthetic classes are places: a mirrored face is mostly another class, so the two columns differ
    assert (got[:, 0].argmax(1) != got[:, 1].argmax(1)).float().mean() > 0.5

    def no_model(*a, **k):
        raise AssertionError("the cached logits were not used")

    monkeypatch.setattr("fer_core.distill.load_model", no_model)
    assert torch.equal(face_and_mirror_logits(str(tiny_checkpoint), xu), got)
    with pytest.raises(AssertionError):  # other faces: another cache entry
        face_and_mirror_logits(str(tiny_checkpoint), xu[:36])


def test_teacher_targets_average_the_teachers_probabilities(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    xu = torch.from_numpy(synthetic_faces(9, 2)[0])[:, None]
    shipped = str(ROOT / "checkpoints" / "fer_cpu.pt")
    got = teacher_targets([str(tiny_checkpoint), shipped], xu, 2.0)
    a, b = face_and_mirror_logits(str(tiny_checkpoint), xu), face_and_mirror_logits(shipped, xu)
    assert torch.allclose(got, (F.softmax(a / 2, -1) + F.softmax(b / 2, -1)) / 2, atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(9, 2), atol=1e-5)


def _student(data, **kw):
    base = dict(data=str(data), model="mini_cnn", model_args={"width": 8}, epochs=6, batch_size=32, lr=0.01,
                optimizer="adam", augment=True, rotation=0.0, zoom=0.0, shift=0.0, flip=True, normalize="global",
                device="cpu", seed=0, val_split="test")
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def wrong_labels_npz(tmp_path_factory):
    """The synthetic task with every training label moved to the next class (test labels right)."""
    x, y = synthetic_faces(700, 0)
    xt, yt = synthetic_faces(210, 1)
    return write_npz(tmp_path_factory.mktemp("wrong") / "wrong.npz", {"train": (x, (y + 1) % 7), "test": (xt, yt)})


def test_a_student_learns_its_teachers_answers_for_each_face_and_its_mirror(wrong_labels_npz, tiny_checkpoint,
                                                                            tmp_path, monkeypatch):
    """alpha 1: only the teacher (which solves the task) teaches, so the student gets the test labels right
    although every training label is wrong; alpha 0 learns the wrong labels (the control, scored both ways). The
    faces are flipped half the time and a mirrored square is another class, so a target that did not follow the
    mirror fails."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    # 10 epochs at lr 0.003: 0.97-1.0 over seeds 0-4 on a Zen 4 CPU, where 6 at 0.01 gave 0.79-1.0
    slow = dict(epochs=10, lr=0.003)
    taught = train(_student(wrong_labels_npz, teacher=str(tiny_checkpoint), distill_alpha=1.0,
                            distill_temperature=1.0, **slow), out_dir=str(tmp_path), run_dir="taught")
    labels = train(_student(wrong_labels_npz, teacher=str(tiny_checkpoint), distill_alpha=0.0, **slow),
                   out_dir=str(tmp_path), run_dir="labels")
    assert evaluate(taught / "last.pt", wrong_labels_npz, "test")["accuracy"] >= 0.9
    # the control learns the labels it was given, as well as flips allow (a mirrored face keeps its label): on
    # seeds 0-4 with 1 and 2 torch threads, 0.53-0.86 on the shifted test labels and 0.0-0.29 on the right ones
    with np.load(wrong_labels_npz) as d:
        shifted = write_npz(tmp_path / "shifted.npz", {"test": (d["test_x"], (d["test_y"] + 1) % 7)})
    assert evaluate(labels / "last.pt", shifted, "test")["accuracy"] >= 0.45
    assert evaluate(labels / "last.pt", wrong_labels_npz, "test")["accuracy"] <= 0.4
    hp = json.loads((taught / "config.json").read_text())["hyperparameters"]
    assert (hp["teacher"], hp["distill_alpha"], hp["distill_temperature"]) == (str(tiny_checkpoint), 1.0, 1.0)


def test_distillation_with_mixup_resumes_exactly(synth_npz, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    cfg = dict(teacher=str(tiny_checkpoint), distill_alpha=0.5, mixup=0.4, epochs=3, max_train_samples=200)
    full = train(_student(synth_npz, **cfg), out_dir=str(tmp_path), run_dir="full")
    part = train(_student(synth_npz, **cfg), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=1)
    train(_student(synth_npz, **cfg), run_dir=str(part), resume=True)
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(part / "last.pt")
    assert all(torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-5) for k in a["state_dict"])


def test_a_bad_teacher_is_refused_in_one_line(synth_npz, tmp_path):
    with pytest.raises(ValueError, match="--teacher: no checkpoint file"):
        _student(synth_npz, teacher=str(tmp_path / "missing.pt")).validate()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        train(_student(synth_npz, teacher=str(bad), epochs=1), out_dir=str(tmp_path), run_dir="bad")


def test_the_photo_recipe_names_the_shipped_teachers_from_any_folder(tmp_path, monkeypatch):
    """The recipe's teachers resolve against the project root, so a run started elsewhere finds them; an
    override's teacher is taken as given."""
    from pathlib import Path

    from fer_core.recipes import recipe_config

    monkeypatch.chdir(tmp_path)
    paths = recipe_config("photo").teacher_paths()
    assert [Path(p).name for p in paths] == ["fer_best.pt", "fer_cpu.pt"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    assert recipe_config("photo", teacher="mine.pt").teacher_paths() == ["mine.pt"]


def test_teacher_pass_rates_calibrate_each_teachers_model():
    from fer_core.calibrate import teacher_pass_rates

    rates = teacher_pass_rates(["a/one.pt", "two.pt"], reader=lambda p: ("mini_cnn", {"width": 4}))
    assert [n for n, _ in rates] == ["one.pt", "two.pt"] and all(r > 0 for _, r in rates)
