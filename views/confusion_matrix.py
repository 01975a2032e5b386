"""Confusion Matrix: click a cell (or pick it below) to see its faces; open any face in the Saliency page."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_common import get_faces, get_predictions, model_or_stop, open_in_saliency, sidebar, view_id
from app_state import keep, restore
from fer_core import draw, interpret
from fer_core.images import DataError
from fer_core.sources import CLASSES
from fer_core.text import md

VIEWS = {"counts": "Counts", "recall": "Row-normalized (recall)"}
ss = st.session_state


def load(ctx):
    """The split's faces (the active model must load); a page that cannot have them says why and stops."""
    model_or_stop(ctx.checkpoint)
    try:
        return get_faces(ctx.data, ctx.split)
    except (DataError, OSError) as e:
        st.error(md(e))
        st.stop()


def parse_cell(text: str) -> tuple[int, int]:  # "angry-sad" -> (0, 4)
    t, p = text.split("-")
    return CLASSES.index(t), CLASSES.index(p)


def view_controls(cell_key: str) -> tuple[str, bool]:
    """(values shown, TTA on); the view lives in the URL (?values=recall&tta=1&cell=fear-sad) and in the session,
    see app_state.restore."""
    restore("cm_view", "values", lambda v: VIEWS[v], lambda v: v in VIEWS.values())
    restore("cm_tta", "tta", lambda v: v == "1")
    restore(cell_key, "cell", parse_cell,
            lambda c: c is None or (0 <= c[0] < len(CLASSES) and 0 <= c[1] < len(CLASSES)), memo="cm_cell")
    c1, c2 = st.columns([2, 1])
    view = c1.radio("Values", list(VIEWS.values()), horizontal=True, key="cm_view")
    tta = c2.toggle("TTA (average with the mirrored face)", key="cm_tta")
    keep("cm_view", "values", view, lambda v: next(k for k, name in VIEWS.items() if name == v))
    keep("cm_tta", "tta", True if tta else None, lambda v: "1")
    return view, tta


def headline(ctx, preds, table) -> None:
    m1, m2, m3 = st.columns(3)
    m1.metric("Faces", f"{len(preds):,}", help=f"split '{md(ctx.split)}' of {md(ctx.data)}")
    m2.metric("Accuracy", f"{float((preds.true == preds.pred).mean()):.3f}")
    m3.metric("Macro F1", f"{np.mean([r['f1'] for r in table]):.3f}")


