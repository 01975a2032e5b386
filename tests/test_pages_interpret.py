"""AppTest of the Confusion Matrix, Saliency and Filters pages on the tiny model and synthetic data."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT  # noqa: E402

import app_common  # noqa: E402
from fer_core import interpret, load_model, load_split, regions, sources  # noqa: E402
from tests.conftest import shown


@pytest.fixture
def page(tiny_checkpoint, synth_npz, monkeypatch, tmp_path):
    """page(name, **state) -> a run AppTest of pages/<name>.py on the tiny checkpoint and synthetic data."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    # the sidebar lists checkpoints from checkpoints/ and the runs dir: make the tiny run one of them
    monkeypatch.setenv("FER_RUNS_DIR", str(Path(tiny_checkpoint).parent.parent))

    def make(name, **state):
        at = AppTest.from_file(str(ROOT / "views" / f"{name}.py"), default_timeout=60)
        at.session_state["active_checkpoint"] = str(tiny_checkpoint)
        at.session_state["data_source"] = str(synth_npz)
        for k, v in state.items():
            at.session_state[k] = v
        return at.run()

    return make


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def box(at, label_start: str):
    """The selectbox whose label starts so (face and cell pickers are keyed by the checkpoint and data)."""
    return next(s for s in at.selectbox if s.label.startswith(label_start))


