"""Home: the active model's card, the data set summary, links into every view and the course report's study."""
import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from app_common import (PAGES, checkpoint_label, get_class_counts, get_faces, get_splits, model_or_stop, runs_dir,
                        sidebar, split_label)
from fer_core import ablation, count_parameters, report, runstate
from fer_core.config import options
from fer_core.images import DataError
from fer_core.inference import inference_precision
from fer_core.runtable import photo_line, provenance
from fer_core.sources import CLASSES
from fer_core.text import md

# what each view answers, in the order a first visit goes
QUESTIONS = {
    "views/confusion_matrix.py": "Which expressions does the model mix up? Click a cell to see those faces.",
    "views/saliency.py": "Which pixels made it decide? Maps by eight methods, each with a trust score.",
    "views/filters.py": "What does the first layer look for? Its kernels and the face patches that excite them.",
    "views/classify.py": "What does it say about your own photo or webcam picture?",
    "views/train.py": "Can you train a better one? Launch, watch and compare runs, then use the best.",
}


def start_here() -> None:
    st.subheader("Start here")
    views = [p for p in PAGES if p[0] != "views/home.py"]
    views.sort(key=lambda p: list(QUESTIONS).index(p[0]) if p[0] in QUESTIONS else len(QUESTIONS))
    per_row = 5  # nine links in one row cut their labels ("Confusic", "Data Auc") at 1400 px
    for start in range(0, len(views), per_row):
        for col, (path, title, icon, what) in zip(st.columns(per_row), views[start:start + per_row]):
            with col:
                st.page_link(path, label=title, icon=icon)
                st.caption(QUESTIONS.get(path, what))


def pct(v) -> str:
    return f"{v:.1%}" if isinstance(v, (int, float)) else "-"


def model_card(model) -> None:
    """The active model's headline numbers, read from its checkpoint."""
    meta = model.checkpoint
    metrics = meta.get("metrics") or {}
    tc = meta.get("train_config") or {}
    ev = meta.get("evaluation") or {}  # stored by scripts/stamp_evaluation.py: the shipped file, evaluated
    # the numbers of the precision this machine predicts in, so Confusion Matrix shows the same accuracy
    prec, fp32 = inference_precision(next(model.parameters()).device), dict(ev)
    if isinstance(ev.get(prec), dict):
        ev = {**ev, **ev[prec], "precision": prec}
    n_params = count_parameters(model)
    # one row across the page, so no value is cut off ("seed_vgg", not "seed_...")
    c1, c2, c3, c4, c5 = st.columns([1.3, 1, 1, 1, 1])
    c1.metric("Architecture", md(meta.get("model_name", "?")), help=f"model {md(meta.get('model_name', '?'))}")
    c2.metric("Parameters", f"{n_params / 1e6:.2f}M" if n_params >= 1e6 else f"{n_params:,}",
              help=f"{n_params:,} trainable parameters")
    if ev:
        where = md(f"{ev.get('split_name', ev.get('split'))}, {ev.get('n', 0):,} faces")
        c3.metric("Accuracy", pct(ev.get("accuracy")),
                  help=f"{where}: this checkpoint file evaluated on the {ev.get('device', 'cpu')} in "
                       f"{md(ev.get('precision', 'fp32'))} (python -m fer_core.evaluate), single pass")
        c4.metric("With flip TTA", pct(ev.get("tta_accuracy")), help=f"{where}: each face averaged with its mirror")
        c5.metric("Macro F1", f"{ev['macro_f1']:.3f}" if "macro_f1" in ev else "-", help=f"{where}, single pass")
        other = (f" This CPU predicts in {prec} (about twice as fast as fp32 here); in fp32 the same file reads "
                 f"{pct(fp32.get('accuracy'))}, {pct(fp32.get('tta_accuracy'))} with flip TTA."
                 if ev.get("precision") != fp32.get("precision", "fp32") else "")
        st.caption(f"Measured on {where} with this file.{other} During training (epoch {meta.get('epoch')}, "
                   f"{md(meta.get('hardware', 'its training device'))}) the same split read {pct(metrics.get('val_acc'))}"
                   " in mixed precision.")
    else:
        acc = metrics.get("val_acc", metrics.get("test_acc", metrics.get("accuracy")))
        c3.metric("Accuracy", pct(acc), help="Validation accuracy stored with the checkpoint"
                  + (f" ({tc.get('val_split', 'val')} split, epoch {meta.get('epoch')})" if tc else ""))
        c4.metric("Best epoch", str(meta.get("epoch", "-")), help="the epoch this checkpoint was saved at")
        c5.metric("Train accuracy", pct(metrics.get("train_acc")), help="on the training split at that epoch")


