"""Embeddings: how the model arranges a split's faces (its penultimate features projected to 2-D). Click a point
for that face, lasso or box a group to list it, and open any face in the Saliency page."""
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app_common import (file_version, get_faces, get_model, get_predictions, model_or_stop, open_in_saliency, sidebar,
                        view_id)
from app_progress import progress_reporter, top_slot
from app_state import keep, restore
from fer_core import draw, embeddings
from fer_core.images import DataError
from fer_core.sources import CLASSES
from fer_core.text import md, plot_text

COLOURS = {"true": "true class", "pred": "predicted class"}
SVG_POINTS = 5000  # up to this many faces the map is SVG (every point clickable); above, WebGL
MAX_LISTED = 60  # faces drawn of a lasso or box selection (the table lists all)
PALETTE = px.colors.qualitative.D3
HOW = "Click a face; to list a group, pick Lasso or Box select in the chart's toolbar and draw around it."


@st.cache_data(show_spinner=False, max_entries=16)
def projection(ckpt: str, ckpt_key: str, data: str, data_key: str, split: str, method: str):
    model, prep = get_model(ckpt)
    emb = embeddings.embed(model, prep, get_faces(data, split), checkpoint=ckpt)
    return embeddings.project(emb.feats, method)


def features_ready(ctx, model, prep, faces) -> None:
    """Compute the features into the disk cache with a progress bar when they are not there yet."""
    try:
        on_disk = embeddings.embedding_cache_file(ctx.checkpoint, ctx.data, ctx.split).exists()
    except OSError:
        on_disk = True  # let the cached call raise its own error
    if not on_disk:
        slot = top_slot()
        report = progress_reporter(slot, "Penultimate features")
        embeddings.embed(model, prep, faces, checkpoint=ctx.checkpoint, progress=lambda d, n: report(d, n, "faces"))
        slot.empty()


def controls() -> tuple[str, str]:
    c1, c2 = st.columns(2)
    restore("emb_method", "proj", str, lambda m: m in embeddings.PROJECTIONS)
    method = c1.radio("Projection", list(embeddings.PROJECTIONS), format_func=embeddings.PROJECTIONS.get,
                      horizontal=True, key="emb_method",
                      help="PCA: the two directions of most variance (fast). t-SNE: keeps neighbours together "
                           "(slower: about a minute for 5,000 faces on two cores)")
    keep("emb_method", "proj", method)
    restore("emb_colour", "colour", str, lambda c: c in COLOURS)
    colour = c2.radio("Colour by", list(COLOURS), format_func=COLOURS.get, horizontal=True, key="emb_colour")
    keep("emb_colour", "colour", colour)
    return method, colour


def figure(xy, preds, colour: str) -> go.Figure:
    """One trace per class (its colour, in the legend); a misclassified face is an x, a correct one a dot."""
    by = preds.true if colour == "true" else preds.pred
    trace = go.Scatter if len(xy) <= SVG_POINTS else go.Scattergl
    fig = go.Figure()
    for k, name in enumerate(CLASSES):
        idx = np.flatnonzero(by == k)
        wrong = preds.pred[idx] != preds.true[idx]
        hover = [f"#{i} · true {CLASSES[preds.true[i]]} · predicted {CLASSES[preds.pred[i]]} "
                 f"{preds.confidence[i]:.2f}" for i in idx]
        fig.add_trace(trace(
            x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=plot_text(name), customdata=idx, text=hover,
            hovertemplate="%{text}<extra></extra>",
            marker=dict(color=PALETTE[k % len(PALETTE)], size=np.where(wrong, 8, 6).tolist(), opacity=0.8,
                        symbol=np.where(wrong, "x", "circle").tolist(), line=dict(width=0))))
    fig.update_layout(height=620, margin=dict(l=10, r=10, t=30, b=10), clickmode="event+select",
                      legend=dict(title=COLOURS[colour] + " (x: misclassified)"), plot_bgcolor="white",
                      xaxis=dict(showgrid=False, zeroline=False), yaxis=dict(showgrid=False, zeroline=False))
    return fig


def selection(event) -> tuple[int | None, list[int]]:
    """(the face clicked, or None; the faces a lasso or box selected, [] for none) from the chart's event."""
    sel = (event or {}).get("selection") or {}
    points = [p for p in sel.get("points", []) if p.get("customdata") is not None]
    faces = [int(np.ravel(p["customdata"])[0]) for p in points]
    if sel.get("box") or sel.get("lasso"):
        return None, faces
    return (faces[0] if faces else None), []


