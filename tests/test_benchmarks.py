"""The benchmarks' own logic on a tiny source: time_to_accuracy's side-by-side comparison of two recipes, ablate's
real-photo scores."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import ROOT, synthetic_faces, write_npz


def test_time_to_accuracy_compares_two_recipes_per_seed(tmp_path):
    data = write_npz(tmp_path / "s.npz", {"train": synthetic_faces(200, 0), "test": synthetic_faces(70, 1)})
    cmd = [sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--data", str(data), "--recipe", "quick",
           "--compare", "quick", "--epochs", "1", "--target", "0.0", "--seeds", "0", "1", "--device", "cpu",
           "--out", str(tmp_path / "runs")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout.strip().splitlines()[-3:]
    assert table[0].split()[0] == "seed" and "speed-up" in table[0]
    assert [row.split()[0] for row in table[1:]] == ["0", "1"]
    # four runs, each in its own folder (the same recipe twice: one as the recipe, one as the baseline)
    assert len(list((tmp_path / "runs").iterdir())) == 4
    js = subprocess.run(cmd[:-2] + ["--json", "--seeds", "3"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    rows = [json.loads(l) for l in js.stdout.splitlines() if l.startswith("{")]
    assert [(r["role"], r["seed"], r["reached"]) for r in rows] == [("recipe", 3, True), ("compare", 3, True)]


def test_ablate_scores_each_run_on_photos_and_backfills(tmp_path):
    """ablate.py --photos: every row carries its run's real-photo accuracy, the one evaluate_photos gives for the
    run's final checkpoint; --table --photos fills the rows written without it."""
    import numpy as np
    from PIL import Image

    from fer_core.evaluate import evaluate_photos
    from fer_core.sources import CLASSES

    data = write_npz(tmp_path / "s.npz", {"train": synthetic_faces(300, 0), "test": synthetic_faces(40, 1)})
    photos = tmp_path / "photos"
    photos.mkdir()
    with np.load(ROOT / "samples" / "fer2013_sample.npz") as z:
        x, y = z["test_x"], z["test_y"]
    rows = []
    for i in (0, 10, 20):  # FER faces enlarged into a plain canvas: YuNet finds them
        canvas = np.full((300, 400), 128, np.uint8)
        canvas[60:240, 110:290] = np.asarray(Image.fromarray(x[i]).resize((180, 180), Image.Resampling.BICUBIC))
        Image.fromarray(canvas).save(photos / f"f{i}.png")
        rows.append(f"f{i}.png,{CLASSES[int(y[i])]}\n")
    (photos / "labels.csv").write_text("file,label\n" + "".join(rows))
    out = tmp_path / "abl"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "ablate.py"), "--recipe", "quick", "--epochs", "1",
           "--variants", "base", "--data", str(data), "--out", str(out)]
    r = subprocess.run(cmd + ["--photos", str(photos)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads((out / "ablations.jsonl").read_text().splitlines()[0])
    want = evaluate_photos(Path(row["run"]) / "last.pt", photos, precision="fp32")
    assert row["photos"] == {"folder": "photos", "n": 3, "accuracy_all": round(want["accuracy_all"], 4)}
    # a row without the score (written before --photos existed) is filled in by --table --photos
    bare = {k: v for k, v in row.items() if k != "photos"}
    (out / "ablations.jsonl").write_text(json.dumps(bare) + "\n")
    r = subprocess.run(cmd + ["--table", "--photos", str(photos)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "ablations.jsonl").read_text())["photos"] == row["photos"]
    assert f"{row['photos']['accuracy_all']:.3f}" in r.stdout.splitlines()[-1]


def test_every_ablation_variant_is_a_valid_config_of_the_cpu_recipe(tmp_path, monkeypatch):
    # a typo in a variant (a field name, a bad value) must fail here, not an hour into a queue of runs
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.chdir(ROOT)  # the teachers' paths are relative to the checkout, as ablate.py is run
    import ablate
    from fer_core.recipes import recipe_config

    data = tmp_path / "d.npz"
    write_npz(data, {"train": synthetic_faces(n=14)})
    for name, changes in ablate.VARIANTS.items():
        cfg = recipe_config("cpu", data=str(data), val_split="holdout", device="cpu", **changes)
        for field, value in changes.items():
            assert getattr(cfg, field) == value, (name, field)
        cfg.validate()


def test_ablate_records_no_row_for_a_run_that_stopped_early(tmp_path, monkeypatch):
    """A run stopped before its last epoch (Ctrl-C, SIGTERM) ends ablate with one line naming the run and how to
    finish it, and writes no row: a partial run read as a finished one would enter the table."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import ablate
    from fer_core.train import train as real_train

    data = write_npz(tmp_path / "s.npz", {"train": synthetic_faces(200, 0)})

    def stopped(cfg, **kw):  # a real run that ends after 1 of its 2 epochs, as a stop leaves one
        return real_train(replace(cfg, epochs=1, low_res_epochs=0), **kw)

    monkeypatch.setattr(ablate, "train", stopped)
    with pytest.raises(SystemExit) as e:
        ablate.run_variant("quick", "base", 0, 2, str(data), tmp_path / "abl", 0.5)
    msg = str(e.value)
    assert "stopped after 1 of 2 epochs; nothing recorded" in msg and "fer_core.train --resume" in msg
    assert "\n" not in msg and not (tmp_path / "abl" / "ablations.jsonl").exists()


def test_tta_views_shifts_faces_and_scores_each_view_set(tiny_checkpoint, synth_npz, monkeypatch):
    """tta_views.py: a shift moves the face and repeats its border (known answer on a hand-set array); the
    single-view row is evaluate()'s accuracy; a view set's accuracy is that of the mean probability."""
    import numpy as np

    from fer_core.evaluate import evaluate

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import tta_views

    a = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    assert tta_views.shifted(a, 1, 0)[0].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert tta_views.shifted(a, 0, -2)[0].tolist() == [[2, 3, 3, 3], [6, 7, 7, 7], [10, 11, 11, 11], [14, 15, 15, 15]]
    assert tta_views.shifted(a, 0, 0) is a
    # two views of two faces: the mean probability decides, not either view alone
    logits = {"a": np.log(np.array([[0.6, 0.4], [0.1, 0.9]], np.float32)),
              "b": np.log(np.array([[0.1, 0.9], [0.2, 0.8]], np.float32))}
    assert tta_views.accuracy(logits, ["a"], np.array([0, 1])) == 1.0
    assert tta_views.accuracy(logits, ["a", "b"], np.array([0, 1])) == 0.5  # face 0: (0.35, 0.65)

    cmd = [sys.executable, str(ROOT / "benchmarks" / "tta_views.py"), "--checkpoint", str(tiny_checkpoint),
           "--data", str(synth_npz), "--split", "test", "--precision", "fp32", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {r["views"]: r for r in res["rows"]}
    assert list(rows) == list(tta_views.VIEW_SETS)
    assert rows["single"]["n_views"] == 1 and rows["flip"]["n_views"] == 2 and rows["all 13 shifts"]["n_views"] == 26
    assert rows["flip"]["vs_flip_points"] == 0.0
    want = evaluate(tiny_checkpoint, synth_npz, "test", precision="fp32")["accuracy"]
    assert rows["single"]["accuracy"] == round(want, 4) and res["n"] == 210


def test_ensembles_average_probabilities_and_count_a_photo_without_face_wrong(tiny_checkpoint, synth_npz,
                                                                             tmp_path, monkeypatch):
    """ensembles.py: a combination's accuracy is that of the mean probability (known answer on hand-set arrays);
    a row without a face is never right; run end to end, each model alone matches evaluate() and
    evaluate_photos()'s accuracy over all photos, and a model averaged with itself changes nothing."""
    import numpy as np
    from PIL import Image

    from fer_core.evaluate import evaluate, evaluate_photos

    skdata = pytest.importorskip("skimage.data")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import ensembles

    a = np.array([[0.6, 0.4], [0.1, 0.9], [np.nan, np.nan]], np.float32)
    b = np.array([[0.1, 0.9], [0.2, 0.8], [np.nan, np.nan]], np.float32)
    y = np.array([0, 1, 0])
    assert ensembles.accuracy([a], y) == pytest.approx(2 / 3)  # the NaN row (no face) is wrong, not class 0
    assert ensembles.accuracy([a, b], y) == pytest.approx(1 / 3)  # face 0: (0.35, 0.65)
    assert ensembles.accuracy([a, b], y, np.array([False, True, True])) == 0.5

    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(skdata.astronaut()).save(d / "astronaut.jpg")
    Image.fromarray(skdata.coffee()).save(d / "coffee.jpg")  # no face
    (d / "labels.csv").write_text("file,label\nastronaut.jpg,happy\ncoffee.jpg,angry\n")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "ensembles.py"), "--checkpoints", f"a={tiny_checkpoint}",
           f"b={tiny_checkpoint}", "--data", str(synth_npz), "--split", "test", "--no-dedup", "--photos", str(d),
           "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {"+".join(r["models"]): r for r in res["rows"]}
    assert list(rows) == ["a", "b", "a+b"] and res["photos_without_face"] == {"photos": 1}
    want = evaluate(tiny_checkpoint, synth_npz, "test", precision="fp32")["accuracy"]
    photos = evaluate_photos(tiny_checkpoint, d, precision="fp32")["accuracy_all"]
    for r in rows.values():
        assert r["test"] == round(want, 4) and r["photos"] == round(photos, 4)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = subprocess.run(cmd[:3] + [str(bad)] + cmd[5:], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: bad:") and out.stderr.count("\n") == 1
    for args, says in ((["--checkpoints", "a=x", "a=y"], "two checkpoints named 'a'"),
                       (["--checkpoints", "x", "--max", "0"], "--max must be at least 1"),
                       (["--checkpoints", "x", "--photos", "d1/p", "d2/p"], "two photo folders with the same name")):
        out = subprocess.run(cmd[:2] + args, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert out.returncode == 2 and says in out.stderr