def png(face) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face).resize((96, 96)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def preds(tiny_checkpoint, synth_npz):
    model, prep = load_model(tiny_checkpoint)
    return interpret.predictions(model, prep, load_split(synth_npz, "test"), cache=False)


def test_confusion_page_cell_gallery_and_explain(page, preds, tiny_checkpoint):
    at = ok(page("confusion_matrix"))
    assert at.title[0].value == "Confusion Matrix"
    assert len(at.get("plotly_chart")) == 1 and at.metric[0].value == str(len(preds))
    assert not at.image  # no cell chosen yet
    # choose the cell of class 3 (the chart click sets the same selectbox)
    cell = interpret.cell_samples(preds, 3, 3)
    ok(box(at, "Cell").set_value((3, 3)).run())
    assert f"{len(cell)} faces" in at.subheader[0].value
    assert len(at.image) == min(18, len(cell)) and at.image[0].captions[0].startswith(f"#{cell[0]} ")
    # "Explain" stores the face for the Saliency page (switching pages needs the dashboard's navigation)
    ok(at.button(key=f"cm_explain_{cell[1]}").click().run())
    sent = at.session_state["saliency_face"]
    assert sent["index"] == cell[1] and sent["split"] == "test"
    # an empty cell: a message, no gallery
    empty = next((i, j) for i in range(7) for j in range(7) if interpret.cell_samples(preds, i, j).size == 0)
    ok(box(at, "Cell").set_value(empty).run())
    assert any("No face of class" in i.value for i in at.info) and not at.image
    ok(at.radio(key="cm_view").set_value("Row-normalized (recall)").run())


def test_saliency_page_from_confusion_matrix_with_trust_scores(page, preds, synth_npz):
    k = int(interpret.cell_samples(preds, 5, 5)[0])
    at = ok(page("saliency", saliency_face={"data": str(synth_npz), "split": "test", "index": k}))
    assert at.radio(key="sal_mode").value == "sent"
    assert shown(at.image[0].captions[0]).startswith(f"#{k} ")
    labels = [m.label for m in at.metric]
    assert labels.count("Faithfulness") == 2 and labels.count("Randomization ρ") == 2  # vanilla + Grad-CAM
    # pass/fail of the randomization check is a badge, not a metric delta (whose arrow reads "up" for "fails")
    assert not any(m.proto.delta for m in at.metric)
    badges = [m.value for m in at.markdown if m.value in (":green-badge[passes]", ":red-badge[fails]")]
    assert len(badges) == 2
    ok(at.multiselect(key="sal_methods").set_value(["occlusion"]).run())
    assert [m.label for m in at.metric].count("Faithfulness") == 1
    ok(at.radio(key="sal_target_mode").set_value("Choose a class").run())
    ok(at.selectbox(key="sal_target").set_value(2).run())
    assert any("fear (chosen)" in c for im in at.image for c in im.captions)


def test_saliency_page_pickers(page, preds):
    at = ok(page("saliency"))
    assert at.radio(key="sal_mode").options[0] == "By class"
    ok(at.selectbox(key="sal_class").set_value(6).run())
    face_box = box(at, "Face (")
    assert face_box.options and all("true neutral" in o for o in face_box.options)
    assert len(face_box.options) == int((preds.true == 6).sum())
    # confusion cell: a cell with faces lists them, an empty one says so
    ok(at.radio(key="sal_mode").set_value("cell").run())
    ok(at.selectbox(key="sal_cell_true").set_value(1).run())
    ok(at.selectbox(key="sal_cell_pred").set_value(1).run())
    assert len(box(at, "Face (").options) == interpret.cell_samples(preds, 1, 1).size
    empty = next(j for j in range(7) if interpret.cell_samples(preds, 1, j).size == 0)
    ok(at.selectbox(key="sal_cell_pred").set_value(empty).run())
    assert any("No face in this split matches" in i.value for i in at.info)
    ok(at.radio(key="sal_mode").set_value("ok").run())
    ok(at.radio(key="sal_ok").set_value("Correct").run())
    assert all("✓" in o for o in box(at, "Face (").options)
    ok(at.radio(key="sal_mode").set_value("random").run())
    first = at.image[0].captions[0]
    ok(at.button(key="sal_random_btn").click().run())
    assert at.image[0].captions[0] != first or len(preds) == 1


def test_saliency_page_upload_and_class_averages(page, preds, synth_npz):
    at = ok(page("saliency"))
    ok(at.radio(key="sal_mode").set_value("upload").run())
    assert not at.image  # nothing uploaded yet: no face, but the class averages still work
    ok(at.toggle(key="avg_on").set_value(True).run())
    ok(at.slider(key="avg_per_class").set_value(5).run())
    shares = at.dataframe[0].value
    assert list(shares.columns) == ["eyes_brows", "nose", "mouth", "other"] and len(shares) == 8
    np.testing.assert_allclose(shares.sum(1), 1, rtol=1e-4)
    assert len([im for im in at.image if "(n=5)" in im.captions[0]]) == 7
    # the bars: classes in FER order (as every table), regions in the region diagram's colours
    import json

    spec = json.loads(next(c for c in at.get("plotly_chart") if "region" in c.proto.spec).proto.spec)
    assert spec["layout"]["xaxis"]["categoryarray"] == list(sources.CLASSES)
    assert {t["name"]: t["marker"]["color"] for t in spec["data"]} == regions.region_hex()
    ok(at.toggle(key="avg_on").set_value(False).run())

    ok(at.file_uploader(key="sal_upload").set_value(("notes.png", b"this is not an image", "image/png")).run())
    assert any("not an image" in e.value for e in at.error)
    face = load_split(synth_npz, "test").x[0]
    ok(at.file_uploader(key="sal_upload").set_value(("face.png", png(face), "image/png")).run())
    assert not at.error and at.image[0].captions[0] == "uploaded face"
    # no true class for an upload: one map per method (vanilla, Grad-CAM), for the predicted class only
    assert [m.label for m in at.metric].count("Faithfulness") == 2
    assert not any("(true)" in c for im in at.image for c in im.captions)


def test_filters_page(page, synth_npz):
    at = ok(page("filters"))
    assert "8 first-layer filters (3x3)" in at.subheader[0].value
    n_images = len(at.image)
    assert n_images >= 4  # weight grid, face, responses, filter + patches
    ok(at.number_input(key="flt_index").set_value(5).run())
    ok(at.selectbox(key="flt_filter").set_value(3).run())
    assert any(im.captions == ["filter 3"] for im in at.image)
    patches = next(im for im in at.image if len(im.captions) == 8)  # the chosen filter's top patches
    assert all(c.startswith("#") for c in patches.captions)
    ok(at.radio(key="flt_source").set_value("Upload").run())
    ok(at.file_uploader(key="flt_upload").set_value(("x.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg")).run())
    assert len(at.error) == 1 and "x.jpg" in shown(at.error[0].value)
    ok(at.toggle(key="flt_activation").set_value(False).run())


def test_filters_page_any_conv_layer(page, synth_npz):
    """The second conv layer through the same page: its kernels (averaged over input channels), its feature maps,
    and top patches of its 5x5 receptive field plus context (outlined: tests/test_render.py)."""
    at = ok(page("filters"))
    layers = at.selectbox(key="flt_layer")
    assert len(layers.options) == 6 and layers.options[1].startswith("conv 2 · features.3 · 8 filters, 3x3 · "
                                                                      "receptive field 5 px")
    ok(layers.set_value(1).run())
    assert at.subheader[0].value == "8 filters of conv layer 2 (3x3, each averaged over its 8 input channels)"
    assert any("receptive field of the filter" in c.value and "5x5" in c.value for c in at.caption)
    ok(at.selectbox(key="flt_filter").set_value(2).run())
    patches = next(im for im in at.image if len(im.captions) == 8)  # filter 2's top patches, from 8 faces
    assert all(c.startswith("#") for c in patches.captions)
    # the deepest layer: 32 filters, a field larger than the face
    ok(at.selectbox(key="flt_layer").set_value(5).run())
    assert at.subheader[0].value.startswith("32 filters of conv layer 6")


def test_pages_show_a_clear_error_without_a_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setattr(app_common, "CHECKPOINTS", tmp_path / "none")
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(app_common, "DEFAULT_CHECKPOINT", tmp_path / "none" / "fer_best.pt")
    for name in ("confusion_matrix", "saliency", "filters"):
        at = AppTest.from_file(str(ROOT / "views" / f"{name}.py"), default_timeout=60).run()
        assert not at.exception
        assert len(at.error) == 1 and "checkpoint not found" in at.error[0].value, [e.value for e in at.error]


def dashboard_on_confusion_matrix(checkpoint, data, monkeypatch, tmp_path):
    """The whole dashboard (its navigation, so pages can send faces to each other), opened on Confusion Matrix."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_RUNS_DIR", str(Path(checkpoint).parent.parent))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.session_state["active_checkpoint"] = str(checkpoint)
    at.session_state["data_source"] = str(data)
    ok(at.run())
    ok(at.switch_page("views/confusion_matrix.py").run())
    return at


def test_explain_opens_the_face_in_the_saliency_page(tiny_checkpoint, synth_npz, preds, monkeypatch, tmp_path):
    """Through the dashboard's navigation: Confusion Matrix -> cell -> Explain lands on Saliency with that face."""
    at = dashboard_on_confusion_matrix(tiny_checkpoint, synth_npz, monkeypatch, tmp_path)
    # AppTest drops the first widget value set after switch_page (the widgets were registered under the page
    # hash of the switch); a browser does not (checked with playwright). One plain rerun settles it.
    ok(at.run())
    ok(box(at, "Cell").set_value((0, 0)).run())
    k = int(interpret.cell_samples(preds, 0, 0)[2])
    ok(at.button(key=f"cm_explain_{k}").click().run())
    assert at.title[0].value == "Saliency"
    assert at.radio(key="sal_mode").value == "sent"
    assert shown(at.image[0].captions[0]).startswith(f"#{k} ")


def test_pages_explain_a_model_without_conv_layers(page, synth_npz, tmp_path, monkeypatch):
    """Grad-CAM and the filter views need a conv layer: a model without one gets a message, not a traceback."""
    import torch.nn as nn

    from fer_core import models
    from fer_core.checkpoint import save_checkpoint
    from fer_core.preprocess import fit_normalization

    def mlp_probe():
        return models.FERNet(nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 16), nn.ReLU()), nn.Linear(16, 7), "features.2")

    monkeypatch.setitem(models._REGISTRY, "mlp_probe", mlp_probe)
    net = models.create_model("mlp_probe")
    ckpt = tmp_path / "mlp.pt"
    save_checkpoint({"format_version": 1, "model_name": "mlp_probe", "model_args": {}, "state_dict": net.state_dict(),
                     "normalization": fit_normalization(load_split(synth_npz, "test").x, "global"),
                     "classes": list(sources.CLASSES)}, ckpt)
    at = ok(page("saliency", active_checkpoint=str(ckpt)))
    assert any("Grad-CAM needs a convolutional layer" in e.value for e in at.error)
    assert [m.label for m in at.metric].count("Faithfulness") >= 1  # the vanilla gradient still works
    at = ok(page("filters", active_checkpoint=str(ckpt)))
    assert len(at.error) == 1 and "no convolutional first layer" in at.error[0].value


