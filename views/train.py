"""Train: launch `python -m fer_core.train` runs, watch them live, stop/resume them, compare and manage runs.

Everything shown comes from the run directories (fer_core.runs), so runs survive a refresh or a restart. The
form is views/train_form.py, the views of all runs views/train_runs.py; this page adds the live panel of one run
and the actions on it.
"""
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app_common import runs_dir, set_active_checkpoint, sidebar
from fer_core import devices, durations, runfiles, runs, runstate, runtable
from fer_core.text import md
from views.train_form import form_section
from views.train_runs import compare_curves, parallel_coordinates, runs_table

ss = st.session_state
POLL_SECONDS = 2.0
STATE_COLOR = {"queued": "gray", "running": "blue", "completed": "green", "stopped": "orange", "failed": "red",
               "diverged": "red", "stale": "violet"}


def signature(rs) -> list:
    return [(r.name, r.state, r.epoch) for r in rs]


def run_picker(all_runs) -> str:
    """The run the live panel shows: the one launched or picked last, else the newest."""
    names = [r.name for r in all_runs]
    by_name = {r.name: r for r in all_runs}
    ss["tr_page_sig"] = signature(all_runs)
    ss["tr_run"] = ss.get("selected_run") if ss.get("selected_run") in names else names[0]
    selected = st.selectbox("Run", names, key="tr_run", format_func=lambda n: f"{n} ({by_name[n].summary()})",
                            on_change=lambda: ss.update(selected_run=ss["tr_run"]), label_visibility="collapsed")
    ss["selected_run"] = selected
    ss["tr_snapshot"] = by_name[selected]  # the live panel's first drawing uses the page's own read
    return selected


def curves(metrics: list[dict]) -> go.Figure:
    df = pd.DataFrame(metrics)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for i, what in enumerate(("loss", "acc")):
        for part, dash in (("train", "dot"), ("val", "solid")):
            if f"{part}_{what}" not in df:  # (a run whose lines lack it: no curve, no error)
                continue
            fig.add_trace(go.Scatter(x=df["epoch"], y=df[f"{part}_{what}"], name=f"{part} {what}", mode="lines+markers",
                                     line=dict(dash=dash)), row=1, col=i + 1)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(df) <= 12 else None)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=30, b=0))
    return fig


def state_notes(r: runstate.Run) -> None:
    hp = r.hyperparameters
    st.markdown(f"**{md(r.name)}** :{STATE_COLOR.get(r.state, 'gray')}-badge[{md(r.state)}]  "
                + md(f"{hp.get('model', r.config.get('model_name', '?'))} · {hp.get('optimizer', '?')} "
                     f"lr {hp.get('lr', '?')} · "
                     f"batch {hp.get('batch_size', '?')} · {r.config.get('device') or hp.get('device', '?')}"))
    if r.unreadable:  # shown, and still deletable: its wrong-typed fields are left out of what is shown
        st.warning(f"Unreadable in part: {md(r.unreadable)}")
    if r.state == "failed":
        st.error(f"Failed: {md(r.error or 'see the log below')}")
    elif r.state == "diverged":
        st.error(f"Diverged: {md(r.error or 'the loss became NaN or infinite')}")
    elif r.state == "stale":
        st.warning(f"Stale: {md(r.reason)}. Resume continues from the last saved epoch.")
    elif r.state == "stopped" and r.reason:
        st.info(md(r.reason))


def stop_and_resume(r: runstate.Run) -> None:
    b = st.columns([1, 1, 4])
    if r.active:
        if b[0].button("Stop", key="tr_stop", type="primary",
                       help="SIGTERM to the trainer: it stops after the current step; last.pt keeps the last "
                            "finished epoch"):
            if runs.stop(r.path):
                st.toast(f"Stop sent to {md(r.name)}")
            else:
                st.warning(f"{md(r.name)} has no live process to stop.")
    if r.resumable:
        # a run configured for a GPU that this machine lacks continues on the CPU (said on the button)
        dev = None if devices.check_device(r.hyperparameters.get("device", "auto")) is None else "cpu"
        if b[1].button("Resume" + (" on CPU" if dev else ""), key="tr_resume",
                       help="Continue from last.pt with the run's own configuration"):
            try:
                runs.resume(r.path, device=dev)
            except runs.LaunchError as e:
                st.error(f"Not resumed: {md(e)}")
            else:
                st.rerun()


