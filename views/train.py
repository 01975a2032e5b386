"""Train: launch `python -m fer_core.train` runs, watch them live, stop/resume them, compare and manage runs.

Everything shown comes from the run directories (fer_core.runs), so runs survive a refresh or a restart.
"""
import json
import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app_common import (SAMPLE_DATA, data_source, get_class_counts, get_splits, load_settings, runs_dir, save_setting,
                        settings_file, set_active_checkpoint, sidebar)
from fer_core import ablation, devices, durations, runfiles, runs, runstate
from fer_core.images import DataError
from fer_core.calibrate import Calibration, calibrate, estimate_from_calibration
from fer_core.precision import trainer_settings
from fer_core.config import Option, TrainConfig, options, parse_json_object
from fer_core.recipes import RECIPES, recipe_config
from fer_core.runfiles import parse_time
from fer_core.text import md

ctx = sidebar()
ss = st.session_state
RUNS = runs_dir()
DEVICES = ["auto"] + devices.available_devices()
GPU = any(d != "cpu" for d in DEVICES[1:])
PRESETS = {"quick check": "quick", "CPU recipe": "cpu", "report recipe (seed_vgg)": "report", "best recipe": "best"}
# what a first visit starts from: the recipe that fits this machine (issue 11), on the full data if known
DEFAULT_RECIPE = "best" if GPU else "cpu"
POLL_SECONDS = 2.0
STATE_COLOR = {"queued": "gray", "running": "blue", "completed": "green", "stopped": "orange", "failed": "red",
               "diverged": "red",
               "stale": "violet"}

st.title("Train")

# ----------------------------------------------------------------------------------------------
# the form: its widgets live in session_state under "tr_<option>"; presets fill them in


def preset_values(recipe: str) -> dict:
    """The form's values for a recipe: TrainConfig defaults, overridden by the recipe."""
    return asdict(recipe_config(recipe))


def form_store(values: dict) -> dict:
    """The form's values as its widgets hold them (numbers as their field's type, JSON fields as text)."""
    out = {}
    for o in options():
        v = values.get(o.name)
        if o.kind == "json":
            out[o.name] = v if isinstance(v, str) else json.dumps(v or {})
        else:
            out[o.name] = None if v is None else float(v) if o.kind == "float" else int(v) if o.kind == "int" else v
    return out


def full_data() -> str:
    """The data a full recipe trains on: the path used for the last launch on full data (remembered in the
    user's settings file), else the sidebar's source when it is not the bundled sample, else ''."""
    remembered = load_settings().get("train_data") or ""
    return remembered or ("" if ctx.data == str(SAMPLE_DATA) else ctx.data)


def preset_data(recipe: str) -> str:
    # the quick check trains on the bundled sample's train split, so it works on a fresh checkout; the others
    # on the full data when it is known, else on what the form holds (the sample on a first visit)
    if recipe == "quick":
        return str(SAMPLE_DATA)
    return full_data() or ss.get("train_options", {}).get("data") or str(SAMPLE_DATA)


def apply_preset(label: str) -> None:
    recipe = PRESETS[label]
    values = form_store(preset_values(recipe)) | {"data": preset_data(recipe)}
    del values["device"]  # where to train is this machine's choice, not the recipe's
    ss["train_options"].update(values)


def commit_form() -> None:
    """on_click of Launch: keep the submitted values (widget state does not outlive a page change)."""
    for k in ss["train_options"]:
        if "tr_" + k in ss:
            ss["train_options"][k] = ss["tr_" + k]


if "train_options" not in ss:  # first visit in this session: the recipe that fits this machine
    ss["train_options"] = form_store(preset_values(DEFAULT_RECIPE)) | {"data": preset_data(DEFAULT_RECIPE),
                                                                        "name": ""}
    ss["train_options"]["device"] = "auto"
if ss["train_options"]["device"] not in DEVICES:
    ss["train_options"]["device"] = "auto"
for _k, _v in ss["train_options"].items():  # (re)fill the widgets before they are drawn
    ss["tr_" + _k] = _v

