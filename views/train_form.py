"""The Train page's launch form (views/train.py draws it): presets, one widget per TrainConfig field, the
measured duration estimate, and the launch of a run or of the report ablations.

Its widgets live in session_state under "tr_<option>"; presets fill them in, and ss["train_options"] keeps the
submitted values (widget state does not outlive a page change)."""
import json
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from app_common import SAMPLE_DATA, data_source, file_version, get_class_counts, get_splits
from app_state import load_settings, save_setting, settings_file
from fer_core import ablation, durations, runs
from fer_core.calibrate import Calibration, calibrate, estimate_from_calibration, teacher_pass_rates
from fer_core.checkpoint import CheckpointError
from fer_core.config import Option, TrainConfig, options, parse_json_object
from fer_core.images import DataError
from fer_core.precision import trainer_settings
from fer_core.recipes import RECIPES, recipe_config
from fer_core.text import md

ss = st.session_state
PRESETS = {"quick check": "quick", "CPU recipe": "cpu", "CPU distilled": "photo", "report recipe": "report",
           "best recipe": "best"}


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


def full_data(sidebar_data: str) -> str:
    """The data a full recipe trains on: the path used for the last launch on full data (remembered in the
    user's settings file), else the sidebar's source when it is not the bundled sample, else ''."""
    remembered = load_settings().get("train_data") or ""
    return remembered or ("" if sidebar_data == str(SAMPLE_DATA) else sidebar_data)


def preset_data(recipe: str, sidebar_data: str) -> str:
    # the quick check trains on the bundled sample's train split, so it works on a fresh checkout; the others
    # on the full data when it is known, else on what the form holds (the sample on a first visit)
    if recipe == "quick":
        return str(SAMPLE_DATA)
    return full_data(sidebar_data) or ss.get("train_options", {}).get("data") or str(SAMPLE_DATA)


def apply_preset(label: str, sidebar_data: str) -> None:
    recipe = PRESETS[label]
    values = form_store(preset_values(recipe)) | {"data": preset_data(recipe, sidebar_data)}
    del values["device"]  # where to train is this machine's choice, not the recipe's
    ss["train_options"].update(values)


def commit_form() -> None:
    """on_click of Launch: keep the submitted values (widget state does not outlive a page change)."""
    for k in ss["train_options"]:
        if "tr_" + k in ss:
            ss["train_options"][k] = ss["tr_" + k]


def fill_form(sidebar_data: str, devices: list[str], default_recipe: str) -> None:
    """Before the widgets are drawn: the values they show (on a first visit, the recipe that fits this machine)."""
    if "train_options" not in ss:
        ss["train_options"] = form_store(preset_values(default_recipe)) | {
            "data": preset_data(default_recipe, sidebar_data), "name": ""}
        ss["train_options"]["device"] = "auto"
    if ss["train_options"]["device"] not in devices:
        ss["train_options"]["device"] = "auto"
    for k, v in ss["train_options"].items():  # (re)fill the widgets before they are drawn
        ss["tr_" + k] = v


def preset_buttons(sidebar_data: str) -> None:
    st.markdown("**Presets**")
    pcols = st.columns(len(PRESETS) + 1)
    for col, label in zip(pcols, PRESETS):
        col.button(label, key=f"tr_preset_{PRESETS[label]}", on_click=apply_preset, args=(label, sidebar_data),
                   width="stretch", help=", ".join(f"{k}={v}" for k, v in RECIPES[PRESETS[label]].items()))
    pcols[-1].button("report ablations", key="tr_preset_ablations", on_click=apply_preset, width="stretch",
                     args=("report recipe", sidebar_data), help="the report recipe, to launch with "
                     "'Launch report ablations': it, without normalization and without augmentation (same seed, "
                     "epochs and data)")


def quick_estimate(all_runs) -> str:
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


def full_data_help() -> None:
    with st.expander("Train on the full FER2013 data"):
        st.markdown(
            "The quick check trains on the bundled sample (1,201 Training faces; validation on its 656 PublicTest "
            "faces). For the full data download FER2013 from Kaggle in either form:\n\n"
            "- **`fer2013.csv`** (or `icml_face_data.csv`, `.csv.gz`): one file with all 35,887 faces and their "
            "Training / PublicTest / PrivateTest usage;\n"
            "- **the image-folder zip** (`train/<class>/*.jpg`, `test/<class>/*.jpg`): used as the `.zip` as it "
            "is, or unpacked into a folder.\n\n"
            "Put it anywhere (e.g. `data_local/`, which git ignores) and type its path in the sidebar's **Data "
            "source** or in the form's **Data source** below. The path is remembered for your next sessions in "
            f"`{settings_file()}` (set `FER_SETTINGS_FILE` to use another file); the report and best recipes then "
            "start on it.")


def widget(o: Option, where, devices: list[str]) -> None:
    """The form's widget of one TrainConfig field, its limits and help from the field's metadata."""
    key, kw = "tr_" + o.name, dict(help=o.help[:1].upper() + o.help[1:])
    if o.name == "device":  # the devices torch finds on this machine, not every name the CLI accepts
        where.selectbox(o.label, devices, key=key, **kw)
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


def grid(opts: list[Option], devices: list[str]) -> None:
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
                widget(o, col, devices)