def matrix_figure(counts, norm, normalized: bool, chosen) -> go.Figure:
    """Heatmap drawn as square scatter markers: plotly reports clicks on scatter points, not on go.Heatmap cells.
    Values are annotations and selected/unselected points keep full opacity, so a click fades nothing; the
    chosen cell gets an outline instead (drawn from the cell picker, so it survives leaving the page)."""
    vals = norm if normalized else counts
    ii, jj = np.meshgrid(range(len(CLASSES)), range(len(CLASSES)), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    fig = go.Figure(go.Scatter(
        x=[CLASSES[j] for j in jj], y=[CLASSES[i] for i in ii], mode="markers",
        marker=dict(symbol="square", size=50, color=vals.ravel(), colorscale="Blues", showscale=True,
                    cmin=0, line=dict(width=1, color="white"),
                    colorbar=dict(title="recall" if normalized else "faces", thickness=14)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        customdata=np.stack([ii, jj, counts.ravel()], 1),
        hovertemplate="true %{y} → predicted %{x}<br>%{customdata[2]} faces<extra></extra>",
    ))
    for i, j, v in zip(ii, jj, vals.ravel()):
        fig.add_annotation(x=CLASSES[j], y=CLASSES[i], text=f"{v:.2f}" if normalized else str(int(v)),
                           showarrow=False,
                           font=dict(color="white" if v > 0.6 * max(vals.max(), 1e-9) else "black", size=13))
    if chosen is not None:
        t, p = chosen
        fig.add_shape(type="rect", x0=p - 0.45, x1=p + 0.45, y0=t - 0.45, y1=t + 0.45, xref="x", yref="y",
                      line=dict(color="#d62728", width=3))
    fig.update_layout(
        width=660, height=560, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white", clickmode="event+select",
        xaxis=dict(title="predicted", categoryorder="array", categoryarray=list(CLASSES), side="top"),
        yaxis=dict(title="true", categoryorder="array", categoryarray=list(CLASSES), autorange="reversed"),
    )
    return fig


def pick_cell(event, counts, cell_key: str):
    """The cell picker mirrors the chart: a click sets it, and it also works where clicks cannot (keyboard,
    tests). -> (true, pred) or None."""
    cells = [None] + sorted(((int(i), int(j)) for i in range(len(CLASSES)) for j in range(len(CLASSES))),
                            key=lambda c: (c[0] == c[1], -counts[c], c))
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    try:
        clicked = (CLASSES.index(points[0]["y"]), CLASSES.index(points[0]["x"])) if points else None  # (true, pred)
    except (KeyError, ValueError, TypeError):
        clicked = None  # a selection that is not a cell (e.g. the colorbar)
    if clicked is not None:
        if clicked != ss.get("cm_last_click"):
            ss["cm_last_click"] = clicked
            ss[cell_key] = clicked
            st.rerun()  # redraw the matrix with the new cell outlined
    cell = st.selectbox(
        "Cell (true → predicted), most confused first", cells, key=cell_key,
        format_func=lambda c: "choose a cell, or click one above" if c is None
        else f"{CLASSES[c[0]]} → {CLASSES[c[1]]} · {counts[c]} faces",
    )
    keep("cm_cell", "cell", cell, lambda c: f"{CLASSES[c[0]]}-{CLASSES[c[1]]}")
    return cell


def cell_faces(ctx, faces, preds, cell) -> None:
    """The faces of one cell, most confident first, each openable in Saliency; all their probabilities."""
    i, j = cell
    idx = interpret.cell_samples(preds, i, j)
    st.subheader(f"True {CLASSES[i]}, predicted {CLASSES[j]}: {len(idx)} faces")
    if len(idx) == 0:
        st.info(f"No face of class {CLASSES[i]} is predicted as {CLASSES[j]} in split '{md(ctx.split)}'.")
        return
    n_show = st.slider("Faces to show (most confident first)", 1, min(60, len(idx)), min(18, len(idx)),
                       key="cm_n_show") if len(idx) > 1 else 1
    cols = st.columns(6)
    for n, k in enumerate(idx[:n_show]):
        p = preds.probs[k]
        top = np.argsort(-p)[:3]
        with cols[n % 6]:
            st.image(draw.upscale(faces.x[k], 2),
                     caption=f"#{k} · " + " · ".join(f"{CLASSES[t][:3]} {p[t]:.2f}" for t in top))
            if st.button("Explain", key=f"cm_explain_{k}", help="open this face in the Saliency page"):
                open_in_saliency(ctx, k, f"confusion cell {CLASSES[i]} → {CLASSES[j]}")
    with st.expander("All probabilities of these faces"):
        probs = pd.DataFrame(preds.probs[idx], columns=CLASSES)
        probs.insert(0, "face", [f"#{k} {faces.ids[k]}" for k in idx])
        st.dataframe(probs, hide_index=True, width="stretch", column_config={
            "face": st.column_config.TextColumn("face", pinned=True, width="medium"),
            **{c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.2f", width="small")
               for c in CLASSES}})


def per_class(table) -> None:
    st.subheader("Per class")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", key="cm_per_class",
                 column_order=["class", "recall", "precision", "f1", "support"], column_config={
                     "class": st.column_config.TextColumn("class", help="FER2013 order"),
                     "recall": st.column_config.ProgressColumn("recall", min_value=0.0, max_value=1.0, format="%.3f"),
                     "precision": st.column_config.NumberColumn("precision", format="%.3f"),
                     "f1": st.column_config.NumberColumn("F1", format="%.3f"),
                     "support": st.column_config.NumberColumn("faces", format="%d", help="faces of this class")})


def confused_pairs(counts) -> None:
    st.subheader("Most confused pairs")
    pairs = interpret.most_confused(counts, k=10)
    if not pairs:
        st.info("No confusions: every face is classified correctly.")
        return
    st.dataframe(pd.DataFrame([{"true": p["true_name"], "predicted": p["pred_name"], "faces": p["count"],
                                "share": 100 * p["rate"]} for p in pairs]), hide_index=True, width="stretch",
                 key="cm_pairs", column_config={
                     "faces": st.column_config.NumberColumn("faces", format="%d"),
                     # one decimal for every row ("percent" showed 23% beside 21.43%)
                     "share": st.column_config.NumberColumn("share of true class", format="%.1f%%",
                                                            help="faces of the true class sent to this one")})


ctx = sidebar()
st.title("Confusion Matrix")
faces = load(ctx)
cell_key = f"cm_cell.{view_id(ctx)}"  # labels below depend on the checkpoint and data: their widgets are keyed by it
view, tta = view_controls(cell_key)
preds = get_predictions(ctx.checkpoint, ctx.data, ctx.split, tta)
counts, norm = interpret.confusion(preds.true, preds.pred)
table = interpret.class_table(preds.true, preds.pred)
headline(ctx, preds, table)
event = st.plotly_chart(matrix_figure(counts, norm, view.startswith("Row"), ss.get(cell_key)), width="content",
                        on_select="rerun", selection_mode="points", key="cm_chart")
cell = pick_cell(event, counts, cell_key)
if cell is not None:
    cell_faces(ctx, faces, preds, cell)
left, right = st.columns(2)
with left:
    per_class(table)
with right:
    confused_pairs(counts)
st.caption(f"Predictions {'read from the disk cache' if preds.from_cache else 'computed'} in {preds.seconds:.2f} s.")