def pick_face(vid: str, n: int, clicked) -> int | None:
    """The face shown below: the one clicked last, or typed into the picker (kept in the URL as ?face=)."""
    key = f"emb_face.{vid}"
    restore(key, "face", int, lambda k: 0 <= k < n, memo="emb_face")
    if clicked is not None and clicked != st.session_state.get("emb_last_click"):
        st.session_state["emb_last_click"] = st.session_state[key] = clicked
    k = st.number_input(f"Face (click a point, or type its number, 0 to {n - 1})", 0, n - 1, value=None, step=1,
                        key=key)
    keep("emb_face", "face", None if k is None else int(k))
    return None if k is None else int(k)


def show_face(ctx, faces, preds, k: int) -> None:
    p = preds.probs[k]
    ok = "correct" if preds.pred[k] == preds.true[k] else "misclassified"
    c1, c2, c3 = st.columns([1, 3, 1])
    c1.image(draw.upscale(faces.x[k], 3), caption=md(f"#{k} {faces.ids[k]}"))
    fig = px.bar(x=p, y=list(CLASSES), orientation="h", height=230, range_x=[0, 1],
                 labels={"x": "probability", "y": ""})
    fig.update_layout(margin=dict(l=0, r=10, t=10, b=0),
                      yaxis=dict(categoryorder="array", categoryarray=list(CLASSES)[::-1]))
    fig.update_traces(marker_color=["#d62728" if c == preds.pred[k] else "#1f77b4" for c in range(len(CLASSES))])
    c2.plotly_chart(fig, width="stretch", key="emb_probs")
    c3.markdown(f"true **{CLASSES[preds.true[k]]}**  \npredicted **{CLASSES[preds.pred[k]]}** "
                f"{preds.confidence[k]:.2f}  \n{ok}")
    if c3.button("Open in Saliency", key="emb_open", type="primary"):
        open_in_saliency(ctx, k, "embedding map")


def show_group(faces, preds, idx: list[int]) -> None:
    idx = np.array(sorted(set(idx)))
    right = preds.pred[idx] == preds.true[idx]
    st.subheader(f"{len(idx)} faces selected: {right.mean():.0%} correctly classified")
    tiles = np.stack([draw.upscale(faces.x[k], 2) for k in idx[:MAX_LISTED]])
    st.image(draw.mosaic(tiles, 12, pad=2), caption=f"the first {min(len(idx), MAX_LISTED)}, in split order")
    st.dataframe(pd.DataFrame({"face": idx, "file": [str(faces.ids[k]) for k in idx],
                               "true": [CLASSES[preds.true[k]] for k in idx],
                               "predicted": [CLASSES[preds.pred[k]] for k in idx],
                               "confidence": preds.confidence[idx]}),
                 hide_index=True, width="stretch", key="emb_group", column_config={
                     "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0,
                                                                   format="%.2f")})


def explain_axes(proj, n: int) -> None:
    if proj.explained:
        st.caption(f"{n:,} faces. PCA of the penultimate features: the axes hold {proj.explained[0]:.0%} and "
                   f"{proj.explained[1]:.0%} of their variance. {HOW}")
    else:
        st.caption(f"{n:,} faces. t-SNE of the penultimate features: distances between groups mean little, "
                   f"neighbours do. {HOW}")


ctx = sidebar()
st.title("Embeddings")
model, prep = model_or_stop(ctx.checkpoint)
try:
    faces = get_faces(ctx.data, ctx.split)
    embeddings.penultimate_head(model)
except (DataError, OSError, ValueError) as e:
    st.error(md(e))
    st.stop()
vid = view_id(ctx)
method, colour = controls()
preds = get_predictions(ctx.checkpoint, ctx.data, ctx.split)
features_ready(ctx, model, prep, faces)
with st.spinner(f"{embeddings.PROJECTIONS[method]} of {len(faces):,} faces..."):
    proj = projection(ctx.checkpoint, file_version(ctx.checkpoint), ctx.data, file_version(ctx.data), ctx.split, method)
explain_axes(proj, len(faces))
event = st.plotly_chart(figure(proj.xy, preds, colour), width="stretch", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), key=f"emb_chart.{vid}.{method}.{colour}")
clicked, group = selection(event)
if group:
    show_group(faces, preds, group)
k = pick_face(vid, len(faces), clicked)
if k is not None:
    show_face(ctx, faces, preds, k)
