"""fer_core.report and fer_core.ablation: the layer table, every section of the course report's study built for the
tiny model, and Table 1 from real ablation runs launched on the synthetic task with a tiny budget."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import synthetic_faces, write_npz  # noqa: E402

from fer_core import ablation, load_model, load_split, report, runfiles, runs, runstate  # noqa: E402
from fer_core.evaluate import evaluate  # noqa: E402
from fer_core.models import count_parameters, create_model, layer_table  # noqa: E402

SECTIONS = ("architecture", "training", "ablations", "confusion", "saliency", "filters")
# the tiny budget of every ablation run here: two epochs of mini_cnn at width 8 on 140 synthetic faces
TINY = dict(model="mini_cnn", model_args={"width": 8}, epochs=2, batch_size=32, lr=0.01, optimizer="adam",
            schedule="constant", max_train_samples=140, normalize="global", augment=True, rotation=10.0, zoom=0.1,
            device="cpu", seed=0)


# ---------------------------------------------------------------- the layer table


def test_layer_table_totals_like_the_keras_summary():
    rows, total, trainable = layer_table("seed_vgg")
    assert total == trainable == 3_257_799  # the report's Keras summary
    assert sum(r[3] for r in rows) == total
    assert rows[0] == ("features.0", "Conv2d", (64, 46, 46), 640)
    assert rows[-1] == ("head.4", "Linear", (7,), 14343)
    assert [r[2] for r in rows if r[1] == "MaxPool2d"] == [(64, 22, 22), (128, 9, 9), (256, 2, 2)]
    for name, args in (("vgg_bn", {}), ("vgg_bn", {"width": 32}), ("mini_cnn", {"width": 8})):
        rows, total, trainable = layer_table(name, args)
        assert total == trainable == count_parameters(create_model(name, **args)) == sum(r[3] for r in rows)
        assert rows[-1][2] == (7,)


# ---------------------------------------------------------------- the ablation pairs, by config


def fake_run(root: Path, name: str, metrics: list[float], **hp) -> Path:
    """A finished run folder written by hand: config.json of TINY + `hp`, one metrics line per accuracy."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {**TINY, "data": "/data/x.npz", **hp}
    (run / "config.json").write_text(json.dumps({"hyperparameters": cfg, "model_name": cfg["model"],
                                                 "data": {"source": "/data/x.npz"}}))
    (run / "status.json").write_text(json.dumps({"state": "completed", "epoch": len(metrics),
                                                 "epochs": cfg["epochs"]}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_acc": 0.9, "val_acc": a,
                                                           "train_loss": 0.5, "val_loss": 1.0}) + "\n"
                                               for e, a in enumerate(metrics, 1)))
    return run


def test_pairs_differ_only_in_the_setting(tmp_path):
    full = fake_run(tmp_path, "full", [0.5, 0.7, 0.6, 0.9], epochs=4)
    nonorm = fake_run(tmp_path, "nonorm", [0.4, 0.55], epochs=2, normalize="none", device="cuda",
                      eval_batch_size=7)  # where it ran is no difference; a constant lr makes 2 epochs a prefix of 4
    noaug = fake_run(tmp_path, "noaug", [0.3, 0.5, 0.45, 0.5], epochs=4, augment=False, rotation=0.0)
    other = fake_run(tmp_path, "other", [0.2, 0.3], epochs=2, normalize="none", lr=0.02)  # two differences
    found = ablation.find([other, full, nonorm, noaug])
    n, a = found["normalize"], found["augment"]
    assert (n.with_run.name, n.without_run.name, n.epochs) == ("full", "nonorm", 2)
    assert (n.with_acc, n.without_acc) == (0.7, 0.55)  # the full run's best within the first 2 epochs
    assert (a.with_run.name, a.without_run.name, a.epochs, a.with_acc, a.without_acc) == ("full", "noaug", 4, 0.9, 0.5)
    rows = ablation.table1(found)
    assert rows[0] == ["normalization", "0.5500 (nonorm)", "0.7000 (full)", "+15.0 points", 2,
                       "0.60 -> 0.65 (+5.0 points)"]
    assert rows[1][:5] == ["augmentation", "0.5000 (noaug)", "0.9000 (full)", "+40.0 points", 4]
    # a schedule over the run's epochs (one-cycle) makes 2 and 4 epochs different experiments
    cyc = fake_run(tmp_path, "cyc", [0.5, 0.6, 0.6, 0.6], epochs=4, schedule="onecycle")
    cyc_nonorm = fake_run(tmp_path, "cyc-nonorm", [0.4, 0.5], epochs=2, schedule="onecycle", normalize="none")
    assert ablation.find([cyc, cyc_nonorm]) == {"normalize": None, "augment": None}
    # other data is another experiment
    elsewhere = fake_run(tmp_path, "elsewhere", [0.4, 0.5, 0.5, 0.5], epochs=4, augment=False)
    (elsewhere / "config.json").write_text((elsewhere / "config.json").read_text().replace("/data/x.npz", "/y.npz"))
    assert ablation.find([full, elsewhere])["augment"] is None