def training_config(ctx, meta: dict) -> None:
    """The checkpoint file, its model arguments and the configuration it was trained with."""
    tc = meta.get("train_config") or {}
    stat = os.stat(ctx.checkpoint)
    st.caption(f"{md(checkpoint_label(ctx.checkpoint))} · {stat.st_size / 1e6:.1f} MB · saved "
               f"{datetime.fromtimestamp(stat.st_mtime):%Y-%m-%d %H:%M} · normalization "
               f"{(meta.get('normalization') or {}).get('mode', '?')}")
    if meta.get("model_args"):
        st.caption("Model arguments: " + md(", ".join(f"{k}={v}" for k, v in meta["model_args"].items())))
    if tc:
        # every TrainConfig field but the data path (the training machine's) and the model arguments
        # (the caption above); None shows what it stands for
        rows = [(o.name, str(tc[o.name]) if tc[o.name] is not None else o.placeholder)
                for o in options() if o.name in tc and o.section != "source" and o.kind != "json"]
        st.markdown("**Training configuration**")
        st.dataframe(pd.DataFrame(rows, columns=["option", "value"]), hide_index=True, width="stretch",
                     height=35 * (len(rows) + 1) + 3, column_config={
                         "option": st.column_config.TextColumn("option", width="medium"),
                         "value": st.column_config.TextColumn("value", width="medium")})
    else:
        st.caption("No training configuration stored with this checkpoint.")


def data_set(ctx) -> None:
    """The data source's splits and faces per class."""
    st.markdown("**Data set**")
    st.caption(md(ctx.data))
    # each split of the source once, named with the FER2013 split it holds ("test (PublicTest)")
    rows, counts = [], {split_label(ctx.data, s): get_class_counts(ctx.data, s) for s in get_splits(ctx.data)}
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            rows.append({"split": split, "expression": cls, "faces": n})
    if rows:
        df = pd.DataFrame(rows)
        totals = df.groupby("split", sort=False)["faces"].sum()
        st.markdown(" · ".join(f"**{md(s)}**: {n:,} faces" for s, n in totals.items()))
        fig = px.bar(df, x="expression", y="faces", color="split", barmode="group", height=340,
                     category_orders={"expression": list(CLASSES)})
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend_title_text="")
        st.plotly_chart(fig, width="stretch")
    else:
        st.warning("This data source holds no faces.")


def report_panel(ctx, model, prep) -> None:
    """The course report's study of the active model on the active data (fer_core.report) as an HTML download;
    the runs chosen feed its training and ablation sections (by default the active run's ablation group)."""
    st.subheader("Report")
    st.caption("The course report's study for this model: layer table, training curves, the normalization and "
               "augmentation ablations (Table 1), confusion matrix, saliency maps with trust scores, filters. "
               "One self-contained HTML file (python -m fer_core.report does the same).")
    root, own = runs_dir().resolve(), Path(ctx.checkpoint).parent.resolve()
    names = [r.name for r in runstate.list_runs(runs_dir())]
    default = [p.name for p in ablation.group_runs(own) if p.name in names] if own.parent == root else []
    if "home_report_runs" in st.session_state:  # runs deleted since, or of another runs folder: dropped
        st.session_state["home_report_runs"] = [n for n in st.session_state["home_report_runs"] if n in names]
    chosen = st.multiselect("Runs for the training and ablation sections", names, default=default,
                            key="home_report_runs", placeholder="none")
    key = (ctx.checkpoint, ctx.data, ctx.split, tuple(chosen))
    if st.button("Report", key="home_report", type="primary", help="Build the report (about half a minute)"):
        bar = st.progress(0.0, text="Building the report...")
        try:
            rep = report.build(model, prep, get_faces(ctx.data, ctx.split), ctx.checkpoint,
                               [runs_dir() / n for n in chosen],
                               progress=lambda d, n, what: bar.progress(d / n, text=f"Building the report: {what}"))
        except (DataError, ValueError, OSError) as e:
            st.error(f"No report: {md(e)}")
        else:
            st.session_state["home_report_html"] = (key, rep.html().encode())
        bar.empty()
    made = st.session_state.get("home_report_html")
    if made and made[0] == key:
        name = f"report-{Path(ctx.checkpoint).stem}.html"
        st.download_button("Download the report (HTML)", made[1], file_name=name, mime="text/html",
                           key="home_report_download")


ctx = sidebar()
st.title("fer-dashboard")
st.caption("Facial expression recognition on FER2013 (48x48 grayscale faces, 7 expressions): train models, "
           "see where they fail and what they look at.")
start_here()
st.subheader("Active model")
card = st.container()
left, right = st.columns([1, 1], gap="large")
with right:  # drawn first: a checkpoint that does not load stops the page below, the data set stays
    data_set(ctx)
with card:
    model, prep = model_or_stop(ctx.checkpoint)
    model_card(model)
    if about := " ".join(filter(None, [provenance(model.checkpoint), photo_line(model.checkpoint)])):
        st.caption(md(about))
with left:
    training_config(ctx, model.checkpoint)
report_panel(ctx, model, prep)
