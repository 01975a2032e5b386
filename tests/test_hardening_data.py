"""Issue 24, classes 2, 3 (data sizes) and 5: every path typed in the dashboard obeys the data roots (one guard,
app_common.data_source over fer_core.data.check_data_source); only regular files are opened (a FIFO never
blocks a page, the trainer or a CLI); a source's size is checked from stat before it is read; what a split
leaves out of its source is counted, warned about and recorded in the run's config.json."""
from __future__ import annotations

import gzip
import io
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import fer_core.sources as sources
from fer_core.data import check_data_source, load_split
from fer_core.images import DataError, open_image
from fer_core.sources import SkippedDataWarning, source_kind
from tests.conftest import ROOT, synthetic_faces
from tests.test_cli_errors import one_line_error, run

QUICK = ("--model", "mini_cnn", "--model-args", '{"width": 4}', "--epochs", "1", "--batch-size", "50",
         "--no-augment", "--device", "cpu")
ROW = " ".join(["128"] * 2304)


def write_folder(root, per_class=10, test_per_class=5, extra_classes=()):
    """<root>/train/<class>/*.png and test/<class>/*.png of the synthetic task; `extra_classes`: folders with
    names that are no FER2013 class, as many images each."""
    x, y = synthetic_faces(7 * (per_class + test_per_class), 3)
    names = sources.CLASSES
    i = 0
    for split, n in (("train", per_class), ("test", test_per_class)):
        for k, c in enumerate(names):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                Image.fromarray(x[i]).save(d / f"{c}{j}.png")
                i += 1
        for c in extra_classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                Image.fromarray(x[j]).save(d / f"{c}{j}.png")
    return root