def test_groups_of_the_preset_and_their_names():
    assert ablation.group_of("runs/abl-2-no-normalization") == "abl-2"
    assert ablation.group_of("runs/x-full") == "x" and ablation.group_of("runs/full") is None
    assert ablation.group_of("runs/20250101-seed_vgg") is None
    with pytest.raises(runs.LaunchError, match="normalization and augmentation on"):
        ablation.configs({**TINY, "data": "x.npz", "normalize": "none"})


# ---------------------------------------------------------------- tiny real ablation runs


@pytest.fixture(scope="module")
def ablation_runs(synth_npz, tmp_path_factory):
    """The three runs of ablation.launch (the Train page's preset), trained for real as separate processes."""
    root = tmp_path_factory.mktemp("ablation-runs")
    made = ablation.launch({**TINY, "data": str(synth_npz)}, root, group="abl")
    assert [p.name for p in made] == ["abl-full", "abl-no-normalization", "abl-no-augmentation"]
    for p in made:
        assert runs.wait(p, timeout=240).state == "completed", runfiles.log_tail(p)
    return made


def test_ablation_runs_share_seed_budget_and_data(ablation_runs):
    hps = [runstate.read_run(p).hyperparameters for p in ablation_runs]
    assert [h["normalize"] for h in hps] == ["global", "none", "global"]
    assert [h["augment"] for h in hps] == [True, True, False]
    for h in hps[1:]:
        assert {k for k in h if h[k] != hps[0][k]} <= {"normalize", "augment"}
    assert ablation.group_runs(ablation_runs[1]) == ablation_runs
    with pytest.raises(runs.LaunchError, match="abl-full"):  # a taken group launches none
        ablation.launch({**TINY, "data": hps[0]["data"]}, ablation_runs[0].parent, group="abl")


@pytest.fixture(scope="module")
def tiny_report(ablation_runs, synth_npz):
    ckpt = ablation_runs[0] / "best.pt"
    model, prep = load_model(ckpt)
    rep = report.build(model, prep, load_split(synth_npz, "test"), ckpt, ablation.group_runs(ablation_runs[0]))
    return rep, rep.html(), ckpt


def test_report_has_every_section_with_the_dashboards_numbers(tiny_report, synth_npz):
    rep, html, ckpt = tiny_report
    assert [s.id for s in rep.sections] == list(SECTIONS)
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in html
    # 1. the layer table of the run's model
    total = count_parameters(create_model("mini_cnn", width=8))
    assert f"<td>Total params</td><td></td><td>{total:,}</td>" in html
    # 2. the run's own config and curves, and a sentence from its numbers
    last = runstate.read_run(ckpt.parent).metrics[-1]
    assert "Run abl-full (completed, 2 of 2 epochs" in html
    assert f"At epoch 2 training accuracy is {last['train_acc']:.4f} and validation accuracy {last['val_acc']:.4f}" in html
    assert "<td>max_train_samples</td><td>140</td>" in html
    # 3. Table 1 from the three runs: each accuracy is the run's best, as the Train page shows it
    best = {p.name: runstate.read_run(p).best_val_acc for p in ablation.group_runs(ckpt.parent)}
    assert f"<td>{best['abl-no-normalization']:.4f} (abl-no-normalization)</td><td>{best['abl-full']:.4f} (abl-full)" in html
    assert f"<td>{best['abl-no-augmentation']:.4f} (abl-no-augmentation)</td>" in html
    assert "missing" not in html and "0.60 -&gt; 0.65" in html
    # 4. the accuracy fer_core.evaluate computes, the most-confused pairs and the class table
    acc = evaluate(ckpt, synth_npz, "test")["accuracy"]
    assert f"Accuracy {acc:.4f} on 210 faces" in html
    assert "<th>Precision</th><th>Recall</th>" in html
    # 5. five faces, two maps each with trust scores; 6. two conv layers' filters and responses
    sal = next(s for s in rep.sections if s.id == "saliency")
    rows = [b for b in sal.blocks if isinstance(b, list)]
    assert len(rows) == 5 and all(len(r) == 3 for r in rows)
    assert html.count("<figcaption>Grad-CAM: trust ") == 5 and html.count("<figcaption>Vanilla gradient: trust ") == 5
    flt = next(s for s in rep.sections if s.id == "filters")
    assert "conv 1 (features.0): 8 filters 3x3" in html and "conv 2 (features.3): 8 filters 3x3, each averaged " \
        "over its 8 input channels" in html and len([b for b in flt.blocks if isinstance(b, list)]) == 2
    # every image is a PNG that decodes
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 1 + 5 * 3 + 1 + 2 * 2  # curves, saliency rows, the face, filters and responses
    import base64
    import io

    from PIL import Image

    assert all(Image.open(io.BytesIO(base64.b64decode(b))).size[0] > 0 for b in imgs)


