"""Saliency: where the model looks for a face, with a trust score beside every map, and per-class averages.

This page picks the face; its maps are views/saliency_maps.py, the class averages views/saliency_averages.py."""
import plotly.express as px
import streamlit as st

from app_common import file_version, get_faces, get_predictions, model_or_stop, sidebar, view_id
from app_state import keep, restore
from fer_core import draw, interpret, picks, saliency
from fer_core.text import md
from fer_core.images import UPLOAD_MAX_PIXELS, DataError, open_image, to_face48
from fer_core.sources import CLASSES
from views.saliency_averages import class_averages
from views.saliency_maps import method_settings, show_method

ss = st.session_state


MODES = {"sent": "From Confusion Matrix", "class": "By class", "cell": "Confusion cell", "ok": "Correct / incorrect",
         "random": "Random", "upload": "Upload"}
CLASS_OF = {c: k for k, c in enumerate(CLASSES)}


def face_label(k: int) -> str:
    p, t = int(preds.pred[k]), int(preds.true[k])
    mark = "✓" if p == t else "✗"
    return f"#{k} · true {CLASSES[t]} · pred {CLASSES[p]} {preds.probs[k, p]:.2f} {mark}"


def choose(candidates, mode: str):
    """A face index among `candidates` (at most picks.MAX_LISTED listed), or None with a message when there are
    none. The face is kept in the URL (?face=) and across pages; the widget is redrawn when the view changes."""
    if len(candidates) == 0:
        st.info("No face in this split matches that choice.")
        keep("sal_face", "face", None)
        return None
    options = [int(k) for k in candidates[: picks.MAX_LISTED]]
    key = f"sal_face_{mode}.{vid}"
    restore(key, "face", int, lambda k: k in options, memo="sal_face")
    k = st.selectbox(f"Face ({len(candidates)} match)", options, format_func=face_label, key=key)
    keep("sal_face", "face", k)
    return k


def class_box(label: str, key: str, param: str, default: int = 0) -> int:
    restore(key, param, CLASS_OF.__getitem__)
    if key not in ss:
        ss[key] = default
    k = st.selectbox(label, range(len(CLASSES)), format_func=lambda c: CLASSES[c], key=key)
    keep(key, param, k, lambda c: CLASSES[c])
    return k


def sent_face():
    """The face sent from the Confusion Matrix (or in a shared link), if it belongs to this view."""
    sent = ss.get("saliency_face")
    if sent is None and st.query_params.get("pick") == "sent":  # a reloaded or shared link of a sent face
        sent = {"data": ctx.data, "split": ctx.split, "index": st.query_params.get("face"), "origin": "link"}
    sent = picks.sent_face(sent, ctx.data, ctx.split, vid, len(faces))
    if sent:
        ss["saliency_face"] = sent
    else:
        ss.pop("saliency_face", None)  # sent for another checkpoint, data source or split
    return sent


def pick_mode(sent) -> str:
    modes = [m for m in MODES if m != "sent" or sent]
    restore("sal_mode", "pick", str, lambda m: m in modes)
    if ss.get("sal_mode") not in modes:
        ss["sal_mode"] = modes[0]
    mode = st.radio("Pick a face", modes, horizontal=True, key="sal_mode", format_func=MODES.get)
    keep("sal_mode", "pick", mode)
    for param in ("cls", "true", "pred", "ok", "seed"):  # settings of the other pickers leave the URL
        if param not in {"class": ("cls",), "cell": ("true", "pred"), "ok": ("ok",), "random": ("seed",)}.get(mode, ()):
            keep(f"_url_{param}", param, None)
    if mode == "upload":
        keep("sal_face", "face", None)
    return mode


def pick_index(mode: str, sent):
    """The chosen face's index in the split for every mode but upload (None: nothing chosen)."""
    if mode == "sent":
        keep("sal_face", "face", int(sent["index"]))
        st.caption(f"Sent from the {md(sent.get('origin', 'Confusion Matrix'))}." if sent.get("origin") != "link"
                   else "Face from a link.")
        return int(sent["index"])
    if mode == "class":
        return choose(picks.of_class(preds, class_box("True class", "sal_class", "cls")), "class")
    if mode == "cell":
        ti0, pj0 = picks.most_confused_pair(preds)  # default: the most confused pair
        a, b = st.columns(2)
        with a:
            ti = class_box("True class", "sal_cell_true", "true", ti0)
        with b:
            pj = class_box("Predicted class", "sal_cell_pred", "pred", pj0)
        return choose(picks.of_cell(preds, ti, pj), "cell")
    if mode == "ok":
        restore("sal_ok", "ok", {"0": "Incorrect", "1": "Correct"}.__getitem__)
        ok = st.radio("Prediction", ["Incorrect", "Correct"], horizontal=True, key="sal_ok") == "Correct"
        keep("sal_ok", "ok", "Correct" if ok else "Incorrect", lambda v: "1" if v == "Correct" else "0")
        return choose(picks.of_outcome(preds, ok), "ok")
    # random
    if "sal_random_seed" not in ss and "seed" in st.query_params:
        ss["sal_random_seed"] = int(st.query_params["seed"]) if st.query_params["seed"].isdigit() else 0
    if st.button("Another random face", key="sal_random_btn"):
        ss["sal_random_seed"] = ss.get("sal_random_seed", 0) + 1
    keep("sal_random_seed", "seed", ss.get("sal_random_seed", 0))
    idx = picks.random_face(len(faces), ss.get("sal_random_seed", 0))
    keep("sal_face", "face", idx)
    return idx


