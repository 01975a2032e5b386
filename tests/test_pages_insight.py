"""AppTest of the Embeddings, Compare and Data Audit pages on the shipped checkpoints and the bundled sample: what
each shows is what fer_core computes, and a face reaches the Saliency page from each."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_common
from fer_core import audit, compare, embeddings, interpret, load_model, load_split
from fer_core.sources import CLASSES
from tests.conftest import ROOT, shown

SAMPLE = str(ROOT / "samples" / "fer2013_sample.npz")
SHIPPED = {name: str(ROOT / "checkpoints" / f"{name}.pt") for name in ("fer_best", "seed_vgg", "fer_cpu")}


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def open_page(name, checkpoint, **state):
    at = AppTest.from_file(str(ROOT / "views" / f"{name}.py"), default_timeout=600)
    at.session_state["active_checkpoint"] = checkpoint
    for k, v in state.items():
        at.session_state[k] = v
    return ok(at.run())


def values(v) -> np.ndarray:
    """A Plotly spec array: a list, or numpy's typed-array encoding {"dtype", "bdata"}."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = v.get("shape")
        return a.reshape([int(n) for n in str(shape).split(",")]) if shape else a
    return np.asarray(v)


def table(at, column: str):
    """The first dataframe on the page with this column, as a pandas DataFrame."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def chart(at, key_start: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if (c.key or "").startswith(key_start)).proto.spec)


@pytest.fixture(scope="module")
def preds():
    """Predictions of every shipped checkpoint on the sample's test faces (the disk cache the pages read)."""
    faces = load_split(SAMPLE, "test")
    out = {}
    for name, path in SHIPPED.items():
        model, prep = load_model(path)
        out[name] = interpret.predictions(model, prep, faces, checkpoint=path)
    return out


@pytest.mark.parametrize("name", list(SHIPPED))
def test_embeddings_page_on_each_shipped_model(name, preds):
    p = preds[name]
    at = open_page("embeddings", SHIPPED[name])
    assert at.title[0].value == "Embeddings"
    spec = chart(at, "emb_chart")
    traces = spec["data"]
    assert [t["name"] for t in traces] == list(CLASSES)
    faces = np.concatenate([values(t["customdata"]) for t in traces])
    assert sorted(faces.tolist()) == list(range(656))  # every face once
    for k, t in enumerate(traces):  # coloured by the true class; misclassified faces are an x
        idx = values(t["customdata"]).astype(int)
        assert (p.true[idx] == k).all()
        assert t["marker"]["symbol"] == ["x" if p.pred[i] != p.true[i] else "circle" for i in idx]
    # the points are the PCA of the penultimate features, computed the library's way
    model, prep = load_model(SHIPPED[name])
    proj = embeddings.project(embeddings.embed(model, prep, load_split(SAMPLE, "test"), checkpoint=SHIPPED[name]).feats)
    t = traces[3]
    np.testing.assert_allclose(values(t["x"]), proj.xy[values(t["customdata"]).astype(int), 0], rtol=1e-5, atol=1e-5)
    assert any(f"{proj.explained[0]:.0%}" in c.value for c in at.caption)
    # coloured by the prediction: each trace holds one predicted class
    ok(at.radio(key="emb_colour").set_value("pred").run())
    for k, t in enumerate(chart(at, "emb_chart")["data"]):
        assert (p.pred[values(t["customdata"]).astype(int)] == k).all()
    # a face (what a click on its point sets): its image, probabilities and class
    k = int(np.flatnonzero(p.pred != p.true)[0])
    ok(at.number_input[0].set_value(k).run())
    assert shown(at.image[0].captions[0]).startswith(f"#{k} test/")
    bars = chart(at, "emb_probs")["data"][0]
    np.testing.assert_allclose(values(bars["x"]), p.probs[k], rtol=1e-6)
    assert f"predicted **{CLASSES[p.pred[k]]}**" in at.markdown[-1].value and "misclassified" in at.markdown[-1].value
    assert at.query_params["face"] in (str(k), [str(k)])
    ok(at.button(key="emb_open").click().run())
    sent = at.session_state["saliency_face"]
    assert (sent["index"], sent["split"], sent["data"], sent["origin"]) == (k, "test", SAMPLE, "embedding map")