# ---------------------------------------------------------------- switches and the URL


@pytest.fixture(scope="module")
def other_checkpoint(synth_npz, tmp_path_factory):
    """A second, differently trained tiny model: a checkpoint switch changes the predictions."""
    from fer_core.train import TrainConfig, train

    cfg = TrainConfig(data=str(synth_npz), model="mini_cnn", model_args={"width": 8}, epochs=1, batch_size=32,
                      max_train_samples=140, lr=0.01, optimizer="adam", augment=False, normalize="global",
                      device="cpu", seed=1)
    return train(cfg, out_dir=str(tmp_path_factory.mktemp("other-runs")), run_dir="other") / "best.pt"


def labels_of(ckpt, synth_npz):
    model, prep = load_model(ckpt)
    p = interpret.predictions(model, prep, load_split(synth_npz, "test"), cache=False)
    return p, {k: f"#{k} · true {sources.CLASSES[t]} · pred {sources.CLASSES[q]} {p.probs[k, q]:.2f} "
                  + ("✓" if q == t else "✗") for k, (t, q) in enumerate(zip(p.true, p.pred))}


def test_a_checkpoint_switch_leaves_no_stale_label(page, tiny_checkpoint, other_checkpoint, synth_npz):
    before, want_before = labels_of(tiny_checkpoint, synth_npz)
    after, want_after = labels_of(other_checkpoint, synth_npz)
    k_sent = int(np.flatnonzero(before.true == 3)[0])
    at = ok(page("saliency", saliency_face={"data": str(synth_npz), "split": "test", "index": k_sent,
                                            "origin": "confusion cell happy → happy"},
                  sal_methods=["vanilla"], sal_trust=False))
    ok(at.radio(key="sal_mode").set_value("class").run())
    ok(at.selectbox(key="sal_class").set_value(3).run())
    faces = box(at, "Face (")
    assert faces.options == [want_before[k] for k in np.flatnonzero(before.true == 3)]
    chosen = int(np.flatnonzero(before.true == 3)[2])
    ok(faces.set_value(chosen).run())
    # switch the active checkpoint (what the sidebar or the Train page's "use" does) and rerun
    at.session_state["active_checkpoint"] = str(other_checkpoint)
    ok(at.run())
    faces = box(at, "Face (")
    assert faces.options == [want_after[k] for k in np.flatnonzero(after.true == 3)]
    assert faces.value == chosen  # the face still exists in this data: kept, relabelled
    assert shown(at.image[0].captions[0]) == want_after[chosen]
    assert set(want_before.values()) != set(want_after.values())  # the switch did change the predictions
    # the face sent from the Confusion Matrix under the old model is gone with its origin
    assert "saliency_face" not in at.session_state and "sent" not in at.radio(key="sal_mode").options

    # the Confusion Matrix's cell picker: counts of the new model
    cm = ok(page("confusion_matrix"))
    ok(box(cm, "Cell").set_value((3, 3)).run())
    cm.session_state["active_checkpoint"] = str(other_checkpoint)
    ok(cm.run())
    counts_after, _ = interpret.confusion(after.true, after.pred)
    cell = box(cm, "Cell")
    assert cell.value == (3, 3) and f"happy → happy · {counts_after[3, 3]} faces" in cell.options
    assert f"{len(interpret.cell_samples(after, 3, 3))} faces" in cm.subheader[0].value


