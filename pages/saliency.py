"""Saliency: where the model looks for a face, with a trust score beside every map, and per-class averages."""
import time

import numpy as np
import pandas as pd
import streamlit as st

from app_common import file_version, get_faces, get_model, get_predictions, model_or_stop, sidebar
from fer_core import interpret
from fer_core.data import CLASSES, UPLOAD_MAX_PIXELS, DataError, open_image, to_face48

ctx = sidebar()
st.title("Saliency")


@st.cache_data(show_spinner="Computing the map...", max_entries=512)
def explain(ckpt: str, ckpt_key: float, face: np.ndarray, target: int, method: str, with_trust: bool):
    """(map (48, 48), trust dict or None, error message or None, ms to compute the map) for one face."""
    model, prep = get_model(ckpt)
    try:
        t0 = time.perf_counter()
        smap = interpret.saliency(model, prep, face, target, method)
        ms = (time.perf_counter() - t0) * 1e3
        tr = interpret.trust(model, prep, face, target, method, smap=smap) if with_trust else None
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
    return interpret.class_average(model, prep, fs.x, fs.y, method, per_class=per_class, targets=targets,
                                   target_kind=target_kind)


model, prep = model_or_stop(ctx.checkpoint)
try:
    faces = get_faces(ctx.data, ctx.split)
    ckpt_key, data_key = file_version(ctx.checkpoint), file_version(ctx.data)
except (DataError, OSError) as e:
    st.error(str(e))
    st.stop()
preds = get_predictions(ctx.checkpoint, ctx.data, ctx.split)


def face_label(k: int) -> str:
    p, t = int(preds.pred[k]), int(preds.true[k])
    mark = "✓" if p == t else "✗"
    return f"#{k} · true {CLASSES[t]} · pred {CLASSES[p]} {preds.probs[k, p]:.2f} {mark}"


def choose(candidates, key: str):
    """A face index among `candidates` (at most 500 listed), or None with a message when there are none."""
    if len(candidates) == 0:
        st.info("No face in this split matches that choice.")
        return None
    return st.selectbox(f"Face ({len(candidates)} match)", [int(k) for k in candidates[:500]],
                        format_func=face_label, key=key)


tab_face, tab_avg = st.tabs(["Explain a face", "Class averages"])