st.markdown("**Presets**")
pcols = st.columns(len(PRESETS) + 1)
for col, label in zip(pcols, PRESETS):
    col.button(label, key=f"tr_preset_{PRESETS[label]}", on_click=apply_preset, args=(label,), width="stretch",
               help=", ".join(f"{k}={v}" for k, v in RECIPES[PRESETS[label]].items()))
pcols[-1].button("report ablations", key="tr_preset_ablations", on_click=apply_preset, width="stretch",
                 args=("report recipe (seed_vgg)",), help="the report recipe, to launch with 'Launch report "
                 "ablations': it, without normalization and without augmentation (same seed, epochs and data)")

all_runs = runstate.list_runs(RUNS)  # for the form (read again below, after a launch)
active = [r for r in all_runs if r.active]


def quick_estimate() -> str:
    """The quick check's duration measured here (from an earlier run of its model), not a constant."""
    q = RECIPES["quick"]
    n_train = min(q.get("max_train_samples") or 10**9, sum(get_class_counts(str(SAMPLE_DATA), "train").values()))
    est = durations.estimate_from_past_runs(all_runs, q["model"], {}, n_train, q["epochs"])
    if est is None:
        return (f"quick check: {q['model']}, {q['epochs']} epochs on the bundled sample's {n_train:,} training "
                "faces; its duration on this machine is measured by the first run of it")
    secs, name, rate = est
    return (f"quick check: about {durations.format_seconds(secs)} on this machine ({rate:,.0f} images/s measured "
            f"by run {name})")


st.caption(quick_estimate())
with st.expander("Train on the full FER2013 data"):
    st.markdown(
        "The quick check trains on the bundled sample (1,201 Training faces; validation on its 656 PublicTest "
        "faces). For the full data download FER2013 from Kaggle in either form:\n\n"
        "- **`fer2013.csv`** (or `icml_face_data.csv`, `.csv.gz`): one file with all 35,887 faces and their "
        "Training / PublicTest / PrivateTest usage;\n"
        "- **the image-folder zip** (`train/<class>/*.jpg`, `test/<class>/*.jpg`): used as the `.zip` as it is, "
        "or unpacked into a folder.\n\n"
        "Put it anywhere (e.g. `data_local/`, which git ignores) and type its path in the sidebar's **Data "
        "source** or in the form's **Data source** below. The path is remembered for your next sessions in "
        f"`{settings_file()}` (set `FER_SETTINGS_FILE` to use another file); the report and best recipes then "
        "start on it.")

def widget(o: Option, where) -> None:
    """The form's widget of one TrainConfig field, its limits and help from the field's metadata."""
    key, kw = "tr_" + o.name, dict(help=o.help[:1].upper() + o.help[1:])
    if o.name == "device":  # the devices torch finds on this machine, not every name the CLI accepts
        where.selectbox(o.label, DEVICES, key=key, **kw)
    elif o.kind == "bool":
        where.checkbox(o.label, key=key, **kw)
    elif o.choices:
        where.selectbox(o.label, o.choices, key=key, **kw)
    elif o.kind in ("int", "float"):
        num = float if o.kind == "float" else int
        where.number_input(o.label, min_value=None if o.lo is None else num(o.lo),
                           max_value=None if o.hi is None else num(o.hi), step=num(o.step), format=o.fmt,
                           placeholder=o.placeholder, key=key, **kw)
    else:
        where.text_input(o.label, key=key, **kw)


def grid(opts: list[Option]) -> None:
    """Four widgets a row, in field order; a checkbox after a checkbox shares its cell."""
    cells = []
    for o in opts:
        if cells and o.kind == "bool" and cells[-1][-1].kind == "bool":
            cells[-1].append(o)
        else:
            cells.append([o])
    for i in range(0, len(cells), 4):
        for col, cell in zip(st.columns(4), cells[i:i + 4]):
            for o in cell:
                widget(o, col)