def test_embeddings_page_t_sne_from_a_link():
    at = AppTest.from_file(str(ROOT / "views" / "embeddings.py"), default_timeout=600)
    at.session_state["active_checkpoint"] = SHIPPED["fer_cpu"]
    at.query_params.update({"proj": "tsne", "colour": "pred", "face": "7"})
    ok(at.run())
    assert at.radio(key="emb_method").value == "tsne" and at.radio(key="emb_colour").value == "pred"
    assert any("t-SNE" in c.value for c in at.caption)
    assert sum(len(values(t["x"])) for t in chart(at, "emb_chart")["data"]) == 656
    assert shown(at.image[0].captions[0]).startswith("#7 ")


def test_compare_page_on_shipped_models(preds):
    at = open_page("compare", SHIPPED["fer_best"], cmp_b=SHIPPED["seed_vgg"])
    a, b = preds["fer_best"], preds["seed_vgg"]
    want = compare.compare(a.true, a.probs, b.probs, ids=load_split(SAMPLE, "test").ids)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy A"] == f"{want['a']['accuracy']:.4f}"
    assert metrics["Accuracy B"] == f"{want['b']['accuracy']:.4f}"
    assert metrics["Macro F1 B"] == f"{want['b']['macro_f1']:.4f}"
    assert metrics["McNemar mid-p"] == f"{want['mcnemar']['p_mid']:.3g}"
    m = want["mcnemar"]
    assert any(f"A right and B wrong: {m['b']:,}; A wrong and B right: {m['c']:,}" in c.value for c in at.caption)
    assert values(chart(at, "cmp_cm_diff")["data"][0]["z"]).tolist() == want["confusion_difference"]
    assert values(chart(at, "cmp_cm_a")["data"][0]["z"]).tolist() == want["a"]["confusion_matrix"]
    recall = table(at, "B − A")
    np.testing.assert_allclose(recall["B"], [want["recall"][c]["b"] for c in CLASSES])
    # the gallery: the disagreements both models are surest of, in that order
    assert f"{want['n_disagree']:,}" in at.subheader[-1].value
    first = want["disagreements"][:18]
    by_column = [first[i] for c in range(6) for i in range(c, 18, 6)]  # 6 columns, read one after another
    assert [shown(im.captions[0]).split(" ·")[0] for im in at.image] == [f"#{d['index']}" for d in by_column]
    ok(at.radio(key="cmp_shown").set_value("b").run())
    assert all(want["disagreements"][[d["index"] for d in want["disagreements"]].index(int(
        shown(im.captions[0]).split(" ·")[0][1:]))]["right"] == "b" for im in at.image)
    # explain with B: B becomes the active model, and the face is sent for its view
    ok(at.radio(key="cmp_explain_with").set_value("B").run())
    k = int(shown(at.image[0].captions[0]).split(" ·")[0][1:])
    ok(at.button(key=f"cmp_explain_{k}").click().run())
    sent = at.session_state["saliency_face"]
    assert sent["index"] == k and at.session_state["active_checkpoint"] == SHIPPED["seed_vgg"]
    ctx_b = app_common.Ctx(SHIPPED["seed_vgg"], SAMPLE, "test", "cpu")
    assert sent["view"] == app_common.view_id(ctx_b)


