"""The Saliency page's maps of one face (views/saliency.py draws them): each method's map for the predicted and
the true (or a chosen) class, its settings (kept in the URL) and its trust scores."""
import time

import numpy as np
import pandas as pd
import streamlit as st

from app_common import get_model
from app_state import keep, restore
from fer_core import draw, picks, saliency, trust
from fer_core.sources import CLASSES


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


def show_method(ckpt: str, ckpt_key, method: str, opts: dict, face, targets, probs, true, alpha: float,
                with_trust: bool) -> None:
    """One method's maps, predicted and true (or chosen) class side by side, each with its trust scores."""
    pred = int(probs.argmax())
    m_opts = tuple(sorted((n, v) for n, v in opts.items() if n in saliency.METHOD_SETTINGS[method]))
    st.markdown(f"**{saliency.METHOD_NAMES[method]}**"
                + (" · " + ", ".join(f"{n.replace('_', ' ')} {v}" for n, v in m_opts) if m_opts else ""))
    cols = st.columns(4)  # (map, scores) per target: predicted and true side by side
    for n, t in enumerate(targets):
        smap, tr, err, ms = explain(ckpt, ckpt_key, face, int(t), method, with_trust, m_opts)
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