with st.form("train_form"):
    grid([o for o in options() if o.section == "main"])
    with st.expander("Advanced"):
        grid([o for o in options() if o.section == "advanced"])
    c = st.columns([3, 1])
    for o in options():
        if o.section == "source":
            widget(o, c[0])
    c[1].text_input("Run name", key="tr_name", placeholder="automatic", help="Folder name under " + md(RUNS))
    if active and not GPU:  # said once, neutrally: a run just resumed is one of these, not a surprise
        st.caption(f"Training now: {md(', '.join(r.name for r in active))}. A new run shares the CPU cores with them.")
    b = st.columns([1, 3])
    submitted = b[0].form_submit_button("Launch run", type="primary", on_click=commit_form)
    ablate = b[1].form_submit_button("Launch report ablations (3 runs)", on_click=commit_form,
                                     help="these settings, the same without normalization, the same without "
                                          "augmentation: grouped by the run name, for the report's Table 1")

if not GPU:
    st.caption("torch finds no GPU here: runs train on the CPU. The CPU recipe is sized for it (about 15 minutes "
               "on 2 cores for the full data); the report and best recipes are GPU-sized (hours to days on a CPU).")


@st.cache_data(show_spinner=False, max_entries=32)
def _calibration(model: str, model_args: str, device: str, amp: bool, channels_last: bool) -> dict:
    return asdict(calibrate(model, json.loads(model_args), device=device, amp=amp, channels_last=channels_last))


def calibrated_estimate(v: dict) -> str | None:
    """The form's run on this machine: a short measured calibration of its model (cached per model and device),
    times the faces it will train and validate on. None when the form's values cannot be trained."""
    try:
        cfg = TrainConfig(**form_config(v))
        cfg.validate()
        counts = get_class_counts(cfg.data, "train")
    except (ValueError, TypeError, DataError, runs.LaunchError, OSError):
        return None
    try:
        n_val = sum(get_class_counts(cfg.data, cfg.val_split).values())
    except DataError:  # no such split here: the launch check says so; the estimate leaves evaluation out
        n_val = 0
    device = cfg.device if cfg.device != "auto" else next((d for d in DEVICES[1:] if d != "cpu"), "cpu")
    n_train = min(sum(counts.values()), cfg.max_train_samples or 10**9)
    if not n_train:
        return None
    kind = device.split(":")[0]
    with st.spinner(f"Measuring {cfg.model}'s training speed on this machine ({kind})..."):
        cal = _calibration(cfg.model, json.dumps(cfg.model_args, sort_keys=True), device,
                           **trainer_settings(cfg, kind))
    secs = estimate_from_calibration(Calibration(**cal), n_train, n_val, cfg.epochs, train_epochs=cfg.epoch_cost())
    low = f" (the first {cfg.low_res_epochs} growing from {cfg.low_res} to 48 pixels)" if cfg.low_res else ""
    return (f"Estimated duration here: **about {durations.format_seconds(secs)}** for {cfg.epochs} epochs{low} of "
            f"{cfg.model} on {n_train:,} training faces (+ {n_val:,} validated each epoch); calibrated on this "
            f"machine's {kind}: {cal['train_images_per_s']:,.0f} training images/s, "
            f"{cal['eval_images_per_s']:,.0f} validation images/s.\n\n" + ablation.duration_text(cfg, secs))




def form_config(v: dict) -> dict:
    """The TrainConfig fields of the form's values (JSON fields parsed)."""
    out = {o.name: v[o.name] for o in options()}
    for o in options():
        if o.kind == "json":
            try:
                out[o.name] = parse_json_object(o, v[o.name])
            except ValueError:
                raise runs.LaunchError(f'{o.label} must be a JSON object such as {{"width": 8}}, '
                                       f"got {v[o.name]!r}") from None
    return out | {"data": (v["data"] or "").strip()}


