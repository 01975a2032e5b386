"""The Train page's views of all runs (views/train.py draws them): the sortable, filterable runs table, any logged
metric of several runs on one chart, hyperparameters against the best validation accuracy. What they show is
worked out in fer_core.runtable."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fer_core import runstate, runtable


def runs_table(all_runs) -> None:
    table = pd.DataFrame([runtable.run_row(r) for r in all_runs])
    f = st.columns([2, 2, 1.2, 0.8])
    query = f[0].text_input("Filter runs", key="tr_filter", placeholder="text in any column, e.g. vgg_bn or sgd")
    states = f[1].multiselect("States", runstate.STATES, key="tr_states", placeholder="all states")
    sort_by = f[2].selectbox("Sort by", runtable.SORT_COLUMNS, key="tr_sort")
    descending = f[3].toggle("Descending", value=True, key="tr_desc")
    shown, numeric = runtable.format_numbers(runtable.select_rows(table, query, states, sort_by, descending))
    config = {"run": st.column_config.TextColumn(pinned=True),
              "best val acc": st.column_config.Column(help="Best validation accuracy of any epoch"),
              "duration (min)": st.column_config.Column(help="Time spent training, over all sessions"),
              "images/s": st.column_config.Column(help="Training throughput (the epoch in progress, else the last)"),
              "smoothing": st.column_config.Column("label smoothing")}
    for col in numeric:  # complete number columns stay numbers, sortable from their header too
        old = config.get(col, {})
        config[col] = st.column_config.NumberColumn(old.get("label"), format=runtable.NUMBER_FORMATS[col][0],
                                                    help=old.get("help"))
    st.dataframe(shown, hide_index=True, width="stretch", key="tr_runs_table", column_config=config)
    st.caption(f"{len(shown)} of {len(table)} runs; sort with the control above or by a column's header.")


def compare_curves(all_runs, selected: str) -> None:
    """Any logged metric of the chosen runs on one chart, with smoothing and a log scale."""
    by_name = {r.name: r for r in all_runs}
    with_metrics = [r.name for r in all_runs if r.metrics]
    if not with_metrics:
        return
    default = [n for n in [selected] if n in with_metrics]
    chosen = st.multiselect("Overlay the curves of", with_metrics, default=default, key="tr_compare")
    if not chosen:
        return
    logged = runtable.logged_metrics([by_name[n] for n in chosen])
    c = st.columns([2, 2, 1])
    metric = c[0].selectbox("Metric", logged, key="tr_metric",
                            index=logged.index("val_acc") if "val_acc" in logged else 0)
    weight = c[1].slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="tr_smooth")
    log_y = c[2].checkbox("Log scale", key="tr_log")
    fig = go.Figure()
    for i, name in enumerate(chosen):
        xs, ys = runtable.metric_curve(by_name[name].metrics, metric)
        color = f"hsl({(i * 67) % 360},65%,45%)"
        if weight:  # the raw curve stays visible, faint, under the smoothed one
            fig.add_trace(go.Scatter(x=xs, y=ys, line=dict(color=color), opacity=0.25, showlegend=False,
                                     legendgroup=name, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=xs, y=runtable.smooth(ys, weight) if weight else ys, name=name,
                                 line=dict(color=color), legendgroup=name))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=metric, type="log" if log_y else "linear",
                     tickformat=".0%" if metric.endswith("_acc") and not log_y else None)
    fig.update_layout(height=340, margin=dict(l=0, r=0, t=30, b=0))
    st.plotly_chart(fig, width="stretch", key="tr_compare_chart")


def parallel_coordinates(all_runs) -> None:
    """Hyperparameters against the best validation accuracy, as W&B's parallel-coordinates panel."""
    scored = [r for r in all_runs if r.best_val_acc is not None]
    if len(scored) < 2:
        return
    st.markdown("**Hyperparameters vs best validation accuracy**")
    acc = [r.best_val_acc for r in scored]
    fig = go.Figure(go.Parcoords(line=dict(color=acc, colorscale="Viridis", showscale=True,
                                           colorbar=dict(title="best val acc")),
                                 dimensions=runtable.parcoords_dims(scored)))
    fig.update_layout(height=360, margin=dict(l=40, r=40, t=40, b=20))
    st.plotly_chart(fig, width="stretch", key="tr_parcoords")
