"""Home: the active model's card, the data set summary and links into every view."""
import os
from datetime import datetime

import pandas as pd
import plotly.express as px
import streamlit as st

from app_common import available_pages, checkpoint_label, get_class_counts, get_model, get_splits, sidebar
from fer_core import count_parameters
from fer_core.checkpoint import CheckpointError

ctx = sidebar()
st.title("fer-dashboard")
st.caption("Facial expression recognition on FER2013 (48x48 grayscale faces, 7 expressions): train models, "
           "see where they fail and what they look at.")

left, right = st.columns([1, 1], gap="large")

# --- the active model
with left:
    st.subheader("Active model")
    try:
        model, prep = get_model(ctx.checkpoint)
    except CheckpointError as e:
        model = None
        st.error(f"Cannot load the active checkpoint: {e}")
        st.info("Pick another checkpoint in the sidebar, or train one on the Train page.")
    if model is not None:
        meta = model.checkpoint
        metrics = meta.get("metrics") or {}
        tc = meta.get("train_config") or {}
        acc = metrics.get("val_acc", metrics.get("test_acc", metrics.get("accuracy")))
        c1, c2, c3 = st.columns(3)
        c1.metric("Architecture", meta.get("model_name", "?"))
        n_params = count_parameters(model)
        c2.metric("Parameters", f"{n_params / 1e6:.2f}M" if n_params >= 1e6 else f"{n_params:,}",
                  help=f"{n_params:,} trainable parameters")
        c3.metric("Accuracy", f"{acc:.1%}" if isinstance(acc, (int, float)) else "-",
                  help="Validation accuracy stored with the checkpoint"
                       + (f" ({tc.get('val_split', 'val')} split, epoch {meta.get('epoch')})" if tc else ""))
        stat = os.stat(ctx.checkpoint)
        st.caption(f"{checkpoint_label(ctx.checkpoint)} · {stat.st_size / 1e6:.1f} MB · saved "
                   f"{datetime.fromtimestamp(stat.st_mtime):%Y-%m-%d %H:%M} · normalization "
                   f"{(meta.get('normalization') or {}).get('mode', '?')}")
        if meta.get("model_args"):
            st.caption("Model arguments: " + ", ".join(f"{k}={v}" for k, v in meta["model_args"].items()))
        if tc:
            keys = ["epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "augment", "rotation",
                    "zoom", "shift", "flip", "erase", "normalize", "label_smoothing", "seed", "max_train_samples"]
            shown = {"max_train_samples": {None: "all"}, "weight_decay": {None: "optimizer default"}}
            rows = [(k, str(shown.get(k, {}).get(tc[k], tc[k]))) for k in keys if k in tc]
            st.markdown("**Training configuration**")
            st.dataframe(pd.DataFrame(rows, columns=["option", "value"]), hide_index=True, width="stretch",
                         height=35 * (len(rows) + 1) + 3)
        else:
            st.caption("No training configuration stored with this checkpoint.")

# --- the data set
with right:
    st.subheader("Data set")
    st.caption(ctx.data)
    rows, counts = [], {s: get_class_counts(ctx.data, s) for s in get_splits(ctx.data)}
    if "val" in counts and counts["val"] == counts.get("test"):
        del counts["val"]  # a source without a val split validates on its test split
        st.caption("No separate val split: validation uses the test split.")
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            rows.append({"split": split, "expression": cls, "faces": n})
    if rows:
        df = pd.DataFrame(rows)
        totals = df.groupby("split", sort=False)["faces"].sum()
        st.write(" · ".join(f"**{s}**: {n:,} faces" for s, n in totals.items()))
        fig = px.bar(df, x="expression", y="faces", color="split", barmode="group", height=340)
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend_title_text="")
        st.plotly_chart(fig, width="stretch")
    else:
        st.warning("This data source holds no faces.")

# --- links into every view
st.subheader("Views")
cols = st.columns(3)
for i, (path, title, icon, what) in enumerate(p for p in available_pages() if p[0] != "pages/home.py"):
    with cols[i % 3]:
        st.page_link(path, label=title, icon=icon)
        st.caption(what)