def launch_from_form(ablations: bool = False) -> list[Path]:
    v = ss["train_options"]
    opts = form_config(v)
    data = opts["data"]
    if not data:
        raise runs.LaunchError("enter a data source with a train split")
    try:  # the dashboard's one guard of typed paths: data roots, regular files, size (app_common.data_source)
        data = opts["data"] = data_source(data)
        splits = get_splits(data)
    except DataError as e:
        raise runs.LaunchError(str(e)) from None
    if "train" not in splits:
        raise runs.LaunchError(f"{data} has no train split (it holds: {', '.join(splits) or 'nothing'}). Training "
                               "needs e.g. the full FER2013 csv, or a folder/zip with train/<class>/ images.")
    name = (v["name"] or "").strip() or None
    made = ablation.launch(opts, RUNS, group=name) if ablations else [runs.launch(opts, RUNS, name=name)]
    if Path(data).resolve() != SAMPLE_DATA.resolve():
        save_setting("train_data", data)  # the full data's path, for the next session's recipes
    return made


_est = calibrated_estimate(ss["train_options"])
if _est:
    st.caption(_est)

if submitted or ablate:
    try:
        made = launch_from_form(ablations=ablate)
    except (runs.LaunchError, OSError) as e:
        st.error(f"Not launched: {md(e)}")
    else:
        ss["train_options"]["name"] = ""
        ss["selected_run"] = made[0].name
        st.success(f"Launched {md(', '.join(r.name for r in made))}: `python -m fer_core.train` runs in its own "
                   "process; its files in the run folder tell how it goes.")
        if active:
            st.warning(f"{len(active) + 1} runs now train at the same time and share this machine.")

# ----------------------------------------------------------------------------------------------
# live view of one run

# One snapshot of the run folders feeds the picker, the live panel and the runs table, so they agree; the live
# panel polls on its own and reruns the whole page as soon as any run's state or epoch differs from it.
all_runs = runstate.list_runs(RUNS)
st.divider()
st.subheader("Run")
if not all_runs:
    st.info(f"No runs yet in {md(RUNS)}. Pick a preset above and launch one.")
    st.stop()

def signature(rs) -> list:
    return [(r.name, r.state, r.epoch) for r in rs]


names = [r.name for r in all_runs]
by_name = {r.name: r for r in all_runs}
state_of = {r.name: r.state for r in all_runs}
ss["tr_page_sig"] = signature(all_runs)
ss["tr_run"] = ss.get("selected_run") if ss.get("selected_run") in names else names[0]
selected = st.selectbox("Run", names, key="tr_run", format_func=lambda n: f"{n} ({by_name[n].summary()})",
                        on_change=lambda: ss.update(selected_run=ss["tr_run"]), label_visibility="collapsed")
ss["selected_run"] = selected
ss["tr_snapshot"] = by_name[selected]  # the live panel's first drawing uses the page's own read


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


