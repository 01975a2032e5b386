"""The Train page's runs table, progress line, curve smoothing and parallel-coordinates axes (fer_core.runtable),
on run folders written as the trainer writes them, with answers worked out by hand."""
from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime

import pandas as pd
import pytest

from fer_core import runtable
from fer_core.config import TrainConfig
from fer_core.runfiles import CONFIG_FORMAT, METRICS_FILE, RUN_CONFIG, STATUS_FILE, append_jsonl, write_json
from fer_core.runstate import read_run

STARTED = "2026-12-01T10:00:00+00:00"


def make_run(root, name, cfg: TrainConfig, status: dict, metrics=()):
    """A run folder as the trainer leaves it: config.json, status.json, metrics.jsonl."""
    run = root / name
    run.mkdir(parents=True)
    write_json(run / RUN_CONFIG, {"format_version": CONFIG_FORMAT, "hyperparameters": asdict(cfg),
                                  "model_name": cfg.model, "data": {"train_size": 1201}}, fsync=False)
    write_json(run / STATUS_FILE, status, fsync=False)
    for m in metrics:
        append_jsonl(run / METRICS_FILE, m)
    return read_run(run)


def epoch(e, val_acc, **more):
    return {"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.2, "val_acc": val_acc,
            "seconds": 40.0, "train_seconds": 35.0, **more}


@pytest.fixture
def finished(tmp_path):
    cfg = TrainConfig(model="mini_cnn", optimizer="sgd", bn_lr=4.0, lr=0.05, rotation=10.0, zoom=0.1, shift=0.1,
                      erase=0.5, mixup=0.2, ema=0.99, tta=True, teacher="checkpoints/fer_best.pt, runs/a/best.pt",
                      max_train_samples=1200, label_smoothing=0.1, val_split="holdout", epochs=2)
    status = {"state": "completed", "epoch": 2, "epochs": 2, "elapsed": 90.0, "started": STARTED, "device": "cpu",
              "images_per_s": 512.0}
    return make_run(tmp_path, "full", cfg, status, [epoch(1, 0.5), epoch(2, 0.625)])


def test_a_finished_runs_row(finished):
    row = runtable.run_row(finished)
    assert row["run"] == "full" and row["state"] == "completed" and row["epoch"] == "2/2"
    assert row["best val acc"] == 0.625 and row["duration (min)"] == 1.5 and row["images/s"] == 512.0
    assert row["augmentation"] == "rot 10 zoom 0.1 shift 0.1 flip erase 0.5 mixup 0.2"
    assert row["optimizer"] == "sgd · BN lr x4" and row["lr"] == 0.05 and row["smoothing"] == 0.1
    assert row["teacher"] == "fer_best.pt, best.pt (alpha 0.5, T 4)"
    assert row["averaging"] == "EMA 0.99 · flip TTA" and row["samples"] == "1,200"
    assert row["val split"] == "holdout" and row["device"] == "cpu" and row["unreadable"] == "-"
    local = datetime.fromtimestamp(datetime.fromisoformat(STARTED).timestamp())
    assert row["started"] == local.strftime("%Y-%m-%d %H:%M")


def test_the_row_of_a_run_that_never_trained_has_gaps_not_none(tmp_path):
    r = make_run(tmp_path, "new", TrainConfig(model="mini_cnn", augment=False), {"state": "queued"})
    row = runtable.run_row(r)
    assert row["state"] == "stale"  # queued, with no process recorded
    assert math.isnan(row["duration (min)"])
    assert math.isnan(row["best val acc"]) and math.isnan(row["images/s"])
    assert row["augmentation"] == "off" and row["teacher"] == "-" and row["averaging"] == "-"
    assert row["optimizer"] == "adam" and row["samples"] == "all" and row["started"] == "-"
    assert runtable.augmentation_text({"augment": False, "cutmix": 1.0}) == "off cutmix 1"  # mixing is not per face


def test_filter_sort_and_number_columns(finished, tmp_path):
    never = make_run(tmp_path, "never-vgg", TrainConfig(model="seed_vgg"), {"state": "queued"})
    table = pd.DataFrame([runtable.run_row(r) for r in (finished, never)])
    assert list(runtable.select_rows(table, "VGG")["run"]) == ["never-vgg"]  # any column, any case
    assert list(runtable.select_rows(table, states=["completed"])["run"]) == ["full"]
    by_acc = runtable.select_rows(table, sort_by="best val acc", descending=True)
    assert list(by_acc["run"]) == ["full", "never-vgg"]  # the missing number last, either way
    assert list(runtable.select_rows(table, sort_by="best val acc", descending=False)["run"]) == ["full", "never-vgg"]
    shown, numeric = runtable.format_numbers(table)
    # gaps: best val acc, duration, images/s become text with "-"; lr and smoothing are complete and stay numbers
    assert numeric == ["lr", "smoothing"]
    assert list(shown["best val acc"]) == ["62.5%", "-"] and list(shown["images/s"]) == ["512", "-"]
    assert list(shown["duration (min)"]) == ["1.5", "-"] and shown["lr"].tolist() == [0.05, 0.001]
    assert not shown.isna().any().any()
    whole, numeric = runtable.format_numbers(table.iloc[:1])
    assert numeric == list(runtable.NUMBER_FORMATS) and whole["best val acc"].tolist() == [0.625]