def the_form(runs_dir: Path, devices: list[str], active, gpu: bool) -> tuple[bool, bool]:
    """The form itself -> (Launch run pressed, Launch report ablations pressed)."""
    with st.form("train_form"):
        grid([o for o in options() if o.section == "main"], devices)
        with st.expander("Advanced"):
            grid([o for o in options() if o.section == "advanced"], devices)
        c = st.columns([3, 1])
        for o in options():
            if o.section == "source":
                widget(o, c[0], devices)
        c[1].text_input("Run name", key="tr_name", placeholder="automatic", help="Folder name under " + md(runs_dir))
        if active and not gpu:  # said once, neutrally: a run just resumed is one of these, not a surprise
            st.caption(f"Training now: {md(', '.join(r.name for r in active))}. A new run shares the CPU cores "
                       "with them.")
        b = st.columns([1, 3])
        submitted = b[0].form_submit_button("Launch run", type="primary", on_click=commit_form)
        ablate = b[1].form_submit_button("Launch report ablations (3 runs)", on_click=commit_form,
                                         help="these settings, the same without normalization, the same without "
                                              "augmentation: grouped by the run name, for the report's Table 1")
    if not gpu:
        st.caption("torch finds no GPU here: runs train on the CPU. The CPU recipe is sized for it (about 15 minutes "
                   "on 2 cores for the full data; the distilled one 1.5-2 hours); the report and best recipes are "
                   "GPU-sized (hours to days on a CPU).")
    return submitted, ablate


@st.cache_data(show_spinner=False, max_entries=32)
def _calibration(model: str, model_args: str, device: str, amp: bool, channels_last: bool) -> dict:
    return asdict(calibrate(model, json.loads(model_args), device=device, amp=amp, channels_last=channels_last))


def calibrated_estimate(v: dict, devices: list[str]) -> str | None:
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
    device = cfg.device if cfg.device != "auto" else next((d for d in devices[1:] if d != "cpu"), "cpu")
    n_train = min(sum(counts.values()), cfg.max_train_samples or 10**9)
    if not n_train:
        return None
    kind = device.split(":")[0]
    with st.spinner(f"Measuring {cfg.model}'s training speed on this machine ({kind})..."):
        cal = _calibration(cfg.model, json.dumps(cfg.model_args, sort_keys=True), device,
                           **trainer_settings(cfg, kind))
    secs = estimate_from_calibration(Calibration(**cal), n_train, n_val, cfg.epochs, train_epochs=cfg.epoch_cost())
    low = f" (the first {cfg.low_res_epochs} growing from {cfg.low_res} to 48 pixels)" if cfg.low_res else ""
    teachers = teacher_estimate(cfg, n_train)
    return (f"Estimated duration here: **about {durations.format_seconds(secs)}** for {cfg.epochs} epochs{low} of "
            f"{cfg.model} on {n_train:,} training faces (+ {n_val:,} validated each epoch); calibrated on this "
            f"machine's {kind}: {cal['train_images_per_s']:,.0f} training images/s, "
            f"{cal['eval_images_per_s']:,.0f} validation images/s.{teachers}\n\n" + ablation.duration_text(cfg, secs))


@st.cache_data(show_spinner="Measuring the teachers' speed on this machine...", max_entries=8)
def _teacher_rates(paths: tuple[str, ...], versions: tuple[str, ...]) -> list[tuple[str, float]]:
    try:  # `versions` (app_common.file_version) renew the entry
        return teacher_pass_rates(list(paths))
    except (CheckpointError, OSError, KeyError, TypeError, ValueError):
        return []  # the launch check says why


def teacher_estimate(cfg: TrainConfig, n_train: int) -> str:
    """The teachers' pass over each training face and its mirror; '' without one, or if one is unreadable."""
    paths = tuple(cfg.teacher_paths())
    if not (rates := _teacher_rates(paths, tuple(file_version(p) for p in paths))):
        return ""
    who = "the teacher computes its" if len(rates) == 1 else f"the {len(rates)} teachers compute their"
    return (f" Before the first epoch, {who} logits of every training face and its mirror: about "
            f"{durations.format_seconds(sum(2 * n_train / r for _, r in rates))} more, once "
            f"({', '.join(f'{md(n)} {r:,.0f} faces/s' for n, r in rates)}, fp32; later runs with the same teachers "
            "and faces read them from the cache).")


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


def launch_from_form(runs_dir: Path, ablations: bool = False) -> list[Path]:
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
    made = ablation.launch(opts, runs_dir, group=name) if ablations else [runs.launch(opts, runs_dir, name=name)]
    if Path(data).resolve() != SAMPLE_DATA.resolve():
        save_setting("train_data", data)  # the full data's path, for the next session's recipes
    return made


def launch(runs_dir: Path, ablations: bool, active) -> None:
    """Launch what the form holds and say how it went."""
    try:
        made = launch_from_form(runs_dir, ablations=ablations)
    except (runs.LaunchError, OSError) as e:
        st.error(f"Not launched: {md(e)}")
        return
    ss["train_options"]["name"] = ""
    ss["selected_run"] = made[0].name
    st.success(f"Launched {md(', '.join(r.name for r in made))}: `python -m fer_core.train` runs in its own "
               "process; its files in the run folder tell how it goes.")
    if active:
        st.warning(f"{len(active) + 1} runs now train at the same time and share this machine.")


def form_section(sidebar_data: str, runs_dir: Path, devices: list[str], gpu: bool, all_runs) -> None:
    """Presets, the form and its estimate; a launch when one of its buttons was pressed."""
    fill_form(sidebar_data, devices, "best" if gpu else "cpu")  # the recipe that fits this machine (issue 11)
    preset_buttons(sidebar_data)
    st.caption(quick_estimate(all_runs))
    full_data_help()
    active = [r for r in all_runs if r.active]
    submitted, ablate = the_form(runs_dir, devices, active, gpu)
    estimate = calibrated_estimate(ss["train_options"], devices)
    if estimate:
        st.caption(estimate)
    if submitted or ablate:
        launch(runs_dir, ablate, active)