with tab_face:
    sent = st.session_state.get("saliency_face")
    if sent and (sent.get("data"), sent.get("split")) != (ctx.data, ctx.split):
        sent = None  # sent for another data source or split
    modes = (["From Confusion Matrix"] if sent else []) + ["By class", "Confusion cell", "Correct / incorrect",
                                                           "Random", "Upload"]
    if st.session_state.get("sal_mode") not in modes:
        st.session_state["sal_mode"] = modes[0]
    mode = st.radio("Pick a face", modes, horizontal=True, key="sal_mode")
    face, true, idx = None, None, None
    if mode == "From Confusion Matrix":
        idx = int(sent["index"]) if 0 <= int(sent["index"]) < len(faces) else None
        st.caption(f"Sent from the {sent.get('origin', 'Confusion Matrix')}.")
    elif mode == "By class":
        k = st.selectbox("True class", range(len(CLASSES)), format_func=lambda c: CLASSES[c], key="sal_class")
        idx = choose(np.flatnonzero(preds.true == k), "sal_face_class")
    elif mode == "Confusion cell":
        a, b = st.columns(2)
        top = interpret.most_confused(interpret.confusion(preds.true, preds.pred)[0], k=1)
        ti0, pj0 = (top[0]["true"], top[0]["pred"]) if top else (0, 0)  # default: the most confused pair
        ti = a.selectbox("True class", range(len(CLASSES)), format_func=lambda c: CLASSES[c], key="sal_cell_true",
                         index=ti0)
        pj = b.selectbox("Predicted class", range(len(CLASSES)), format_func=lambda c: CLASSES[c],
                         key="sal_cell_pred", index=pj0)
        idx = choose(interpret.cell_samples(preds, ti, pj), "sal_face_cell")
    elif mode == "Correct / incorrect":
        ok = st.radio("Prediction", ["Incorrect", "Correct"], horizontal=True, key="sal_ok") == "Correct"
        cand = np.flatnonzero((preds.pred == preds.true) == ok)
        idx = choose(cand[np.argsort(-preds.confidence[cand], kind="stable")], "sal_face_ok")
    elif mode == "Random":
        if st.button("Another random face", key="sal_random_btn"):
            st.session_state["sal_random_seed"] = st.session_state.get("sal_random_seed", 0) + 1
        idx = int(np.random.default_rng(st.session_state.get("sal_random_seed", 0)).integers(len(faces)))
    else:
        up = st.file_uploader("A face photo (cropped to the face works best)", key="sal_upload")
        if up is not None:
            try:
                face = to_face48(open_image(up.getvalue(), name=up.name, max_pixels=UPLOAD_MAX_PIXELS))
            except DataError as e:
                st.error(str(e))
    if idx is not None:
        face, true = faces.x[idx], int(faces.y[idx])
    if face is None:
        st.caption("Pick a face above to explain it.")
    else:
        label = face_label(idx) if idx is not None else "uploaded face"
        st.session_state["interp_face"] = {"face": face, "label": label}  # the Filters page offers it too
        probs = interpret.predict_proba_face(model, prep, face)
        pred = int(probs.argmax())
        c1, c2 = st.columns([1, 3])
        c1.image(interpret.upscale(face, 3), caption=label)
        c2.bar_chart(pd.DataFrame({"class": list(CLASSES), "probability": probs}), x="class", y="probability",
                     horizontal=True, sort=False, height=220)

        o1, o2, o3 = st.columns([2, 2, 1])
        methods = o1.multiselect("Methods", interpret.METHODS, default=["vanilla", "gradcam"],
                                 format_func=interpret.METHOD_NAMES.get, key="sal_methods")
        target_mode = o2.radio("Target class", ["Predicted vs true", "Choose a class"], horizontal=True,
                               key="sal_target_mode")
        alpha = o3.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="sal_alpha")
        if target_mode == "Choose a class":
            targets = [st.selectbox("Class to explain", range(len(CLASSES)), index=pred,
                                    format_func=lambda c: CLASSES[c], key="sal_target")]
        else:
            targets = [pred] + ([true] if true is not None and true != pred else [])
        with_trust = st.toggle("Trust scores (deletion/insertion and the randomization check; slower)", value=True,
                               key="sal_trust")
        if true is not None and true == pred and target_mode != "Choose a class":
            st.caption("The prediction is correct, so predicted and true class are the same map.")

        for method in methods:
            st.markdown(f"**{interpret.METHOD_NAMES[method]}**")
            cols = st.columns(4)  # (map, scores) per target: predicted and true side by side
            for n, t in enumerate(targets):
                smap, tr, err, ms = explain(ctx.checkpoint, ckpt_key, face, int(t), method, with_trust)
                img_col, score_col = cols[2 * n], cols[2 * n + 1]
                kind = "predicted" if t == pred else ("true" if t == true else "chosen")
                if err:
                    img_col.error(err)
                    continue
                img_col.image(interpret.overlay(face, smap, alpha), caption=f"{CLASSES[t]} ({kind}), p={probs[t]:.2f}")
                shares = zip(interpret.region_masks(), interpret.region_shares(smap))  # eyes/brows, nose, mouth, other
                img_col.caption(" · ".join(f"{r.replace('_', '/')} {v:.0%}" for r, v in shares) + f" · {ms:.0f} ms")
                if tr is None:
                    continue
                score_col.metric("Faithfulness", f"{tr['score']:+.2f}", help=(
                    "Mean of the deletion and insertion gains: how much faster p(class) falls when the most "
                    "salient pixels are replaced by the training mean, and rises when only they are shown, "
                    "than with random pixels. > 0: the map ranks pixels better than chance."))
                score_col.caption(f"deletion AUC {tr['deletion_auc']:.2f} (random {tr['deletion_random_auc']:.2f}) · "
                                  f"insertion AUC {tr['insertion_auc']:.2f} (random {tr['insertion_random_auc']:.2f})")
                ok = tr["sanity_passed"]
                score_col.metric("Randomization ρ", f"{tr['sanity_spearman']:.2f}",
                                 delta="passes" if ok else "fails", delta_color="normal" if ok else "inverse",
                                 help="Spearman correlation with the map of the same network with random weights "
                                      f"(Adebayo et al., 2018). Below {interpret.SANITY_MAX_RHO} passes; a high "
                                      "value means the map barely depends on what the model learned.")
                score_col.image(interpret.overlay(face, tr["random_map"], alpha, scale=1), width=72,
                                caption="random-weights map")
                with score_col.popover("Deletion / insertion curves"):
                    st.line_chart(pd.DataFrame({
                        "deletion": tr["deletion_curve"], "deletion, random pixels": tr["deletion_random_curve"],
                        "insertion": tr["insertion_curve"], "insertion, random pixels": tr["insertion_random_curve"],
                    }, index=pd.Index(np.round(tr["fractions"], 3), name="fraction of pixels")), height=240)
                    st.caption(f"p({CLASSES[t]}) as pixels are replaced by the training mean (deletion) or "
                               "revealed on it (insertion), most salient first, against random pixel orders.")

with tab_avg:
    st.caption("Faces are aligned, so averaging normalized maps shows where the model looks for each expression. "
               "Regions on the 48x48 face: " + ", ".join(f"{n} rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}"
                                                        for n, (r0, r1, c0, c1) in interpret.REGIONS.items()) + ".")
    a1, a2, a3 = st.columns(3)
    avg_method = a1.selectbox("Method", interpret.METHODS, format_func=interpret.METHOD_NAMES.get, key="avg_method")
    per_class = a2.slider("Faces per class", 5, 100, 20, 5, key="avg_per_class",
                          help="Occlusion and Integrated Gradients take longer per face than the other methods")
    target_kind = a3.radio("Explain", ["true", "pred"], horizontal=True, key="avg_target",
                           format_func=lambda s: f"{s} class")
    if st.toggle("Compute class averages", key="avg_on"):
        avg = cached_class_average(ctx.checkpoint, ckpt_key, ctx.data, data_key, ctx.split, avg_method, per_class,
                                   target_kind)
        mean_faces = [faces.x[faces.y == k].mean(0) if (faces.y == k).any() else np.zeros((48, 48))
                      for k in range(len(CLASSES))]
        cols = st.columns(len(CLASSES))
        for k, col in enumerate(cols):
            col.image(interpret.overlay(mean_faces[k], avg.maps[k], 0.6, scale=2),
                      caption=f"{CLASSES[k]} (n={avg.counts[k]})")
        shares = interpret.region_shares(avg.maps)  # (C, R)
        names = list(interpret.region_masks())
        df = pd.DataFrame(shares, index=list(CLASSES), columns=names)
        df.loc["(area share)"] = interpret.area_shares()
        st.dataframe(df.style.format("{:.1%}"), key="avg_regions")
        st.bar_chart(df.drop(index="(area share)").loc[avg.counts > 0], stack=False, height=280)
        st.image(interpret.upscale(interpret.region_image(np.mean(faces.x, 0)), 4), width=192,
                 caption="regions on the mean face of this split")
