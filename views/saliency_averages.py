"""The Saliency page's class averages (views/saliency.py draws them): each class's mean map over its faces, the
share of saliency per face region, and the regions on the mean face."""
import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app_common import get_faces, get_model, get_predictions
from app_state import keep, restore
from fer_core import draw, regions, render, saliency
from fer_core.sources import CLASSES


@st.cache_data(show_spinner="Averaging saliency over faces of every class...", max_entries=16)
def cached_class_average(ckpt: str, ckpt_key: float, data: str, data_key: float, split: str, method: str,
                         per_class: int, target_kind: str):
    model, prep = get_model(ckpt)
    fs = get_faces(data, split)
    preds = get_predictions(ckpt, data, split)
    targets = preds.pred if target_kind == "pred" else fs.y
    return regions.class_average(model, prep, fs.x, fs.y, method, per_class=per_class, targets=targets,
                                 target_kind=target_kind)


def controls() -> tuple[str, int, str]:
    """(method, faces per class, "true" or "pred" class) of the averages; the method is kept in the URL."""
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
    return avg_method, per_class, target_kind


def mean_maps(avg, faces) -> None:
    """Each class's mean map over its mean face."""
    mean_faces = render.class_mean_faces(faces.x, faces.y)
    cols = st.columns(len(CLASSES))
    for k, col in enumerate(cols):
        col.image(draw.overlay(mean_faces[k], avg.maps[k], 0.6, scale=2), caption=f"{CLASSES[k]} (n={avg.counts[k]})")
    st.image(draw.colorbar("jet", 288, 10), width=288,
             caption="mean importance: low → high (to each map's 99th percentile)")


def region_shares(avg, faces) -> None:
    """The share of each class's mean map per face region (against each region's share of the area): a table,
    bars, and the regions drawn on the mean face."""
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
                 category_orders={"class": list(CLASSES), "region": names}, color_discrete_map=regions.region_hex())
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis_tickformat=".0%", legend_title_text="")
    g1, g2 = st.columns([4, 1])
    g1.plotly_chart(fig, width="stretch", key="avg_bars")
    g2.image(draw.upscale(regions.region_image(np.mean(faces.x, 0)), 4), width=192,
             caption="regions on the mean face of this split, in the chart's colours (other: the rest)")


def class_averages(ctx, faces, ckpt_key, data_key) -> None:
    """The Class averages tab: computed when its toggle is on."""
    method, per_class, target_kind = controls()
    if st.toggle("Compute class averages", key="avg_on"):
        avg = cached_class_average(ctx.checkpoint, ckpt_key, ctx.data, data_key, ctx.split, method, per_class,
                                   target_kind)
        mean_maps(avg, faces)
        region_shares(avg, faces)