def live_view(name: str, root: Path) -> None:
    """One run's panel (a fragment that polls while the run is active): state, progress, numbers, curves,
    Stop / Resume, the log."""
    r = ss.pop("tr_snapshot", None)
    if r is None or r.name != name:  # a poll of the fragment alone: read the runs again
        fresh = runstate.list_runs(root)
        if signature(fresh) != ss.get("tr_page_sig"):
            st.rerun(scope="app")  # a state or epoch changed: redraw picker, table and panel from one read
        r = next((x for x in fresh if x.name == name), None)
    if r is None or not r.path.exists():
        st.warning(f"{md(name)} no longer exists.")
        return
    state_notes(r)
    done, text = runtable.progress_line(r)
    st.progress(done, text=text)
    m = r.metrics[-1] if r.metrics else {}
    c = st.columns(4)
    c[0].metric("Best val acc", f"{r.best_val_acc:.1%}" if r.best_val_acc is not None else "-")
    c[1].metric("Val loss", f"{m['val_loss']:.4f}" if m.get("val_loss") is not None else "-")
    c[2].metric("Train acc", f"{m['train_acc']:.1%}" if m.get("train_acc") is not None else "-")
    c[3].metric("Epoch time", durations.format_seconds(m.get("seconds")) if m else "-")
    if r.metrics:
        st.plotly_chart(curves(r.metrics), width="stretch", key=f"tr_curves_{name}")
    stop_and_resume(r)
    st.markdown("**Log**")
    st.code(runfiles.log_tail(r.path, 25) or "(no output yet)", language=None)


def run_actions(sel: runstate.Run, root: Path) -> None:
    """Actions on the selected run that change the rest of the dashboard: use its model, delete it."""
    a = st.columns([1, 1, 3])
    if sel.best_checkpoint is not None:
        a[0].button("Use as active model", key="tr_use", on_click=set_active_checkpoint,
                    args=(str(sel.best_checkpoint),), help="Make this run's best.pt the checkpoint of every view")
    if not sel.active and a[1].button("Delete run", key="tr_delete"):
        ss["tr_confirm_delete"] = sel.name
    if ss.get("tr_confirm_delete") == sel.name:
        st.warning(f"Delete {md(sel.name)} and its checkpoints? This cannot be undone.")
        d = st.columns([1, 1, 4])
        if d[0].button("Yes, delete", key="tr_delete_yes", type="primary"):
            ss.pop("tr_confirm_delete", None)
            try:
                runs.delete_run(sel.path, root)
            except (runs.LaunchError, OSError) as e:
                st.error(f"Not deleted: {md(e)}")
            else:
                if (ss.get("active_checkpoint") or "").startswith(str(sel.path) + "/"):
                    ss.pop("active_checkpoint", None)
                ss.pop("selected_run", None)
                st.rerun()
        if d[1].button("Cancel", key="tr_delete_no"):
            ss.pop("tr_confirm_delete", None)
            st.rerun()
    if (ss.get("active_checkpoint") or "").startswith(str(sel.path) + "/"):
        a[2].caption("This run's checkpoint is the active model.")


def run_section(all_runs, root: Path) -> str:
    """One run: the picker, its live panel and the actions on it (the page stops here when there is no run)."""
    st.divider()
    st.subheader("Run")
    if not all_runs:
        st.info(f"No runs yet in {md(root)}. Pick a preset above and launch one.")
        st.stop()
    selected = run_picker(all_runs)
    sel = next(r for r in all_runs if r.name == selected)
    st.fragment(live_view, run_every=POLL_SECONDS if sel.active else None)(selected, root)
    run_actions(sel, root)
    return selected


def all_runs_section(all_runs, selected: str) -> None:
    st.divider()
    st.subheader("Runs")
    runs_table(all_runs)
    compare_curves(all_runs, selected)
    parallel_coordinates(all_runs)


ctx = sidebar()
st.title("Train")
RUNS, DEVICES = runs_dir(), ["auto"] + devices.available_devices()
form_section(ctx.data, RUNS, DEVICES, any(d != "cpu" for d in DEVICES[1:]), runstate.list_runs(RUNS))
# One snapshot of the run folders feeds the picker, the live panel and the runs table, so they agree; the live
# panel polls on its own and reruns the whole page as soon as any run's state or epoch differs from it.
all_runs = runstate.list_runs(RUNS)
all_runs_section(all_runs, run_section(all_runs, RUNS))
