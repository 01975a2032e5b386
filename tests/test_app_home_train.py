"""AppTests of the dashboard shell, the Home page and the Train page (real training processes on tiny data)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import fer_core
from fer_core import runfiles, runs, runstate
from tests.conftest import shown

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    monkeypatch.setenv("FER_RUNS_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def small_checkpoint(synth_npz, tmp_path_factory):
    """best.pt of a tiny mini_cnn trained for real for one epoch (seconds)."""
    from fer_core.train import TrainConfig, train

    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 8}, epochs=1, batch_size=32,
                      max_train_samples=140, augment=False, normalize="global", device="cpu", seed=0)
    return train(cfg, out_dir=str(tmp_path_factory.mktemp("home-runs")), run_dir="small") / "best.pt"


@pytest.fixture
def app(runs_dir):
    return AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)


def texts(at, kind):
    return [shown(e.value) for e in getattr(at, kind)]


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def train_page(at, data):
    at.switch_page("views/train.py").run()
    no_exception(at)
    at.button(key="tr_preset_quick").click().run()
    at.text_input(key="tr_data").input(str(data))
    at.text_input(key="tr_model_args").input('{"width": 8}')
    at.number_input(key="tr_batch_size").set_value(32)
    at.number_input(key="tr_max_train_samples").set_value(140)
    at.checkbox(key="tr_augment").uncheck()
    return at


def launch(at):
    at.button(key="FormSubmitter:train_form-Launch run").click().run()
    no_exception(at)
    assert not texts(at, "error"), texts(at, "error")
    assert any("Launched" in s for s in texts(at, "success"))


def run_badge(at):
    return next(m for m in texts(at, "markdown") if "-badge[" in m)


def poll(at, pred, timeout=90, what=""):
    end = time.time() + timeout
    while time.time() < end:
        at.run()
        no_exception(at)
        if pred(at):
            return at
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {run_badge(at)}\n{[c.value for c in at.code]}")


def test_home_shows_the_model_card_data_summary_and_links(app, small_checkpoint, synth_npz):
    tiny_checkpoint = small_checkpoint
    app.session_state["active_checkpoint"] = str(tiny_checkpoint)
    app.session_state["data_source"] = str(synth_npz)
    at = app.run()
    no_exception(at)
    assert at.sidebar.selectbox(key="_sb_checkpoint").value == str(tiny_checkpoint)
    assert at.sidebar.text_input(key="_sb_data").value == str(synth_npz)
    model, _ = fer_core.load_model(tiny_checkpoint)
    card = {m.label: shown(m.value) for m in at.metric}
    assert card["Architecture"] == "mini_cnn"
    assert card["Parameters"] == f"{fer_core.count_parameters(model):,}"
    # a run's checkpoint has no stored evaluation: its validation accuracy at training, labelled as such
    assert card["Accuracy"] == f"{model.checkpoint['metrics']['val_acc']:.1%}"
    assert "With flip TTA" not in card
    config = at.dataframe[0].value.set_index("option")["value"]
    assert config["epochs"] == "1" and config["max_train_samples"] == "140" and config["normalize"] == "global"
    summary = " ".join(texts(at, "markdown"))
    # each split once (synth_npz has no val: no repeated test), named with the FER2013 split it holds
    assert "**train**: 700 faces" in summary and "**test (PublicTest)**: 210 faces" in summary
    assert "val" not in summary
    assert len(at.get("plotly_chart")) == 1
    # "start here": every view once, with the question it answers, the analysis views first
    from app_common import PAGES

    links = [p.proto.label for p in at.get("page_link")]
    assert links[0] == "Confusion Matrix" and sorted(links) == sorted(
        t for f, t, _, _ in PAGES if f != "views/home.py")
    assert "Start here" in [h.value for h in at.subheader]
    assert any("mix up" in c.value for c in at.caption)


def test_home_headline_numbers_come_from_the_checkpoint(app):
    """The shipped model's card: the numbers stored in the file by scripts/stamp_evaluation.py (the README's)."""
    at = app.run()
    no_exception(at)
    fp32 = fer_core.load_model(ROOT / "checkpoints" / "fer_best.pt")[0].checkpoint["evaluation"]
    # Home shows the numbers of the precision this CPU predicts in (bf16 where native), as Confusion Matrix does
    from fer_core.inference import inference_precision

    prec = inference_precision("cpu")
    assert fp32["precision"] == "fp32" and set(fp32["bf16"]) >= {"accuracy", "tta_accuracy", "macro_f1"}
    ev = {**fp32, **fp32[prec]} if prec != "fp32" else fp32
    card = {m.label: shown(m.value) for m in at.metric}
    assert card["Architecture"] == "vgg_bn"
    assert card["Accuracy"] == f"{ev['accuracy']:.1%}" and card["With flip TTA"] == f"{ev['tta_accuracy']:.1%}"
    assert card["Macro F1"] == f"{ev['macro_f1']:.3f}"
    readme = (ROOT / "README.md").read_text()
    assert f"**{fp32['accuracy']:.1%} on FER2013 PublicTest, {fp32['tta_accuracy']:.1%} with flip TTA**" in readme
    if prec != "fp32":
        assert any(f"in fp32 the same file reads {fp32['accuracy']:.1%}" in c.value for c in at.caption)
    assert not any(v in (None, "None") for v in at.dataframe[0].value["value"])


def test_provenance_says_what_a_checkpoint_was_trained_for_and_on_what():
    """Home's line under the card, from a hand-made checkpoint's fields (a known answer), and nothing invented
    for a file that stores none of them."""
    from fer_core.runtable import provenance

    meta = {"notes": "the default for real photos.", "epoch": 50, "elapsed": 5400.0, "hardware": "2-core CPU",
            "train_config": {"epochs": 50, "val_split": "holdout", "teacher": "checkpoints/a.pt, runs/x/best.pt"}}
    assert provenance(meta) == ("the default for real photos. Trained for 50 epochs on FER2013 Training less a "
                                "held-out tenth (holdout), validated on that tenth, distilled from a.pt, best.pt. "
                                "Hardware: 2-core CPU in 90 minutes.")
    assert provenance({"epoch": 3, "train_config": {"epochs": 3, "val_split": "public_test", "teacher": None}}) == (
        "Trained for 3 epochs on FER2013 Training, validated on PublicTest.")
    assert provenance({}) == ""


def test_home_says_what_the_default_model_was_trained_for(app):
    at = app.run()
    no_exception(at)
    meta = fer_core.load_model(ROOT / "checkpoints" / "fer_best.pt")[0].checkpoint
    from fer_core.runtable import photo_line, provenance

    want = f"{provenance(meta)} {photo_line(meta)}"  # and its stamped score on the 108 agreed real photos
    assert meta["hardware"] in want and "On real photos: 58.3% of 108 real photos where two annotators agree" in want
    # shown as escaped text: the caption's value is the Markdown source, so compare with the escapes removed
    assert any(re.sub(r"\\(.)", r"\1", c.value) == want for c in at.caption)


def test_bad_data_source_and_bad_checkpoint_give_messages_not_tracebacks(app, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    app.session_state["active_checkpoint"] = str(broken)
    app.session_state["data_source"] = str(tmp_path / "nope.zip")
    at = app.run()
    no_exception(at)
    assert any("no such file" in e and "bundled sample" in e for e in texts(at.sidebar, "error"))
    assert any("Cannot load the active checkpoint" in e and "broken.pt" in e for e in texts(at, "error"))
    assert "**test (PublicTest)**: 656 faces" in " ".join(texts(at, "markdown"))  # fell back to the sample


def test_sidebar_choices_persist_across_pages(app, synth_npz):
    at = app.run()
    at.sidebar.text_input(key="_sb_data").input(str(synth_npz)).run()
    assert at.session_state["data_source"] == str(synth_npz)
    at.switch_page("views/train.py").run()
    no_exception(at)
    assert at.sidebar.text_input(key="_sb_data").value == str(synth_npz)
    assert any(c.value.startswith("Device:") for c in at.sidebar.caption)


def test_train_refuses_a_source_without_train_split_and_offers_only_real_devices(app, runs_dir, synth_npz,
                                                                                   tmp_path):
    from tests.conftest import synthetic_faces, write_npz

    test_only = write_npz(tmp_path / "test_only.npz", {"test": synthetic_faces(70, 3)})
    at = app.run()
    at.switch_page("views/train.py").run()
    no_exception(at)
    assert at.text_input(key="tr_data").value.endswith("fer2013_sample.npz")  # the quick check's data
    devices = at.selectbox(key="tr_device").options
    assert ("cuda" in devices) == torch.cuda.is_available() and "cpu" in devices
    at.text_input(key="tr_data").input(str(test_only))
    at.button(key="FormSubmitter:train_form-Launch run").click().run()
    no_exception(at)
    assert any("has no train split" in e for e in texts(at, "error"))
    at.text_input(key="tr_data").input(str(synth_npz))
    at.text_input(key="tr_model_args").input("[8]")
    at.button(key="FormSubmitter:train_form-Launch run").click().run()
    no_exception(at)
    assert any("must be a JSON object" in e for e in texts(at, "error"))
    assert runstate.list_runs(runs_dir) == []
    assert any("No runs yet" in i for i in texts(at, "info"))


def test_train_launches_a_quick_run_watches_it_finish_and_uses_it(app, runs_dir, synth_npz):
    at = train_page(app.run(), synth_npz)
    at.number_input(key="tr_epochs").set_value(2)
    at.text_input(key="tr_name").input("quick")
    launch(at)
    assert at.selectbox(key="tr_run").value == "quick"
    assert (runs_dir / "quick" / "status.json").exists()  # the run directory is the source of truth
    poll(at, lambda a: ":green-badge[completed]" in run_badge(a), what="the run to complete")
    assert "epoch 2/2" in at.get("progress")[0].proto.text
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Best val acc"].endswith("%")
    assert any("completed 2 epochs" in c.value for c in at.code)  # the log tail
    table = at.dataframe[0].value
    row = table.set_index("run").loc["quick"]
    assert row["state"] == "completed" and row["model"] == "mini_cnn" and row["epoch"] == "2/2"
    assert row["batch"] == 32 and row["samples"] == "140" and 0 <= row["best val acc"] <= 1
    assert row["val split"] == "public_test"  # what its best val acc was measured on
    assert at.multiselect(key="tr_compare").value == ["quick"]
    assert len(at.get("plotly_chart")) == 2  # live curves and the overlay
    at.button(key="tr_use").click().run()
    no_exception(at)
    best = str(runs_dir / "quick" / "best.pt")
    assert at.session_state["active_checkpoint"] == best
    assert at.sidebar.selectbox(key="_sb_checkpoint").value == best
    at.switch_page("views/home.py").run()
    no_exception(at)
    assert {m.label: shown(m.value) for m in at.metric}["Architecture"] == "mini_cnn"


def test_every_field_set_in_the_form_reaches_the_run_config(app, runs_dir, synth_npz):
    """Form -> launch -> trainer -> config.json, field by field: a field with no widget, or one dropped on the
    way, fails here (non_default_config asks for a value of every TrainConfig field)."""
    import json
    from dataclasses import fields

    from fer_core.config import TrainConfig, options
    from tests.conftest import non_default_config

    requested = non_default_config(synth_npz)
    at = app.run()
    at.switch_page("views/train.py").run()
    no_exception(at)
    for o in options():
        key, v = "tr_" + o.name, requested[o.name]
        if o.kind == "bool":
            at.checkbox(key=key).set_value(v)
        elif o.choices or o.name == "device":
            at.selectbox(key=key).set_value(v)
        elif o.kind in ("int", "float"):
            at.number_input(key=key).set_value(v)
        else:
            at.text_input(key=key).input(json.dumps(v) if o.kind == "json" else v)
    at.text_input(key="tr_name").input("every-field")
    launch(at)
    run = runs_dir / "every-field"
    assert runs.wait(run, timeout=120).state == "completed", runfiles.log_tail(run)
    hp = json.loads((run / "config.json").read_text())["hyperparameters"]
    for f in fields(TrainConfig):
        assert hp[f.name] == requested[f.name], f.name


def test_train_stop_resume_buttons_and_delete(app, runs_dir, synth_npz):
    at = train_page(app.run(), synth_npz)
    at.number_input(key="tr_epochs").set_value(200)
    at.text_input(key="tr_name").input("long")
    launch(at)
    poll(at, lambda a: ":blue-badge[running]" in run_badge(a), what="the run to start")
    # stop once an epoch has been saved (last.pt), so Resume has something to resume from
    poll(at, lambda a: runstate.read_run(runs_dir / "long").epoch >= 1, what="the first epoch")
    at.button(key="tr_stop").click().run()
    no_exception(at)
    poll(at, lambda a: ":orange-badge[stopped]" in run_badge(a), what="the run to stop")
    r = runstate.read_run(runs_dir / "long")
    assert r.state == "stopped" and 1 <= r.epoch < 200 and r.resumable
    assert at.dataframe[0].value.set_index("run").loc["long", "state"] == "stopped"
    # Resume, clicked: the same run trains on from its checkpoint, not from epoch 0
    stopped_at = r.epoch
    at.button(key="tr_resume").click().run()
    no_exception(at)
    poll(at, lambda a: runstate.read_run(runs_dir / "long").epoch > stopped_at, timeout=120,
         what="the resumed run's next epoch")
    epochs = [m["epoch"] for m in runfiles.read_metrics(runs_dir / "long")]
    assert epochs == list(range(1, len(epochs) + 1)), epochs  # one history, continued: no epoch repeated
    at.button(key="tr_stop").click().run()
    poll(at, lambda a: ":orange-badge[stopped]" in run_badge(a), what="the resumed run to stop")
    at.button(key="tr_delete").click().run()
    assert any("cannot be undone" in w for w in texts(at, "warning"))
    assert (runs_dir / "long").exists()  # not before the confirmation
    at.button(key="tr_delete_yes").click().run()
    no_exception(at)
    assert not (runs_dir / "long").exists()
    assert any("No runs yet" in i for i in texts(at, "info"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only default")
def test_a_cpu_machine_starts_from_the_cpu_recipe_with_a_measured_estimate(app, runs_dir, user_settings):
    from fer_core.recipes import RECIPES

    at = app.run()
    at.switch_page("views/train.py").run()
    no_exception(at)
    cpu = RECIPES["cpu"]
    assert at.selectbox(key="tr_model").value == cpu["model"] == "vgg_bn"
    assert json.loads(at.text_input(key="tr_model_args").value) == cpu["model_args"]
    assert at.number_input(key="tr_epochs").value == cpu["epochs"] and at.checkbox(key="tr_cpu_fast").value
    assert at.text_input(key="tr_data").value.endswith("fer2013_sample.npz")  # no full data known yet
    est = [c.value for c in at.caption if c.value.startswith("Estimated duration here")]
    assert len(est) == 1 and ("14 epochs (the first 7 growing from 32 to 48 pixels) of vgg_bn on 1,201 training "
                              "faces (+ 656 validated") in est[0]
    rates = [float(x.replace(",", "")) for x in re.findall(r"([0-9,]+) (?:training|validation) images/s", est[0])]
    assert len(rates) == 2 and all(r > 0 for r in rates), est[0]
    # another preset, another model: a new estimate from a new measurement
    at.button(key="tr_preset_quick").click().run()
    est2 = [c.value for c in at.caption if c.value.startswith("Estimated duration here")]
    assert len(est2) == 1 and "of mini_cnn" in est2[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only default")
def test_distilled_cpu_preset_names_the_shipped_teachers_and_times_their_logits(app, runs_dir, user_settings):
    """The distilled CPU recipe's preset: its teachers as absolute paths to the shipped checkpoints (found from any
    working folder), and the estimate adds their pass over every training face and its mirror."""
    from fer_core.recipes import RECIPES

    at = app.run()
    at.switch_page("views/train.py").run()
    at.button(key="tr_preset_photo").click().run()
    no_exception(at)
    teachers = at.text_input(key="tr_teacher").value.split(",")
    assert teachers == [str(ROOT / p) for p in RECIPES["photo"]["teacher"].split(",")]
    assert all(Path(t).is_absolute() and Path(t).is_file() for t in teachers)
    assert json.loads(at.text_input(key="tr_model_args").value) == {"width": 48}
    est = [c.value for c in at.caption if c.value.startswith("Estimated duration here")]
    assert len(est) == 1 and "the 2 teachers compute their logits of every training face and its mirror" in est[0]
    rates = re.findall(r"(fer_best\.pt|fer_cpu\.pt) ([0-9,]+) faces/s", shown(est[0]))
    assert [r[0] for r in rates] == ["fer_best.pt", "fer_cpu.pt"] and all(float(r[1].replace(",", "")) > 0
                                                                           for r in rates), est[0]
    # back to the plain CPU recipe: no teacher, no teachers' pass in the estimate
    at.button(key="tr_preset_cpu").click().run()
    assert at.text_input(key="tr_teacher").value == ""
    est = [c.value for c in at.caption if c.value.startswith("Estimated duration here")]
    assert len(est) == 1 and "teacher" not in est[0]


def test_quick_check_trains_on_the_bundled_sample_out_of_the_box(app, runs_dir, user_settings):
    # a fresh checkout: no data anywhere but the repository; the quick check needs nothing else
    at = app.run()
    at.switch_page("views/train.py").run()
    no_exception(at)
    at.button(key="tr_preset_quick").click().run()
    sample = ROOT / "samples" / "fer2013_sample.npz"
    assert at.text_input(key="tr_data").value == str(sample)
    assert any("measured by the first run" in c.value for c in at.caption)  # no duration claimed before
    at.number_input(key="tr_epochs").set_value(1)  # the preset's model, data and sizes, one epoch to be quick
    at.text_input(key="tr_name").input("qc")
    launch(at)
    poll(at, lambda a: ":green-badge[completed]" in run_badge(a), timeout=240, what="the quick check")
    r = runstate.read_run(runs_dir / "qc")
    assert r.config["data"]["source"] == str(sample.resolve()) and r.config["data"]["train_size"] == 1201
    assert r.config["data"]["val_size"] == 656 and r.hyperparameters["model"] == "mini_cnn"
    # the next estimate is measured from this run (on the next rerun: the form reads the runs before the panel
    # does, so the rerun that first shows "completed" may have read them before the run ended)
    at.run()
    assert any("on this machine" in c.value and "measured by run qc" in c.value for c in at.caption)
    assert "train_data" not in runs_settings(user_settings)  # the sample is not remembered as "full data"


def runs_settings(path):
    import json

    return json.loads(path.read_text()) if path.exists() else {}


def test_data_paths_are_remembered_across_sessions(runs_dir, synth_npz, user_settings):
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    at.sidebar.text_input(key="_sb_data").input(str(synth_npz)).run()
    no_exception(at)
    assert runs_settings(user_settings)["data_source"] == str(synth_npz)
    at = train_page(at, synth_npz)
    at.number_input(key="tr_epochs").set_value(1)
    launch(at)
    assert runs_settings(user_settings)["train_data"] == str(synth_npz)
    # a new session (another browser tab, a restart) starts from the remembered paths
    again = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60).run()
    no_exception(again)
    assert again.sidebar.text_input(key="_sb_data").value == str(synth_npz)
    again.switch_page("views/train.py").run()
    # the machine's default recipe (cpu here, best with a GPU) starts on the remembered full data
    assert again.text_input(key="tr_data").value == str(synth_npz)
    again.button(key="tr_preset_quick").click().run()
    assert again.text_input(key="tr_data").value.endswith("fer2013_sample.npz")  # the quick check's data
    again.button(key="tr_preset_best").click().run()
    assert again.text_input(key="tr_data").value == str(synth_npz)  # full recipes start on the full data
    runs.wait(next(iter(runstate.list_runs(runs_dir))).path, timeout=120)


def agree(at):
    """The run picker, the live panel and the runs table tell the same state and epoch; returns the state."""
    name = at.selectbox(key="tr_run").value
    label = next(o for o in at.selectbox(key="tr_run").options if o.startswith(name + " ("))
    badge = run_badge(at)
    state = badge.split("-badge[", 1)[1].split("]", 1)[0]
    bar = at.get("progress")[0].proto.text
    row = at.dataframe[0].value.set_index("run").loc[name]
    assert label == f"{name} ({state} {row['epoch']})", (label, badge, row["epoch"])
    assert row["state"] == state and bar.startswith(f"epoch {row['epoch']}"), (badge, bar, dict(row))
    return state


@pytest.fixture
def stop_runs_after(runs_dir):
    """A long run must not outlive its test, even a failed one."""
    yield
    for r in runstate.list_runs(runs_dir):
        if r.active:
            runs.stop(r.path)
            runs.wait(r.path, timeout=60)


def test_picker_panel_and_table_agree_at_every_poll_and_resume_is_quiet(app, runs_dir, synth_npz, stop_runs_after,
                                                                         monkeypatch):
    # 700 faces in batches of 8 train in 0.76-0.82 s per epoch on an idle 2-core EPYC, under the default 1 s between
    # in-epoch updates, so the launched trainer (it inherits the environment) reports every 0.05 s here
    monkeypatch.setenv("FER_PROGRESS_EVERY", "0.05")
    at = train_page(app.run(), synth_npz)
    at.number_input(key="tr_epochs").set_value(200)
    at.number_input(key="tr_max_train_samples").set_value(700)
    at.number_input(key="tr_batch_size").set_value(8)
    at.text_input(key="tr_name").input("agree")
    launch(at)
    states = [agree(at)]
    in_epoch = False
    end = time.time() + 120
    while time.time() < end and not (in_epoch and runstate.read_run(runs_dir / "agree").epoch >= 1):
        time.sleep(0.4)
        at.run()
        no_exception(at)
        states.append(agree(at))
        in_epoch = in_epoch or "step " in at.get("progress")[0].proto.text
    assert "running" in states and in_epoch, states
    bar = at.get("progress")[0].proto.text
    assert "images/s" in bar and "ETA" in bar and "elapsed" in bar
    at.button(key="tr_stop").click().run()
    poll(at, lambda a: agree(a) == "stopped", what="the run to stop")
    if not runstate.read_run(runs_dir / "agree").resumable:
        return
    at.button(key="tr_resume").click().run()
    no_exception(at)
    assert not any("already training" in w for w in texts(at, "warning")), texts(at, "warning")
    assert agree(at) in ("queued", "running")
    poll(at, lambda a: agree(a) == "running", what="the resumed run")
    at.button(key="tr_stop").click().run()
    poll(at, lambda a: agree(a) == "stopped", what="the resumed run to stop")


def test_runs_table_filters_and_curves_of_any_metric(app, runs_dir, synth_npz):
    for name, lr in (("a-adam", 0.01), ("b-adam", 0.001)):
        run = runs.launch({"data": str(synth_npz), "model": "mini_cnn", "model_args": {"width": 8}, "epochs": 2,
                           "batch_size": 32, "max_train_samples": 140, "augment": False, "normalize": "global",
                           "device": "cpu", "lr": lr, "optimizer": "adam"}, runs_dir, name=name)
        runs.wait(run, timeout=120)
    at = app.run()
    at.switch_page("views/train.py").run()
    no_exception(at)
    table = at.dataframe[0].value
    assert list(table.columns[:6]) == ["run", "state", "epoch", "best val acc", "duration (min)", "images/s"]
    assert set(table["device"]) == {"cpu"} and (table["images/s"] > 0).all() and (table["duration (min)"] > 0).all()
    assert not table.isna().any().any() and not table.astype(str).isin(["None", "nan"]).any().any()
    at.selectbox(key="tr_sort").select("lr").run()
    at.toggle(key="tr_desc").set_value(False).run()
    assert list(at.dataframe[0].value["run"]) == ["b-adam", "a-adam"]  # lr 0.001 before 0.01
    at.text_input(key="tr_filter").input("b-ad").run()
    assert list(at.dataframe[0].value["run"]) == ["b-adam"]
    at.text_input(key="tr_filter").input("").run()
    at.multiselect(key="tr_states").select("failed").run()
    assert len(at.dataframe[0].value) == 0
    at.multiselect(key="tr_states").unselect("failed").run()
    at.multiselect(key="tr_compare").select("a-adam").run()
    assert "images_per_s" in at.selectbox(key="tr_metric").options and at.selectbox(key="tr_metric").value == "val_acc"
    at.selectbox(key="tr_metric").select("train_loss").run()
    at.slider(key="tr_smooth").set_value(0.6).run()
    at.checkbox(key="tr_log").check().run()
    no_exception(at)
    import json

    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    compare = next(f for f in figs if f["layout"].get("yaxis", {}).get("title", {}).get("text") == "train_loss")
    assert compare["layout"]["yaxis"]["type"] == "log" and len(compare["data"]) == 4  # raw + smoothed per run
    assert any(d.get("type") == "parcoords" for f in figs for d in f["data"])  # hyperparameters vs accuracy

def test_runs_table_samples_column_has_one_type(app, runs_dir):
    import json
    import logging

    for name, n in (("sub", 140), ("full", None)):
        d = runs_dir / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"hyperparameters": {"model": "mini_cnn", "max_train_samples": n,
                                                                       "epochs": 1}}))
        (d / "status.json").write_text(json.dumps({"state": "completed", "epoch": 1, "epochs": 1}))
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    log = logging.getLogger("streamlit.dataframe_util")  # where streamlit logs a failed Arrow conversion
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        at = app.run()
        at.switch_page("views/train.py").run()
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    no_exception(at)
    assert at.dataframe[0].value.set_index("run")["samples"].to_dict() == {"sub": "140", "full": "all"}
    assert not [r.getMessage() for r in records if "Arrow" in r.getMessage()]


def test_report_ablations_preset_launches_three_grouped_runs_and_home_reports_them(app, runs_dir, synth_npz):
    """Train: the preset fills in the report recipe and says how long its three runs take here; launched with a
    tiny budget they train for real, differ only in normalization / augmentation, and Home's Report button builds
    the report of the full run with its group: Table 1 from the three."""
    from fer_core.recipes import RECIPES

    at = app.run()
    at.switch_page("views/train.py").run()
    no_exception(at)
    at.button(key="tr_preset_ablations").click().run()
    no_exception(at)
    rep = RECIPES["report"]
    assert at.selectbox(key="tr_model").value == rep["model"] and at.selectbox(key="tr_normalize").value == "pixel"
    assert at.number_input(key="tr_epochs").value == rep["epochs"] and at.checkbox(key="tr_augment").value
    est = [c.value for c in at.caption if c.value.startswith("Estimated duration here")]
    assert len(est) == 1 and "Report ablations (the button beside Launch run)" in est[0]
    one = re.search(r"Estimated duration here: \*\*about ([^*]+)\*\*", est[0]).group(1)
    three = re.search(r"seed 0, 200 epochs each: about \*\*([^*]+)\*\*", est[0]).group(1)
    assert one != three  # three runs' time, from the same measured calibration (not one run's)
    # the same recipe at a tiny budget on the synthetic data
    at.text_input(key="tr_data").input(str(synth_npz))
    at.selectbox(key="tr_model").set_value("mini_cnn")
    at.text_input(key="tr_model_args").input('{"width": 8}')
    at.number_input(key="tr_epochs").set_value(2)
    at.number_input(key="tr_batch_size").set_value(32)
    at.number_input(key="tr_max_train_samples").set_value(140)
    at.text_input(key="tr_name").input("abl")
    at.button(key="FormSubmitter:train_form-Launch report ablations (3 runs)").click().run()
    no_exception(at)
    assert not texts(at, "error"), texts(at, "error")
    names = ["abl-full", "abl-no-normalization", "abl-no-augmentation"]
    assert any(f"Launched {', '.join(names)}" in s for s in texts(at, "success"))
    for n in names:
        assert runs.wait(runs_dir / n, timeout=240).state == "completed", runfiles.log_tail(runs_dir / n)
    hp = {n: json.loads((runs_dir / n / "config.json").read_text())["hyperparameters"] for n in names}
    assert hp["abl-no-normalization"] == {**hp["abl-full"], "normalize": "none"}
    assert hp["abl-no-augmentation"] == {**hp["abl-full"], "augment": False}
    assert hp["abl-full"]["rotation"] == rep["rotation"] and hp["abl-full"]["epochs"] == 2
    # Home: the full run's best.pt is the active model; its group is the report's runs by default
    at.session_state["active_checkpoint"] = str(runs_dir / "abl-full" / "best.pt")
    at.session_state["data_source"] = str(synth_npz)
    at.switch_page("views/home.py").run()
    no_exception(at)
    assert at.multiselect(key="home_report_runs").value == names
    assert not at.get("download_button")
    at.button(key="home_report").click().run()
    no_exception(at)
    assert len(at.get("download_button")) == 1
    html = at.session_state["home_report_html"][1].decode()
    best = {n: runstate.read_run(runs_dir / n).best_val_acc for n in names}
    assert f"<td>{best['abl-no-normalization']:.4f} (abl-no-normalization)</td><td>{best['abl-full']:.4f} (abl-full)" \
           "</td>" in html
    assert f"<td>{best['abl-no-augmentation']:.4f} (abl-no-augmentation)</td>" in html and "missing" not in html
    for sid in ("architecture", "training", "ablations", "confusion", "saliency", "filters"):
        assert f'<section id="{sid}">' in html
