"""Saliency: where the model looks for a face, with a trust score beside every map, and per-class averages."""
import time

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app_common import (file_version, get_faces, get_model, get_predictions, keep, model_or_stop, restore, sidebar,
                        view_id)
from fer_core import draw, interpret, picks, regions, render, saliency, trust
from fer_core.text import md
from fer_core.images import UPLOAD_MAX_PIXELS, DataError, open_image, to_face48
from fer_core.sources import CLASSES

ctx = sidebar()
st.title("Saliency")


@st.cache_data(show_spinner="Computing the map...", max_entries=512)
def explain(ckpt: str, ckpt_key: float, face: np.ndarray, target: int, method: str, with_trust: bool,
            opts: tuple = ()):
    """(map (48, 48), trust dict or None, error message or None, ms to compute the map) for one face;
    opts: the method's settings as sorted (name, value) pairs."""
    model, prep = get_model(ckpt)
    try:
        t0 = time.perf_counter()
        smap = saliency.saliency(model, prep, face, target, method, **dict(opts))
        ms = (time.perf_counter() - t0) * 1e3
        tr = trust.trust(model, prep, face, target, method, smap=smap, **dict(opts)) if with_trust else None
    except ValueError as e:  # e.g. Grad-CAM on a model without a conv layer
        return None, None, str(e), 0.0
    return smap, tr, None, ms


@st.cache_data(show_spinner="Averaging saliency over faces of every class...", max_entries=16)
def cached_class_average(ckpt: str, ckpt_key: float, data: str, data_key: float, split: str, method: str,
                         per_class: int, target_kind: str):
    model, prep = get_model(ckpt)
    fs = get_faces(data, split)
    preds = get_predictions(ckpt, data, split)
    targets = preds.pred if target_kind == "pred" else fs.y
    return regions.class_average(model, prep, fs.x, fs.y, method, per_class=per_class, targets=targets,
                                 target_kind=target_kind)


model, prep = model_or_stop(ctx.checkpoint)
try:
    faces = get_faces(ctx.data, ctx.split)
    ckpt_key, data_key = file_version(ctx.checkpoint), file_version(ctx.data)
except (DataError, OSError) as e:
    st.error(md(e))
    st.stop()
preds = get_predictions(ctx.checkpoint, ctx.data, ctx.split)
vid = view_id(ctx)  # every label below comes from this checkpoint and data; widgets showing them are keyed by it
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


SETTING_PARAMS = {"baseline": "baseline", "ig_steps": "steps", "noise": "noise", "nt_samples": "samples",
                  "window": "window"}  # method setting -> its URL parameter


def method_settings(methods) -> dict:
    """The settings the chosen methods read, each kept in the URL (the others leave it)."""
    needed = {n for m in methods for n in saliency.METHOD_SETTINGS[m]}
    opts = {}
    if needed:
        with st.expander("Method settings", expanded=False):
            cols = dict(zip(SETTING_PARAMS, st.columns(5)))
            widgets = {
                "baseline": lambda c: c.selectbox(
                    "Baseline", list(saliency.BASELINES), format_func=saliency.BASELINES.get, key="sal_baseline",
                    help="What a removed pixel becomes (IG, DeepLift, GradientSHAP, occlusion)"),
                "ig_steps": lambda c: c.slider("IG steps", 4, 128, 32, key="sal_steps",
                                               help="Integrated Gradients path steps"),
                "noise": lambda c: c.slider("Noise level", 0.0, 0.5, 0.15, 0.05, key="sal_noise",
                                            help="SmoothGrad and GradientSHAP: noise as a share of the face's value range"),
                "nt_samples": lambda c: c.slider("Samples", 4, 64, 16, 4, key="sal_samples",
                                                 help="SmoothGrad and GradientSHAP samples"),
                "window": lambda c: c.slider("Occlusion window", 2, 16, 6, key="sal_window",
                                             help="pixels; stride is half of it"),
            }
            parse = {"baseline": str, "ig_steps": int, "noise": float, "nt_samples": int, "window": int}
            for name, param in SETTING_PARAMS.items():
                if name in needed:
                    restore(f"sal_{param}", param, parse[name],
                            lambda v, n=name: v in saliency.BASELINES if n == "baseline" else v >= 0)
                    opts[name] = widgets[name](cols[name])
                    keep(f"sal_{param}", param, opts[name])
    for name, param in SETTING_PARAMS.items():
        if name not in needed:
            keep(f"_url_{param}", param, None)
    return opts


def show_trust(col, tr: dict, face, t: int, alpha: float) -> None:
    col.metric("Faithfulness", f"{tr['score']:+.2f}", help=(
        "Mean of the deletion and insertion gains: how much faster p(class) falls when the most "
        "salient pixels are replaced by the training mean, and rises when only they are shown, "
        "than with random pixels. > 0: the map ranks pixels better than chance."))
    col.caption(f"deletion AUC {tr['deletion_auc']:.2f} (random {tr['deletion_random_auc']:.2f}) · "
                f"insertion AUC {tr['insertion_auc']:.2f} (random {tr['insertion_random_auc']:.2f})")
    # a verdict, not a change: a badge rather than a metric delta (whose arrow reads as "up")
    col.metric("Randomization ρ", f"{tr['sanity_spearman']:.2f}",
               help="Spearman correlation with the map of the same network with random weights "
                    f"(Adebayo et al., 2018). Below {trust.SANITY_MAX_RHO} passes; a high "
                    "value means the map barely depends on what the model learned.")
    col.markdown(":green-badge[passes]" if tr["sanity_passed"] else ":red-badge[fails]")
    col.image(draw.overlay(face, tr["random_map"], alpha, scale=1), width=72, caption="random-weights map")
    with col.popover("Deletion / insertion curves"):
        st.line_chart(pd.DataFrame({
            "deletion": tr["deletion_curve"], "deletion, random pixels": tr["deletion_random_curve"],
            "insertion": tr["insertion_curve"], "insertion, random pixels": tr["insertion_random_curve"],
        }, index=pd.Index(np.round(tr["fractions"], 3), name="fraction of pixels")), height=240)
        st.caption(f"p({CLASSES[t]}) as pixels are replaced by the training mean (deletion) or "
                   "revealed on it (insertion), most salient first, against random pixel orders.")


