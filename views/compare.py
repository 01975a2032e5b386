"""Compare: two checkpoints on the same faces: accuracy and macro F1 with McNemar's paired test, both confusion
matrices and their difference, per-class recall side by side, and the faces they disagree on (open any in
Saliency)."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_common import (checkpoint_choices, checkpoint_label, file_version, get_faces, get_predictions, model_or_stop,
                        open_in_saliency, sidebar)
from app_state import keep, restore
from fer_core import compare, draw
from fer_core.images import DataError
from fer_core.sources import CLASSES
from fer_core.text import md, plot_text

GALLERY = 18  # disagreements drawn as faces (the table lists all)
SHOWN = {"all": "all", "a": "only A right", "b": "only B right", "neither": "neither right"}


@st.cache_data(show_spinner=False, max_entries=16)
def report(a: str, a_key: str, b: str, b_key: str, data: str, data_key: str, split: str) -> dict:
    pa, pb = get_predictions(a, data, split), get_predictions(b, data, split)
    return compare.compare(pa.true, pa.probs, pb.probs, ids=get_faces(data, split).ids)


def pick_b(a: str) -> str:
    """Model B: any other checkpoint (shipped or a run's), kept in the URL as ?b=."""
    others = [c for c in checkpoint_choices() if c != a]
    if not others:
        st.info("Compare needs a second checkpoint: train one on the Train page.")
        st.stop()
    restore("cmp_b", "b", str, lambda v: v in others)
    if st.session_state.get("cmp_b") not in others:
        st.session_state["cmp_b"] = others[0]
    b = st.selectbox("Model B (model A is the active checkpoint in the sidebar)", others, key="cmp_b",
                     format_func=checkpoint_label)
    keep("cmp_b", "b", b)
    return b


def headline(r: dict) -> None:
    m, a, b = r["mcnemar"], r["a"], r["b"]
    c = st.columns(5)
    c[0].metric("Accuracy A", f"{a['accuracy']:.4f}")
    c[1].metric("Accuracy B", f"{b['accuracy']:.4f}", f"{b['accuracy'] - a['accuracy']:+.4f}")
    c[2].metric("Macro F1 A", f"{a['macro_f1']:.4f}")
    c[3].metric("Macro F1 B", f"{b['macro_f1']:.4f}", f"{b['macro_f1'] - a['macro_f1']:+.4f}")
    c[4].metric("McNemar mid-p", f"{m['p_mid']:.3g}", help=(
        "Paired test on the faces exactly one model gets right (Fagerland et al. 2013 recommend the mid-p). "
        f"Exact p {m['p_exact']:.3g}; chi-square {m['chi2']:.2f}, p {m['p_chi2']:.3g}."))
    verdict = "a difference this large is unlikely by chance" if m["p_mid"] < 0.05 else "no significant difference"
    st.caption(f"{r['n']:,} faces. A right and B wrong: {m['b']:,}; A wrong and B right: {m['c']:,}; {verdict} "
               "at the 5% level.")


def heat(z, title: str, diverging: bool = False) -> go.Figure:
    z = np.asarray(z)
    lim = max(1, int(np.abs(z).max()))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(CLASSES), y=list(CLASSES), text=[[f"{v:+d}" if diverging else str(v) for v in row] for row in z],
        texttemplate="%{text}", colorscale="RdBu" if diverging else "Blues", zmin=-lim if diverging else 0, zmax=lim,
        showscale=False, hovertemplate="true %{y} → predicted %{x}: %{text}<extra></extra>"))
    fig.update_layout(title=plot_text(title), height=380, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(title="predicted", side="top"), yaxis=dict(title="true", autorange="reversed"))
    return fig