def sparse(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def app(tmp_path, monkeypatch, root):
    monkeypatch.setenv("FER_DATA_ROOT", str(root))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def launch(at, data):
    at.switch_page("views/train.py").run()
    no_exception(at)
    at.button(key="tr_preset_quick").click().run()
    at.text_input(key="tr_data").input(str(data))
    at.button[[b.label for b in at.button].index("Launch run")].click().run()
    no_exception(at)
    return [e.value for e in at.error]


# ----------------------------------------------------------------------------------------------
# class 2: every typed path obeys the data roots, FIFOs never block


def test_train_form_data_source_obeys_the_data_roots(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    at = app(tmp_path, monkeypatch, root)
    at.run()
    msgs = []
    for typed in ("/etc/passwd", "/etc/no-such-file-here", str(root / ".." / "secret.csv")):
        errors = launch(at, typed)
        assert any("Not launched" in e and "outside the allowed data folders" in e for e in errors), errors
        msgs.append([e.split(": ", 2)[-1] for e in errors if "Not launched" in e][0])
    assert len(set(msgs)) == 1  # an existing and a missing server file get the same answer
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing launched


def test_train_form_refuses_a_fifo_without_hanging(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fer2013.csv")
    at = app(tmp_path, monkeypatch, root)
    at.run()
    errors = launch(at, root / "fer2013.csv")
    assert any("not a regular file" in e for e in errors), errors


def test_sidebar_refuses_a_fifo_and_a_link_out_of_the_roots(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe")
    (root / "out.csv").symlink_to("/etc/passwd")
    at = app(tmp_path, monkeypatch, root)
    for typed, needle in ((root / "pipe", "not a regular file"), (root / "out.csv", "outside the allowed")):
        at.session_state["data_source"] = str(typed)
        at.run()
        no_exception(at)
        errors = [e.value for e in at.sidebar.error]
        assert any(needle in e and "bundled sample" in e for e in errors), errors


def test_dashboard_loaders_refuse_paths_outside_the_roots(tmp_path, monkeypatch):
    """The loaders themselves apply the guard, so no page can read a path the sidebar would refuse."""
    import app_common

    monkeypatch.setenv("FER_DATA_ROOT", str(tmp_path / "root"))
    for f in (app_common.get_splits, lambda p: app_common.get_class_counts(p, "train"),
              lambda p: app_common.get_faces(p, "train")):
        with pytest.raises(DataError, match="outside the allowed data folders"):
            f("/etc/passwd")


def test_confusion_matrix_page_skips_a_fifo_inside_a_folder_source(tmp_path, monkeypatch):
    root = tmp_path / "root"
    faces = write_folder(root / "faces", per_class=2, test_per_class=2)
    os.mkfifo(faces / "test" / "happy" / "stuck.png")
    at = app(tmp_path, monkeypatch, root)
    at.session_state["data_source"] = str(faces)
    at.switch_page("views/confusion_matrix.py").run()
    no_exception(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]


def test_fifo_named_like_a_photo_is_refused_not_opened(tmp_path):
    fifo = tmp_path / "face.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        open_image(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        source_kind(fifo)


def test_train_cli_skips_fifos_and_unknown_class_folders_and_records_them(tmp_path):
    faces = write_folder(tmp_path / "faces", extra_classes=("confused", "bored"))
    os.mkfifo(faces / "train" / "happy" / "stuck.png")
    out = tmp_path / "runs"
    r = run("fer_core.train", "--data", faces, "--out", out, "--name", "r", "--val-split", "test", *QUICK)
    assert r.returncode == 0, r.stderr
    assert "SkippedDataWarning" in r.stderr and "20 image(s) in 2 folder(s)" in r.stderr, r.stderr
    cfg = json.loads((out / "r" / "config.json").read_text())
    assert cfg["data"]["train_size"] == 70
    assert cfg["data"]["skipped"]["train"] == {"unknown_class_folders": {"bored": 10, "confused": 10},
                                               "not_regular_files": 1}
    assert cfg["data"]["skipped"]["test"] == {"unknown_class_folders": {"bored": 5, "confused": 5}}
    assert "20 image(s) in 2 folder(s)" in (out / "r" / "train.log").read_text()


# ----------------------------------------------------------------------------------------------
# class 5: silent data drops


def test_csv_rows_without_usage_are_counted_and_recorded(tmp_path):
    csv = tmp_path / "fer2013.csv"
    lines = ["emotion,pixels,Usage"]
    x, y = synthetic_faces(84, 5)
    for i in range(84):
        usage = "Training" if i < 70 else "PublicTest"
        lines.append(f"{y[i]},{' '.join(map(str, x[i].ravel()))},{usage}")
    lines.append(f"3,{ROW}")  # no Usage field at all
    lines.append(f"3,{ROW},Trainnig")  # a Usage that is no FER2013 split
    csv.write_text("\n".join(lines) + "\n")
    with pytest.warns(SkippedDataWarning, match="2 CSV row"):
        fs = load_split(csv, "train", cache=False)
    assert len(fs) == 70 and fs.skipped == {"rows_without_usage": 2}
    out = tmp_path / "runs"
    r = run("fer_core.train", "--data", csv, "--out", out, "--name", "c", *QUICK)
    assert r.returncode == 0, r.stderr
    assert "2 CSV row(s) without a Usage" in r.stderr, r.stderr
    cfg = json.loads((out / "c" / "config.json").read_text())
    assert cfg["data"]["skipped"] == {"train": {"rows_without_usage": 2}, "public_test": {"rows_without_usage": 2}}


def test_skipped_counts_survive_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    faces = write_folder(tmp_path / "faces", per_class=1, test_per_class=1, extra_classes=("meh",))
    for _ in range(2):  # decoded, then read from the cache: the same warning and counts
        with pytest.warns(SkippedDataWarning, match="1 image"):
            fs = load_split(faces, "train")
        assert fs.skipped == {"unknown_class_folders": {"meh": 1}}


# ----------------------------------------------------------------------------------------------
# class 3: a source's size is checked from stat before it is read


@pytest.mark.parametrize("name,limit", [("big.csv", "MAX_CSV_BYTES"), ("big.npz", "MAX_NPZ_BYTES"),
                                        ("big.zip", "MAX_ZIP_BYTES")])
def test_huge_sparse_sources_are_refused_from_stat(tmp_path, name, limit):
    big = sparse(tmp_path / name, getattr(sources, limit) + 1)
    with pytest.raises(DataError, match="byte limit") as e:
        check_data_source(big, [tmp_path])
    assert "\n" not in str(e.value)
    one_line_error(run("fer_core.train", "--data", big, "--out", tmp_path / "runs", *QUICK), name, "byte limit")


def test_sidebar_refuses_a_huge_sparse_file_inside_a_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    sparse(root / "fer2013.csv", 20 * sources.MAX_CSV_BYTES)
    at = app(tmp_path, monkeypatch, root)
    at.session_state["data_source"] = str(root / "fer2013.csv")
    at.run()
    no_exception(at)
    errors = [e.value for e in at.sidebar.error]
    assert any("byte limit for a CSV data source" in e for e in errors), errors


def test_expanded_sizes_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_CSV_BYTES", 10_000)
    gz = tmp_path / "fer2013.csv.gz"
    gz.write_bytes(gzip.compress(("emotion,pixels,Usage\n" + f"3,{ROW},Training\n" * 5).encode()))
    assert gz.stat().st_size < 10_000
    with pytest.raises(DataError, match="expands to more than 10,000 bytes"):
        load_split(gz, "train", cache=False)
    monkeypatch.setattr(sources, "MAX_NPZ_BYTES", 100_000)
    npz = tmp_path / "zeros.npz"
    np.savez_compressed(npz, train_x=np.zeros((100, 48, 48), np.uint8), train_y=np.zeros(100, np.int64))
    assert npz.stat().st_size < 100_000
    with pytest.raises(DataError, match="expand to .* above the 100,000 byte limit"):
        load_split(npz, "train", cache=False)


def test_zip_member_count_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_WALK_ENTRIES", 20)
    buf = io.BytesIO()
    png = io.BytesIO()
    Image.new("L", (48, 48)).save(png, format="PNG")
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(30):
            z.writestr(f"train/happy/{i}.png", png.getvalue())
    (tmp_path / "faces.zip").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="more than 20 members"):
        load_split(tmp_path / "faces.zip", "train", cache=False)