def test_report_is_the_same_for_the_same_seed_and_differs_for_another(tiny_report, synth_npz):
    rep, _, ckpt = tiny_report
    model, prep = load_model(ckpt)
    faces = load_split(synth_npz, "test")
    again = report.build(model, prep, faces, ckpt, seed=0)
    other = report.build(model, prep, faces, ckpt, seed=1)

    def captions(r):
        return [f.caption for f in next(s for s in r.sections if s.id == "saliency").blocks[-2]]

    assert captions(again) == captions(rep) != captions(other)


def test_without_runs_the_sections_say_what_is_missing(tiny_checkpoint, synth_npz, tmp_path):
    model, prep = load_model(tiny_checkpoint)
    rep = report.build(model, prep, load_split(synth_npz, "test"), tiny_checkpoint, runs=[])
    html = rep.html()
    assert html.count("missing") >= 2 and "differs only in normalization" in html
    assert "differs only in augmentation" in html
    assert "Run tiny (completed" in html  # the checkpoint's own run folder still gives the curves


def test_user_text_is_escaped(tiny_checkpoint, tmp_path):
    """Run names, data paths and class names reach the report as text: a hostile run folder name is shown."""
    hostile = '<img src=x onerror="alert(1)">'
    run = fake_run(tmp_path, hostile, [0.5, 0.6])
    data = write_npz(tmp_path / "<b>data.npz", {"train": synthetic_faces(70, 0), "test": synthetic_faces(30, 1)})
    model, prep = load_model(tiny_checkpoint)
    rep = report.build(model, prep, load_split(data, "test"), tiny_checkpoint, [run])
    html = rep.html()
    assert hostile not in html and "<b>data" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html and "&lt;b&gt;data.npz" in html
    md = rep.markdown(tmp_path / "md").read_text()
    assert re.search(r"(?<!\\)<", md) is None  # every < escaped: Markdown shows it as the character
    assert "\\<img src\\=x" in md and "\\<b\\>data" in md


# ---------------------------------------------------------------- the command line


def test_cli_writes_html_and_markdown(tiny_report, synth_npz, tmp_path, capsys):
    _, _, ckpt = tiny_report
    out, folder = tmp_path / "r.html", tmp_path / "md"
    args = ["--checkpoint", str(ckpt), "--data", str(synth_npz), "--out", str(out), "--md", str(folder)]
    for p in ablation.group_runs(ckpt.parent):
        args += ["--run", str(p)]
    assert report.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "@media print" in html and "http" not in html.split("<body>")[1]
    md = (folder / "report.md").read_text()
    pngs = sorted(folder.glob("figure-*.png"))
    assert len(pngs) == html.count("<img ") and all(f"]({p.name})" in md for p in pngs)
    for sid, title in (("architecture", "1. Architecture"), ("ablations", "3. Ablations")):
        assert f"## {title.replace('.', chr(92) + '.')}" in md


def test_cli_errors_are_one_line(tiny_checkpoint, synth_npz, tmp_path, capsys):
    base = ["--checkpoint", str(tiny_checkpoint), "--data", str(synth_npz)]
    assert report.main(base + ["--run", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert report.main(base + ["--out", str(tiny_checkpoint)]) == 2  # never over an input
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and Path(tiny_checkpoint).stat().st_size > 0
    assert report.main(["--checkpoint", str(tmp_path / "none.pt"), "--data", str(synth_npz),
                        "--out", str(tmp_path / "r.html")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err and not (tmp_path / "r.html").exists()


def test_overfitting_is_read_from_the_numbers():
    rising = [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "val_acc": 0.55, "val_loss": 1.0 + 0.2 * max(0, e - 2)}
              for e in range(1, 5)]
    text = report.overfitting(rising)
    assert "gap of +35.0 points, the model overfits" in text and "bottomed at 1.0000 (epoch 1)" in text
    assert "no sign of overfitting" in report.overfitting([{"epoch": 3, "train_acc": 0.56, "val_acc": 0.6}])
    assert "mild overfitting" in report.overfitting([{"epoch": 3, "train_acc": 0.65, "val_acc": 0.6}])