def show_method(method: str, opts: dict, face, targets, probs, true, alpha: float, with_trust: bool) -> None:
    """One method's maps, predicted and true (or chosen) class side by side, each with its trust scores."""
    pred = int(probs.argmax())
    m_opts = tuple(sorted((n, v) for n, v in opts.items() if n in saliency.METHOD_SETTINGS[method]))
    st.markdown(f"**{saliency.METHOD_NAMES[method]}**"
                + (" · " + ", ".join(f"{n.replace('_', ' ')} {v}" for n, v in m_opts) if m_opts else ""))
    cols = st.columns(4)  # (map, scores) per target: predicted and true side by side
    for n, t in enumerate(targets):
        smap, tr, err, ms = explain(ctx.checkpoint, ckpt_key, face, int(t), method, with_trust, m_opts)
        img_col, score_col = cols[2 * n], cols[2 * n + 1]
        kind = "predicted" if t == pred else ("true" if t == true else "chosen")
        if err:
            img_col.error(err)
            continue
        img_col.image(draw.overlay(face, smap, alpha), caption=f"{CLASSES[t]} ({kind}), p={probs[t]:.2f}")
        img_col.image(draw.colorbar("jet", 192, 10), width=192,
                      caption="importance: low → high (to the map's 99th percentile)")
        img_col.caption(picks.region_caption(smap) + f" · {ms:.0f} ms")  # eyes/brows, nose, mouth, other
        if tr is not None:
            show_trust(score_col, tr, face, t, alpha)


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
        show_method(method, opts, face, targets, probs, true, alpha, with_trust)


tab_face, tab_avg = st.tabs(["Explain a face", "Class averages"])

with tab_face:
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

with tab_avg:
    st.caption("Faces are aligned, so averaging normalized maps shows where the model looks for each expression. "
               "Regions on the 48x48 face: " + ", ".join(f"{n} rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}"
                                                        for n, (r0, r1, c0, c1) in regions.REGIONS.items()) + ".")
    a1, a2, a3 = st.columns(3)
    restore("avg_method", "avg", str, lambda m: m in saliency.METHODS)
    avg_method = a1.selectbox("Method", saliency.METHODS, format_func=saliency.METHOD_NAMES.get, key="avg_method")
    keep("avg_method", "avg", avg_method)
    per_class = a2.slider("Faces per class", 5, 100, 20, 5, key="avg_per_class",
                          help="Occlusion, IG and GradientSHAP take longer per face than the other methods")
    target_kind = a3.radio("Explain", ["true", "pred"], horizontal=True, key="avg_target",
                           format_func=lambda s: f"{s} class")
    if st.toggle("Compute class averages", key="avg_on"):
        avg = cached_class_average(ctx.checkpoint, ckpt_key, ctx.data, data_key, ctx.split, avg_method, per_class,
                                   target_kind)
        mean_faces = render.class_mean_faces(faces.x, faces.y)
        cols = st.columns(len(CLASSES))
        for k, col in enumerate(cols):
            col.image(draw.overlay(mean_faces[k], avg.maps[k], 0.6, scale=2),
                      caption=f"{CLASSES[k]} (n={avg.counts[k]})")
        st.image(draw.colorbar("jet", 288, 10), width=288,
                 caption="mean importance: low → high (to each map's 99th percentile)")
        shares = regions.region_shares(avg.maps)  # (C, R)
        names = list(regions.region_masks())
        df = pd.DataFrame(shares, index=list(CLASSES), columns=names)
        df.loc["(area share)"] = regions.area_shares()
        st.dataframe(df, key="avg_regions", column_config={
            "_index": st.column_config.TextColumn("class", help="FER2013 order; the last row is each region's area"),
            **{n: st.column_config.ProgressColumn(n.replace("_", "/"), min_value=0.0, max_value=1.0, format="percent")
               for n in names}})
        long = df.drop(index="(area share)").loc[avg.counts > 0].rename_axis("class").reset_index().melt(
            id_vars="class", var_name="region", value_name="share")
        fig = px.bar(long, x="class", y="share", color="region", barmode="group", height=300,
                     category_orders={"class": list(CLASSES), "region": names},
                     color_discrete_map=regions.region_hex())
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis_tickformat=".0%", legend_title_text="")
        g1, g2 = st.columns([4, 1])
        g1.plotly_chart(fig, width="stretch", key="avg_bars")
        g2.image(draw.upscale(regions.region_image(np.mean(faces.x, 0)), 4), width=192,
                 caption="regions on the mean face of this split, in the chart's colours (other: the rest)")
