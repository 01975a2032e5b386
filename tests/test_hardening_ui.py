"""Issue 24, classes 6 and 7: one bad run file does not take down the Train page (the run shows as unreadable and
can still be deleted; a garbage metrics line does not block --resume), and user text is text (run names, file
names and class names are never Markdown, HTML or spreadsheet formulas)."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fer_core import runstate
from fer_core.text import csv_safe, md, plot_text

ROOT = Path(__file__).resolve().parents[1]

GOOD_CONFIG = {"hyperparameters": {"model": "mini_cnn", "epochs": 2, "lr": 0.01, "batch_size": 32},
               "model_name": "mini_cnn", "model_args": {"width": 8}, "data": {"source": "x.npz"}}
GOOD_METRIC = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.1, "val_acc": 0.4, "lr": 0.01,
               "seconds": 2.0, "elapsed": 2.0}

# (name, {file: content}, what the unreadable line names); each is a case the adversarial run found
BAD_RUNS = [
    ("hp_list", {"config.json": {"hyperparameters": [1, 2, 3]}}, "'hyperparameters' is a list"),
    ("model_int", {"config.json": {**GOOD_CONFIG, "hyperparameters": {**GOOD_CONFIG["hyperparameters"], "model": 5}}},
     "'model' is an integer"),
    ("epochs_text", {"status.json": {"state": "completed", "epoch": 2, "epochs": "x"}}, "'epochs' is a string"),
    ("val_acc_text", {"metrics.jsonl": [GOOD_METRIC, {**GOOD_METRIC, "epoch": 2, "val_acc": "high"}]},
     "1 line skipped"),
    ("not_json", {"status.json": "{not json", "config.json": "[1, 2]"}, "not valid JSON"),
]


def write_run(root: Path, name: str, files: dict) -> Path:
    run = root / name
    run.mkdir(parents=True)
    base = {"status.json": {"state": "completed", "epoch": 2, "epochs": 2}, "config.json": GOOD_CONFIG,
            "metrics.jsonl": [GOOD_METRIC]}
    for f, content in {**base, **files}.items():
        if isinstance(content, str):
            text = content
        elif f.endswith(".jsonl"):
            text = "".join(json.dumps(m) + "\n" for m in content)
        else:
            text = json.dumps(content)
        (run / f).write_text(text)
    return run


@pytest.mark.parametrize("name, files, needle", BAD_RUNS, ids=[b[0] for b in BAD_RUNS])
def test_bad_run_file_is_named_not_raised(tmp_path, name, files, needle):
    r = runstate.read_run(write_run(tmp_path, name, files))
    assert needle in r.unreadable, r.unreadable
    # every accessor the pages use answers (None or a default) instead of raising
    r.summary(), r.epochs, r.epoch, r.best_val_acc, r.duration, r.eta, r.progress, r.hyperparameters, r.error
    assert runstate.list_runs(tmp_path)[0].name == name


def test_train_page_lists_bad_runs_as_unreadable_and_deletes_them(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("FER_RUNS_DIR", str(root))
    for name, files, _ in BAD_RUNS:
        write_run(root, name, files)
    write_run(root, "fine", {})
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert set(table["run"]) == {b[0] for b in BAD_RUNS} | {"fine"}
    assert (table.set_index("run").loc["fine", "unreadable"]) == "-"
    for name, _, needle in BAD_RUNS:
        assert needle in table.set_index("run").loc[name, "unreadable"]
        at.selectbox(key="tr_run").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert any("Unreadable in part" in w.value for w in at.warning), (name, [w.value for w in at.warning])
        at.button(key="tr_delete").click().run()
        at.button(key="tr_delete_yes").click().run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not (root / name).exists(), name
    assert [p.name for p in root.iterdir()] == ["fine"]


def test_resume_keeps_going_past_a_garbage_metrics_line(tmp_path, synth_npz):
    """A line someone typed into metrics.jsonl ('Expecting value' before) is kept, counted in the log, and the
    resumed run completes with every epoch's line."""
    from fer_core.train import TrainConfig, train

    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 8}, epochs=3, batch_size=32,
                      max_train_samples=100, augment=False, normalize="global", device="cpu", seed=0)
    run = train(cfg, out_dir=str(tmp_path), run_dir="r", callback=lambda m: m["epoch"] >= 1)  # stops after 1
    assert runstate.read_run(run).state == "stopped" and runstate.read_run(run).epoch == 1
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    with open(run / "metrics.jsonl", "a") as f:
        f.write("this is not json\n{\"epoch\": \"two\"}\n")
    r = subprocess.run([sys.executable, "-m", "fer_core.train", "--resume", str(run)], env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    assert [m["epoch"] for m in runstate.read_run(run).metrics] == [1, 2, 3]
    assert "2 lines of metrics.jsonl skipped" in (run / "train.log").read_text()


# ----------------------------------------------------------------------------------------------
# class 7: user text is text

HOSTILE = ["**bold**", ":red[alarm]", "[link](http:evil)", "![t](http:127.0.0.1:9)", "<img src=x>", "$x^2$",
           ":material/home:", "a_b_c", "1. item", "# head", "`code`", "x\\*y"]


@pytest.mark.parametrize("text", HOSTILE)
def test_md_escapes_to_the_literal_text(text):
    """Known answer: the escaped text, read back by a CommonMark reader (backslash before ASCII punctuation is
    the character itself), is the original; nothing special is left unescaped."""
    import re

    out = md(text)
    assert re.sub(r"\\(.)", r"\1", out) == text
    assert not re.search(r"(?<!\\)[*_\[\]()!<>:$`#]", out), out


def test_csv_cells_never_start_a_formula():
    assert csv_safe("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert [csv_safe(v) for v in ("+1", "-x", "@SUM(A1)", "\tx", "fine.jpg", 0.5, -3, None)] == \
        ["'+1", "'-x", "'@SUM(A1)", "'\tx", "fine.jpg", 0.5, -3, None]
    assert plot_text("<a href='x'>c</a>") == "&lt;a href='x'&gt;c&lt;/a&gt;"


def test_prediction_and_video_csv_quote_formula_like_names():
    from fer_core import video
    from fer_core.predict import rows_to_csv

    probs = {c: 1 / 7 for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}
    rows = [{"file": "=cmd|' /C calc'!A0.jpg", "error": "x"},
            {"file": "-evil.jpg", "face": 1, "box": [1, 2, 3, 4], "source": "detected", "detector": "yunet",
             "score": 0.9, "label": "angry", "probabilities": probs}]
    cells = [c for row in csv.reader(io.StringIO(rows_to_csv(rows))) for c in row]
    assert "'=cmd|' /C calc'!A0.jpg" in cells and "'-evil.jpg" in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells), cells
    vrows = [{"file": "@clip.mp4", "frame": 0, "time": 0.0, "track": 1, "box": [0, 0, 1, 1], "label": "happy",
              "smoothed_label": "happy", "probabilities": probs}]
    cells = [c for row in csv.reader(io.StringIO(video.rows_to_csv(vrows))) for c in row]
    assert "'@clip.mp4" in cells and not any(c.startswith(("=", "+", "-", "@")) for c in cells)


def markdown_bodies(at) -> list[str]:
    """Every text the AppTest saw rendered through Streamlit's Markdown: markdown, captions, alerts, titles."""
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader", "header"):
        out += [e.value for e in getattr(at, kind)]
    return out


def test_train_page_shows_hostile_run_names_as_text(tmp_path, monkeypatch):
    """Runs named with Markdown, Streamlit directives and an image link: every place the page renders a run's
    name through Markdown carries it escaped (the escaped form is present, the raw form never is)."""
    root = tmp_path / "runs"
    monkeypatch.setenv("FER_RUNS_DIR", str(root))
    names = ["**bold**", ":red[alarm]", "![t](https:127.0.0.1:9)"]
    for n in names:
        write_run(root, n, {})
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.switch_page("views/train.py").run()
    for n in names:
        at.selectbox(key="tr_run").set_value(n).run()
        assert not at.exception, [e.value for e in at.exception]
        at.button(key="tr_delete").click().run()  # the confirmation names the run too
        bodies = markdown_bodies(at)
        assert any(md(n) in b for b in bodies), (n, bodies)
        assert not any(n in b for b in bodies), (n, [b for b in bodies if n in b])