def test_query_parameters_restore_the_views(tiny_checkpoint, synth_npz, preds, monkeypatch, tmp_path):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FER_RUNS_DIR", str(Path(tiny_checkpoint).parent.parent))

    def open_link(name, **params):  # a new session opened on a shared URL
        at = AppTest.from_file(str(ROOT / "views" / f"{name}.py"), default_timeout=60)
        at.session_state["active_checkpoint"] = str(tiny_checkpoint)
        at.session_state["data_source"] = str(synth_npz)
        at.query_params.update(params)
        return ok(at.run())

    at = open_link("confusion_matrix", values="recall", tta="1", cell="fear-sad")
    assert at.radio(key="cm_view").value == "Row-normalized (recall)" and at.toggle(key="cm_tta").value
    assert box(at, "Cell").value == (2, 4) and "True fear, predicted sad" in at.subheader[0].value
    # choosing writes the view back to the URL
    ok(box(at, "Cell").set_value((3, 3)).run())
    assert at.query_params["cell"] == ["happy-happy"] or at.query_params["cell"] == "happy-happy"
    # a link that no longer fits (a class that does not exist) falls back to the defaults, without an error
    bad = open_link("confusion_matrix", cell="joy-sad", values="nonsense")
    assert box(bad, "Cell").value is None and bad.radio(key="cm_view").value == "Counts"

    cand = interpret.cell_samples(preds, 2, 2)
    k = int(cand[1])
    at = open_link("saliency", pick="cell", true="fear", pred="fear", face=str(k),
                   methods="deeplift,gradcam_pp,gradient_shap", baseline="blur", noise="0.3", samples="8",
                   trust="0", alpha="0.7")
    assert at.radio(key="sal_mode").value == "cell"
    assert box(at, "Face (").value == k and shown(at.image[0].captions[0]).startswith(f"#{k} ")
    assert at.multiselect(key="sal_methods").value == ["deeplift", "gradcam_pp", "gradient_shap"]
    assert at.selectbox(key="sal_baseline").value == "blur" and at.slider(key="sal_noise").value == 0.3
    assert at.slider(key="sal_samples").value == 8 and at.slider(key="sal_alpha").value == 0.7
    assert not at.toggle(key="sal_trust").value and not at.metric  # no trust scores asked for
    drawn = [m.value for m in at.markdown if m.value.startswith("**")]
    assert drawn[0] == "**DeepLift** · baseline blur" and drawn[1] == "**Grad-CAM++**"
    assert drawn[2].startswith("**GradientSHAP** · baseline blur") and "noise 0.3" in drawn[2]
    assert sum("(predicted)" in c for im in at.image for c in im.captions) == 3  # one map per method