def test_compare_to_saliency_through_the_navigation(preds):
    """Through dashboard.py's navigation: Compare -> Explain lands on Saliency with that face, explained by A."""
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600)
    at.session_state["active_checkpoint"] = SHIPPED["fer_cpu"]
    for k, v in {"sal_methods": ["vanilla"], "sal_trust": False, "cmp_b": SHIPPED["fer_best"]}.items():
        at.session_state[k] = v
    ok(at.run())
    ok(at.switch_page("views/compare.py").run())
    ok(at.run())  # AppTest drops the first widget value after switch_page (see test_pages_interpret.py)
    a, b = preds["fer_cpu"], preds["fer_best"]
    k = int(compare.disagreements(a.probs, b.probs)[0])
    ok(at.button(key=f"cmp_explain_{k}").click().run())
    assert at.title[0].value == "Saliency" and at.radio(key="sal_mode").value == "sent"
    assert shown(at.image[0].captions[0]).startswith(f"#{k} ")
    assert any("Sent from the Compare page (model A)" in shown(c.value) for c in at.caption)


def test_audit_page_on_the_sample(preds):
    at = open_page("audit", SHIPPED["fer_cpu"])
    sets = {s: load_split(SAMPLE, s) for s in ("train", "test")}
    pairs = audit.find_duplicates(sets)
    summary = table(at, "pairs of")
    assert summary["pairs"].tolist() == [r["pairs"] for r in audit.summarize(pairs, sets)]
    assert any(f"{len(pairs)} pairs, closest first" in c.value for c in at.caption)
    tiles = [im for im in at.image if "bits ·" in shown(im.captions[0])]
    assert len(tiles) == len(pairs) and shown(tiles[0].captions[0]).startswith(f"{pairs[0]['distance']} bits")
    assert pairs[0]["id_a"] in shown(tiles[0].captions[0]) and pairs[0]["id_b"] in shown(tiles[0].captions[0])
    # suspects of the active model on the test split
    p = preds["fer_cpu"]
    found = audit.suspects(p.probs, p.true, sets["test"].ids, "test")
    assert at.metric[0].value == f"{len(found):,} of 656"
    listed = table(at, "p_suggested")
    assert listed["index"].tolist() == [s["index"] for s in found]
    assert [b.label for b in at.get("download_button")] == ["Download the pairs (CSV)", "Download the suspects (CSV)"]
    ok(at.button(key=f"aud_explain_{found[0]['index']}").click().run())
    assert at.session_state["saliency_face"]["index"] == found[0]["index"]
    # the threshold: a looser one finds at least as many pairs; conflicting labels only
    ok(at.select_slider(key="aud_threshold").set_value(48).run())
    more = audit.find_duplicates(sets, 48)
    assert table(at, "pairs of")["pairs"].sum() == len(more) >= len(pairs)
    ok(at.toggle(key="aud_conflicting").set_value(True).run())
    n_conf = sum(not q["same_label"] for q in more)
    if n_conf:
        assert any(f"{n_conf} pairs, closest first" in c.value for c in at.caption)
    else:
        assert any("No pair of this kind" in i.value for i in at.info)


def test_audit_page_shows_hostile_file_names_as_text(tmp_path, monkeypatch):
    """A data folder whose file names are Markdown and formulas: the pair captions show them as text."""
    from PIL import Image

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    face = load_split(SAMPLE, "test").x[0]
    names = ["![t](http:x.invalid).png", "=HYPERLINK(1).png", "a.png", "b.png"]
    x = load_split(SAMPLE, "test").x
    for split, n, f in (("train", names[0], face), ("test", names[1], face), ("train", names[2], x[1]),
                        ("test", names[3], x[2])):
        (tmp_path / "src" / split / "happy").mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).save(tmp_path / "src" / split / "happy" / n)
    at = open_page("audit", SHIPPED["fer_cpu"], data_source=str(tmp_path / "src"))
    caption = next(im.captions[0] for im in at.image if "bits ·" in shown(im.captions[0]))
    assert "![t](http:x.invalid).png" in shown(caption) and "\\!\\[t\\]" in caption
    assert "=HYPERLINK(1).png" in shown(caption)