def test_progress_line_within_an_epoch(tmp_path):
    status = {"state": "completed", "epoch": 1, "epochs": 4, "elapsed": 125.0, "images_per_s": 1500.0,
              "progress": {"epoch": 2, "step": 5, "steps": 20}}
    r = make_run(tmp_path, "part", TrainConfig(model="mini_cnn", epochs=4), status, [epoch(1, 0.4)])
    # not running: the epoch in progress is not shown, no ETA
    assert runtable.progress_line(r) == (0.25, "epoch 1/4 · 1,500 images/s · elapsed 2m 05s")
    r.state = "running"  # as the live panel sees a running run: a quarter of epoch 2 done
    r.status.pop("updated_ts", None)
    frac, text = runtable.progress_line(r)
    assert frac == pytest.approx(1.25 / 4)
    assert text.startswith("epoch 1/4 · epoch 2: step 5/20 · 1,500 images/s · elapsed 2m 05s · ETA ")


def test_smoothing_is_debiased_and_keeps_gaps():
    assert runtable.smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # no pull towards zero
    # weight 0.5: EMA 0, 0.5, then 0.5 / (1 - 0.25) = 2/3 after debiasing; a NaN stays a gap and is skipped
    assert runtable.smooth([0.0, 1.0], 0.5) == pytest.approx([0.0, 2 / 3])
    out = runtable.smooth([0.0, float("nan"), 1.0, None], 0.5)
    assert out[0] == 0.0 and math.isnan(out[1]) and out[2] == pytest.approx(2 / 3) and math.isnan(out[3])
    assert runtable.smooth([3.0, 5.0], 0.0) == [3.0, 5.0]


def test_curves_and_parallel_coordinates(finished, tmp_path):
    other = make_run(tmp_path, "other", TrainConfig(model="seed_vgg", optimizer="adam", lr=1e-3, augment=False,
                                                    rotation=30.0, batch_size=32),
                     {"state": "completed", "epoch": 1, "epochs": 1}, [epoch(1, 0.3, lr=0.01)])
    assert runtable.logged_metrics([finished, other]) == ["lr", "seconds", "train_acc", "train_loss",
                                                          "train_seconds", "val_acc", "val_loss"]
    assert runtable.metric_curve(finished.metrics, "val_acc") == ([1, 2], [0.5, 0.625])
    xs, ys = runtable.metric_curve(finished.metrics, "lr")  # not logged by this run: gaps
    assert xs == [1, 2] and all(math.isnan(y) for y in ys)
    dims = {d["label"]: d for d in runtable.parcoords_dims([finished, other])}
    assert dims["model"]["ticktext"] == ["mini_cnn", "seed_vgg"] and dims["model"]["values"] == [0, 1]
    assert dims["optimizer"]["ticktext"] == ["adam", "sgd"] and dims["optimizer"]["values"] == [1, 0]
    assert dims["log10 lr"]["values"] == pytest.approx([math.log10(0.05), -3.0])
    assert dims["rotation"]["values"] == [10.0, 0.0]  # augmentation off: no rotation
    assert dims["train faces"]["values"] == [1200.0, 1201.0]  # all faces: the config's train_size
    assert dims["best val acc"]["values"] == [0.625, 0.3] and dims["batch"]["values"] == [64.0, 32.0]


AGREED = "real photos where two annotators agree"


def photos(acc, set_name=AGREED, n=108):
    return {"photo_evaluation": {"set": set_name, "photos": n, "accuracy": acc, "macro_f1": 0.5, "precision": "fp32"}}


def test_photo_advice_names_the_clearly_better_shipped_model_on_the_same_photos():
    metas = {"best.pt": photos(0.5833), "cpu.pt": photos(0.713), "seed.pt": photos(0.7037),
             "other.pt": photos(0.9, "LFW"), "user.pt": {}}
    path, text = runtable.photo_advice("best.pt", metas, label=lambda p: p.upper())
    assert path == "cpu.pt"  # the highest on the same 108 photos; other.pt was measured on other photos
    assert text.startswith("On real photos, CPU.PT is more accurate than the active model: 71.3% against 58.3% on 108 "
                           + AGREED)
    # within one standard error of 108 photos (0.9 points here): nobody is pointed anywhere
    assert runtable.photo_advice("seed.pt", metas) is None
    assert runtable.photo_advice("cpu.pt", metas) is None  # the best measured
    assert runtable.photo_advice("user.pt", metas) is None  # never measured: nothing to compare
    assert runtable.photo_advice("missing.pt", metas) is None
    # the margin is inclusive, whatever floats make of 0.75 - 0.70
    assert runtable.photo_advice("a", {"a": photos(0.70), "b": photos(0.75)})[0] == "b"
    assert runtable.photo_advice("a", {"a": photos(0.70), "b": photos(0.7499)}) is None


@pytest.mark.parametrize("bad", [None, "0.7", {"set": AGREED, "photos": 108},
                                 {"set": AGREED, "photos": 108, "accuracy": "x"},
                                 {"set": AGREED, "photos": 0, "accuracy": 0.9},
                                 {"set": AGREED, "photos": 108, "accuracy": 1.5},
                                 {"set": 3, "photos": 108, "accuracy": 0.9},
                                 {"set": AGREED, "photos": True, "accuracy": 0.9},
                                 {"set": AGREED, "photos": 108, "accuracy": True}])
def test_a_malformed_photo_evaluation_counts_as_unmeasured(bad):
    metas = {"a": photos(0.5), "b": {"photo_evaluation": bad}}
    assert runtable.photo_score(metas["b"]) is None and runtable.photo_line(metas["b"]) is None
    assert runtable.photo_advice("a", metas) is None and runtable.photo_advice("b", {**metas, "c": photos(0.9)}) is None


def test_photo_line_says_what_was_measured():
    assert runtable.photo_line(photos(0.5833)) == (f"On real photos: 58.3% of 108 {AGREED} (the default face crop, "
                                                   "single pass, fp32).")
    assert runtable.photo_line({}) is None