def test_the_cell_is_kept_when_coming_back_from_saliency(tiny_checkpoint, synth_npz, preds, monkeypatch, tmp_path):
    at = dashboard_on_confusion_matrix(tiny_checkpoint, synth_npz, monkeypatch, tmp_path)
    ok(at.run())  # see test_explain_opens_the_face_in_the_saliency_page
    ok(box(at, "Cell").set_value((4, 4)).run())
    k = int(interpret.cell_samples(preds, 4, 4)[0])
    ok(at.button(key=f"cm_explain_{k}").click().run())
    assert at.title[0].value == "Saliency"
    ok(at.switch_page("views/confusion_matrix.py").run())
    assert box(at, "Cell").value == (4, 4)
    assert "True sad, predicted sad" in at.subheader[0].value


def test_most_confused_pairs_give_each_share_in_percent_of_its_true_class(page, other_checkpoint, synth_npz):
    """The weaker tiny model confuses classes (the well-trained one does not): its pairs' shares are percentages of
    the true class's faces, shown with one decimal in every row."""
    at = ok(page("confusion_matrix", active_checkpoint=str(other_checkpoint)))
    pairs = next(d.value for d in at.dataframe if "share" in d.value.columns)
    true = load_split(synth_npz, "test").y
    totals = {c: int((np.asarray(true) == i).sum()) for i, c in enumerate(sources.CLASSES)}
    assert len(pairs) and all(abs(r.share - 100 * r.faces / totals[r.true]) < 1e-9 for r in pairs.itertuples())
    assert pairs["share"].max() > 1  # percent, not a fraction