def uploaded_face():
    up = st.file_uploader("A face photo (cropped to the face works best)", key="sal_upload")
    if up is None:
        return None
    try:
        return to_face48(open_image(up.getvalue(), name=up.name, max_pixels=UPLOAD_MAX_PIXELS))
    except DataError as e:
        st.error(md(e))
        return None


def show_face(face, probs, label: str) -> None:
    pred = int(probs.argmax())
    c1, c2 = st.columns([1, 3])
    c1.image(draw.upscale(face, 3), caption=md(label))
    fig = px.bar(x=probs, y=list(CLASSES), orientation="h", height=230, range_x=[0, 1],
                 labels={"x": "probability", "y": ""})
    fig.update_layout(margin=dict(l=0, r=10, t=10, b=0), yaxis=dict(categoryorder="array",
                                                                    categoryarray=list(CLASSES)[::-1]))
    fig.update_traces(marker_color=["#d62728" if k == pred else "#1f77b4" for k in range(len(CLASSES))])
    c2.plotly_chart(fig, width="stretch", key="sal_probs")


def explain_face(face, true, idx) -> None:
    label = face_label(idx) if idx is not None else "uploaded face"
    # the Filters page offers this face too; its label there names no prediction, which it does not show
    ss["interp_face"] = {"face": face, "data": ctx.data if idx is not None else None,
                         "label": f"#{idx} · true {CLASSES[true]}" if idx is not None else "uploaded face"}
    probs = interpret.predict_proba_face(model, prep, face)
    pred = int(probs.argmax())
    show_face(face, probs, label)
    o1, o2, o3 = st.columns([2, 2, 1])
    restore("sal_methods", "methods", lambda v: [m for m in v.split(",") if m in saliency.METHODS])
    methods = o1.multiselect("Methods", saliency.METHODS, default=["vanilla", "gradcam"],
                             format_func=saliency.METHOD_NAMES.get, key="sal_methods")
    keep("sal_methods", "methods", methods, ",".join)
    restore("sal_target_mode", "target", lambda v: "Choose a class" if v in CLASS_OF else "Predicted vs true")
    target_mode = o2.radio("Target class", ["Predicted vs true", "Choose a class"], horizontal=True,
                           key="sal_target_mode")
    restore("sal_alpha", "alpha", float, lambda a: 0 <= a <= 1)
    alpha = o3.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="sal_alpha")
    keep("sal_alpha", "alpha", alpha, lambda a: f"{a:.2f}")
    chosen = None
    if target_mode == "Choose a class":
        chosen = class_box("Class to explain", "sal_target", "target", pred)
    else:
        keep("sal_target", "target", None)
    targets = picks.targets(pred, true, chosen)
    restore("sal_trust", "trust", lambda v: v == "1")
    with_trust = st.toggle("Trust scores (deletion/insertion and the randomization check; slower)", value=True,
                           key="sal_trust")
    keep("sal_trust", "trust", with_trust, lambda v: "1" if v else "0")
    opts = method_settings(methods)
    if true is not None and true == pred and target_mode != "Choose a class":
        st.caption("The prediction is correct, so predicted and true class are the same map.")
    for method in methods:
        show_method(ctx.checkpoint, ckpt_key, method, opts, face, targets, probs, true, alpha, with_trust)


def load(ctx):
    """The active model, the split's faces and the model's predictions over them; a page that cannot have them
    says why and stops."""
    model, prep = model_or_stop(ctx.checkpoint)
    try:
        faces = get_faces(ctx.data, ctx.split)
    except (DataError, OSError) as e:
        st.error(md(e))
        st.stop()
    return model, prep, faces, get_predictions(ctx.checkpoint, ctx.data, ctx.split)


def explain_tab() -> None:
    """Pick a face (sent here, by class, by confusion cell, by outcome, at random, uploaded) and explain it."""
    sent = sent_face()
    mode = pick_mode(sent)
    if mode == "upload":
        face, true, idx = uploaded_face(), None, None
    else:
        idx = pick_index(mode, sent)
        face, true = (faces.x[idx], int(faces.y[idx])) if idx is not None else (None, None)
    if face is None:
        st.caption("Pick a face above to explain it.")
    else:
        explain_face(face, true, idx)


ctx = sidebar()
st.title("Saliency")
model, prep, faces, preds = load(ctx)
ckpt_key, data_key = file_version(ctx.checkpoint), file_version(ctx.data)
vid = view_id(ctx)  # every label below comes from this checkpoint and data; widgets showing them are keyed by it
tab_face, tab_avg = st.tabs(["Explain a face", "Class averages"])
with tab_face:
    explain_tab()
with tab_avg:
    class_averages(ctx, faces, ckpt_key, data_key)