def confusions(r: dict) -> None:
    st.subheader("Confusion matrices")
    c = st.columns(3)
    ca, cb = np.array(r["a"]["confusion_matrix"]), np.array(r["b"]["confusion_matrix"])
    c[0].plotly_chart(heat(ca, "A"), width="stretch", key="cmp_cm_a")
    c[1].plotly_chart(heat(cb, "B"), width="stretch", key="cmp_cm_b")
    c[2].plotly_chart(heat(r["confusion_difference"], "B − A (red: more faces in B)", True), width="stretch",
                      key="cmp_cm_diff")


def recall(r: dict) -> None:
    st.subheader("Per-class recall")
    fig = go.Figure([go.Bar(name=m, x=list(CLASSES), y=[r["recall"][c][m.lower()] for c in CLASSES]) for m in "AB"])
    fig.update_layout(barmode="group", height=300, margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(range=[0, 1]))
    left, right = st.columns([3, 2])
    left.plotly_chart(fig, width="stretch", key="cmp_recall")
    right.dataframe(pd.DataFrame([{"class": c, "A": v["a"], "B": v["b"], "B − A": v["b"] - v["a"]}
                                  for c, v in r["recall"].items()]), hide_index=True, width="stretch",
                    key="cmp_recall_table", column_config={k: st.column_config.NumberColumn(k, format="%.3f")
                                                           for k in ("A", "B", "B − A")})


def disagreement_rows(r: dict, order: str, shown: str) -> list[dict]:
    rows = r["disagreements"]
    if order != "both":
        rows = sorted(rows, key=lambda d: -d[f"conf_{order}"])  # stable: ties keep the "both" order
    return [d for d in rows if shown == "all" or d["right"] == shown]


def gallery(ctx, r: dict, faces, a: str, b: str) -> None:
    st.subheader(f"Faces they disagree on: {r['n_disagree']:,}")
    c1, c2, c3 = st.columns(3)
    order = c1.radio("Sort by", list(compare.ORDERS), format_func=compare.ORDERS.get, horizontal=True,
                     key="cmp_order", help="both confident: by the lower of the two models' confidences")
    shown = c2.radio("Show", list(SHOWN), format_func=SHOWN.get, horizontal=True, key="cmp_shown")
    explain_with = c3.radio("Explain with", ["A", "B"], horizontal=True, key="cmp_explain_with",
                            help="B becomes the active checkpoint when you explain with it")
    rows = disagreement_rows(r, order, shown)
    if not rows:
        st.info("No face of this kind: the two models agree on every face." if not r["n_disagree"]
                else "No disagreement of this kind.")
        return
    cols = st.columns(6)
    for n, d in enumerate(rows[:GALLERY]):
        with cols[n % 6]:
            st.image(draw.upscale(faces.x[d["index"]], 2),
                     caption=f"#{d['index']} · true {d['true']} · A {d['pred_a']} {d['conf_a']:.2f} · "
                             f"B {d['pred_b']} {d['conf_b']:.2f}")
            if st.button("Explain", key=f"cmp_explain_{d['index']}", help="open this face in the Saliency page"):
                open_in_saliency(ctx, d["index"], f"Compare page (model {explain_with})",
                                 a if explain_with == "A" else b)
    with st.expander(f"All {len(rows):,} faces of this kind"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="cmp_rows")


ctx = sidebar()
st.title("Compare")
model_or_stop(ctx.checkpoint)
b = pick_b(ctx.checkpoint)
model_or_stop(b, "checkpoint B")
try:
    faces = get_faces(ctx.data, ctx.split)
except (DataError, OSError) as e:
    st.error(md(e))
    st.stop()
st.caption(md(f"A: {checkpoint_label(ctx.checkpoint)} · B: {checkpoint_label(b)} · split {ctx.split} of {ctx.data}"))
for ckpt in (ctx.checkpoint, b):  # with a progress bar when not cached yet; report() then reads them
    get_predictions(ckpt, ctx.data, ctx.split)
r = report(ctx.checkpoint, file_version(ctx.checkpoint), b, file_version(b), ctx.data, file_version(ctx.data),
           ctx.split)
headline(r)
confusions(r)
recall(r)
gallery(ctx, r, faces, ctx.checkpoint, b)