def live_view(name: str) -> None:
    r = ss.pop("tr_snapshot", None)
    if r is None or r.name != name:  # a poll of the fragment alone: read the runs again
        fresh = runstate.list_runs(RUNS)
        if signature(fresh) != ss.get("tr_page_sig"):
            st.rerun(scope="app")  # a state or epoch changed: redraw picker, table and panel from one read
        r = next((x for x in fresh if x.name == name), None)
    if r is None or not r.path.exists():
        st.warning(f"{md(name)} no longer exists.")
        return
    hp = r.hyperparameters
    st.markdown(f"**{md(name)}** :{STATE_COLOR.get(r.state, 'gray')}-badge[{md(r.state)}]  "
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
    epochs = max(1, r.epochs)
    eta, p = r.eta, r.progress
    done = r.epoch + (p["step"] / p["steps"] if p and p.get("epoch", 0) > r.epoch else 0.0)
    text = f"epoch {r.epoch}/{r.epochs}"
    if p and p.get("epoch", 0) > r.epoch:
        text += f" · epoch {p['epoch']}: step {p['step']}/{p['steps']}"
    if r.images_per_s:
        text += f" · {r.images_per_s:,.0f} images/s"
    text += f" · elapsed {durations.format_seconds(r.duration)}"
    if r.active:
        text += f" · ETA {durations.format_seconds(eta)}" if eta is not None else " · ETA after the first steps"
    st.progress(min(1.0, done / epochs), text=text)
    m = r.metrics[-1] if r.metrics else {}
    c = st.columns(4)
    c[0].metric("Best val acc", f"{r.best_val_acc:.1%}" if r.best_val_acc is not None else "-")
    c[1].metric("Val loss", f"{m['val_loss']:.4f}" if m.get("val_loss") is not None else "-")
    c[2].metric("Train acc", f"{m['train_acc']:.1%}" if m.get("train_acc") is not None else "-")
    c[3].metric("Epoch time", durations.format_seconds(m.get("seconds")) if m else "-")
    if r.metrics:
        st.plotly_chart(curves(r.metrics), width="stretch", key=f"tr_curves_{name}")
    b = st.columns([1, 1, 4])
    if r.active:
        if b[0].button("Stop", key="tr_stop", type="primary",
                       help="SIGTERM to the trainer: it stops after the current step; last.pt keeps the last "
                            "finished epoch"):
            if runs.stop(r.path):
                st.toast(f"Stop sent to {md(name)}")
            else:
                st.warning(f"{md(name)} has no live process to stop.")
    if r.resumable:
        # a run configured for a GPU that this machine lacks continues on the CPU (said on the button)
        dev = None if devices.check_device(hp.get("device", "auto")) is None else "cpu"
        if b[1].button("Resume" + (" on CPU" if dev else ""), key="tr_resume",
                       help="Continue from last.pt with the run's own configuration"):
            try:
                runs.resume(r.path, device=dev)
            except runs.LaunchError as e:
                st.error(f"Not resumed: {md(e)}")
            else:
                st.rerun()
    st.markdown("**Log**")
    st.code(runfiles.log_tail(r.path, 25) or "(no output yet)", language=None)


st.fragment(live_view, run_every=POLL_SECONDS if state_of[selected] in runstate.ACTIVE_STATES else None)(selected)

# actions on the selected run that change the rest of the dashboard
sel = next(r for r in all_runs if r.name == selected)
a = st.columns([1, 1, 3])
if sel.best_checkpoint is not None:
    a[0].button("Use as active model", key="tr_use", on_click=set_active_checkpoint, args=(str(sel.best_checkpoint),),
                help="Make this run's best.pt the checkpoint of every view")
if not sel.active and a[1].button("Delete run", key="tr_delete"):
    ss["tr_confirm_delete"] = selected
if ss.get("tr_confirm_delete") == selected:
    st.warning(f"Delete {md(selected)} and its checkpoints? This cannot be undone.")
    d = st.columns([1, 1, 4])
    if d[0].button("Yes, delete", key="tr_delete_yes", type="primary"):
        ss.pop("tr_confirm_delete", None)
        try:
            runs.delete_run(sel.path, RUNS)
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

# ----------------------------------------------------------------------------------------------
# all runs

st.divider()
st.subheader("Runs")


def row(r: runstate.Run) -> dict:
    hp = r.hyperparameters
    def extras(*keys):  # " erase 0.5 photometric 0.3" for the settings that are on
        return "".join(f" {k} {hp[k]:g}" for k in keys if hp.get(k))

    aug = "off" if not hp.get("augment", True) else (
        f"rot {hp.get('rotation', 0):g} zoom {hp.get('zoom', 0):g} shift {hp.get('shift', 0):g}"
        + ((" alternating flip" if hp.get("alternate_flip") else " flip") if hp.get("flip") else "")
        + extras("erase", "photometric"))
    aug += extras("mixup", "cutmix")  # mixing applies with or without the per-face augmentation
    started = parse_time(r.status.get("started") or r.launch.get("created"))
    n = hp.get("max_train_samples")
    samples = f"{n:,}" if n else "all"  # text either way: a column of numbers and "all" breaks pyarrow
    acc, dur, ips = r.best_val_acc, r.duration, r.images_per_s
    nan = float("nan")  # numbers stay numbers (they sort); a missing one is an empty cell, never "None"
    return {
        "run": r.name, "state": r.state, "epoch": f"{r.epoch}/{r.epochs}",
        "best val acc": nan if acc is None else acc, "duration (min)": nan if dur is None else dur / 60,
        "images/s": nan if ips is None else ips, "val split": hp.get("val_split") or "-",  # what "best" was chosen on
        "device": r.device or "-", "model": hp.get("model", "?"),
        "batch": hp.get("batch_size"), "optimizer": (hp.get("optimizer") or "-") + (f" · BN lr x{hp['bn_lr']:g}" if hp.get("bn_lr", 1) != 1 else ""),
        "lr": hp.get("lr"),
        "schedule": hp.get("schedule") or "-", "augmentation": aug, "normalize": hp.get("normalize") or "-",
        "smoothing": hp.get("label_smoothing"), "samples": samples,
        "averaging": (f"EMA {hp['ema']:g}" if hp.get("ema") else "-") + (" · flip TTA" if hp.get("tta") else ""),
        "teacher": (", ".join(Path(p.strip()).name for p in hp["teacher"].split(",") if p.strip())
                    + f" (alpha {hp.get('distill_alpha', 0.5):g}, T {hp.get('distill_temperature', 4.0):g})")
                   if hp.get("teacher") else "-",
        "started": datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M") if started is not None else "-",
        "unreadable": r.unreadable or "-",  # what of its files could not be read (it can still be deleted)
    }


table = pd.DataFrame([row(r) for r in all_runs])
NUMBER_FORMATS = {"best val acc": ("percent", "{:.1%}"), "duration (min)": ("%.1f", "{:.1f}"),
                  "images/s": ("%.0f", "{:,.0f}"), "lr": ("%.4g", "{:.4g}"), "smoothing": ("%g", "{:g}")}
f = st.columns([2, 2, 1.2, 0.8])
query = f[0].text_input("Filter runs", key="tr_filter", placeholder="text in any column, e.g. vgg_bn or sgd")
states = f[1].multiselect("States", runstate.STATES, key="tr_states", placeholder="all states")
sort_by = f[2].selectbox("Sort by", ["started", "best val acc", "duration (min)", "images/s", "run", "state",
                                     "model", "lr"], key="tr_sort")
descending = f[3].toggle("Descending", value=True, key="tr_desc")
shown = table
if query.strip():
    hit = table.astype(str).apply(lambda col: col.str.contains(query.strip(), case=False, regex=False))
    shown = shown[hit.any(axis=1)]
if states:
    shown = shown[shown["state"].isin(states)]
shown = shown.sort_values(sort_by, ascending=not descending, na_position="last", kind="stable")
# A number column with a gap would show the gap as "None": such a column is shown as text with "-" (the Sort by
# control still sorts it by its numbers); complete columns stay numbers, sortable from their header too.
config = {"run": st.column_config.TextColumn(pinned=True),
          "best val acc": st.column_config.Column(help="Best validation accuracy of any epoch"),
          "duration (min)": st.column_config.Column(help="Time spent training, over all sessions"),
          "images/s": st.column_config.Column(help="Training throughput (the epoch in progress, else the last)"),
          "smoothing": st.column_config.Column("label smoothing")}
shown = shown.copy()
for col, (grid_fmt, text_fmt) in NUMBER_FORMATS.items():
    values = pd.to_numeric(shown[col], errors="coerce")
    if values.isna().any():
        shown[col] = [("-" if pd.isna(v) else text_fmt.format(v)) for v in values]
    else:
        shown[col] = values
        old = config.get(col, {})
        config[col] = st.column_config.NumberColumn(old.get("label"), format=grid_fmt, help=old.get("help"))
shown = shown.fillna("-")
st.dataframe(shown, hide_index=True, width="stretch", key="tr_runs_table", column_config=config)
st.caption(f"{len(shown)} of {len(table)} runs; sort with the control above or by a column's header.")


def smooth(values, weight: float):
    """TensorBoard's smoothing: an exponential moving average, debiased so the first points are not pulled
    to zero; gaps (NaN) are carried over."""
    out, last, n = [], 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(float("nan"))
            continue
        last, n = last * weight + (1 - weight) * v, n + 1
        out.append(last / (1 - weight ** n) if weight else v)
    return out


with_metrics = [r.name for r in all_runs if r.metrics]
if with_metrics:
    default = [n for n in [selected] if n in with_metrics]
    chosen = st.multiselect("Overlay the curves of", with_metrics, default=default, key="tr_compare")
    if chosen:
        logged = sorted({k for n in chosen for m in by_name[n].metrics for k, v in m.items()
                         if isinstance(v, (int, float)) and k not in ("epoch",)})
        c = st.columns([2, 2, 1])
        metric = c[0].selectbox("Metric", logged, key="tr_metric",
                                index=logged.index("val_acc") if "val_acc" in logged else 0)
        weight = c[1].slider("Smoothing", 0.0, 0.99, 0.0, 0.01, key="tr_smooth")
        log_y = c[2].checkbox("Log scale", key="tr_log")
        fig = go.Figure()
        for i, name in enumerate(chosen):
            ms = by_name[name].metrics
            ys = [m.get(metric) for m in ms]
            ys = [float(v) if isinstance(v, (int, float)) else float("nan") for v in ys]
            color = f"hsl({(i * 67) % 360},65%,45%)"
            if weight:  # the raw curve stays visible, faint, under the smoothed one
                fig.add_trace(go.Scatter(x=[m["epoch"] for m in ms], y=ys, line=dict(color=color), opacity=0.25,
                                         showlegend=False, legendgroup=name, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=[m["epoch"] for m in ms], y=smooth(ys, weight) if weight else ys, name=name,
                                     line=dict(color=color), legendgroup=name))
        fig.update_xaxes(title_text="epoch")
        fig.update_yaxes(title_text=metric, type="log" if log_y else "linear",
                         tickformat=".0%" if metric.endswith("_acc") and not log_y else None)
        fig.update_layout(height=340, margin=dict(l=0, r=0, t=30, b=0))
        st.plotly_chart(fig, width="stretch", key="tr_compare_chart")

# hyperparameters against the best validation accuracy, as W&B's parallel-coordinates panel
scored = [r for r in all_runs if r.best_val_acc is not None]
if len(scored) >= 2:
    st.markdown("**Hyperparameters vs best validation accuracy**")
    models = sorted({r.hyperparameters.get("model", "?") for r in scored})
    opts = sorted({r.hyperparameters.get("optimizer", "?") for r in scored})

    def num(r, k, default=0.0):
        v = r.hyperparameters.get(k)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

    dims = [
        dict(label="model", values=[models.index(r.hyperparameters.get("model", "?")) for r in scored],
             tickvals=list(range(len(models))), ticktext=models),
        dict(label="optimizer", values=[opts.index(r.hyperparameters.get("optimizer", "?")) for r in scored],
             tickvals=list(range(len(opts))), ticktext=opts),
        dict(label="log10 lr", values=[math.log10(num(r, "lr", 1e-3)) for r in scored]),
        dict(label="batch", values=[num(r, "batch_size") for r in scored]),
        dict(label="epochs", values=[num(r, "epochs") for r in scored]),
        dict(label="label smoothing", values=[num(r, "label_smoothing") for r in scored]),
        dict(label="rotation", values=[num(r, "rotation") if r.hyperparameters.get("augment", True) else 0.0
                                       for r in scored]),
        dict(label="train faces", values=[num(r, "max_train_samples", float(r.config.get("data", {}).get(
            "train_size") or 0)) for r in scored]),
        dict(label="best val acc", values=[r.best_val_acc for r in scored]),
    ]
    fig = go.Figure(go.Parcoords(line=dict(color=[r.best_val_acc for r in scored], colorscale="Viridis",
                                           showscale=True, colorbar=dict(title="best val acc")), dimensions=dims))
    fig.update_layout(height=360, margin=dict(l=40, r=40, t=40, b=20))
    st.plotly_chart(fig, width="stretch", key="tr_parcoords")
