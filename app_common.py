"""What every dashboard page shares: the sidebar (active checkpoint, data source, device) and cached loaders.

Pages call `ctx = sidebar()` first, then `get_model(ctx.checkpoint)` / `get_faces(ctx.data, split)`.
Other pages' code (or a test) changes the active model with `set_active_checkpoint(path)`, or by assigning
st.session_state["active_checkpoint"] / ["data_source"] before a run. What the dashboard remembers (settings,
each page's view) is app_state.py; the progress bar of long work app_progress.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

import fer_core
from fer_core import devices, interpret, runstate
from fer_core import splits as splits_mod
from fer_core.checkpoint import CheckpointError
from fer_core.data import file_key
from fer_core.images import DataError
from fer_core.runfiles import BEST_FILE, LAST_FILE
from fer_core.text import md, one_line

from app_progress import progress_reporter, top_slot
from app_state import load_settings, save_setting

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINTS / "fer_best.pt"
SAMPLE_DATA = ROOT / "samples" / "fer2013_sample.npz"
RUNS_DIR = Path(os.environ.get("FER_RUNS_DIR", ROOT / "runs"))

# every page of the dashboard in navigation order: (file, title, icon, what it shows)
PAGES = [
    ("views/home.py", "Home", ":material/home:", "The active model and the data set"),
    ("views/train.py", "Train", ":material/model_training:", "Launch, watch, stop and compare training runs"),
    ("views/confusion_matrix.py", "Confusion Matrix", ":material/grid_on:", "Where the model confuses expressions"),
    ("views/saliency.py", "Saliency", ":material/visibility:", "Which pixels drive a prediction"),
    ("views/filters.py", "Filters", ":material/filter_vintage:", "First-layer filters and feature maps"),
    ("views/embeddings.py", "Embeddings", ":material/scatter_plot:", "How the model arranges all faces of a split"),
    ("views/compare.py", "Compare", ":material/compare_arrows:", "Two models on the same faces, and where they differ"),
    ("views/audit.py", "Data Audit", ":material/fact_check:", "Near-duplicate faces across splits, suspect labels"),
    ("views/classify.py", "Classify", ":material/photo_camera:", "Classify your own photo or webcam face"),
    ("views/video.py", "Video", ":material/movie:", "An emotion timeline for every face in a video clip"),
]


def runs_dir() -> Path:
    """Where training runs live: $FER_RUNS_DIR (read on every call, so tests can point it elsewhere) or runs/."""
    return Path(os.environ.get("FER_RUNS_DIR") or RUNS_DIR)


@dataclass
class Ctx:
    checkpoint: str  # path of the active checkpoint
    data: str  # path of the active data source
    split: str  # default split of that source for evaluation views ("test" for the bundled sample)
    device: str  # torch device the views compute on: "cuda", "mps" or "cpu"
    data_error: str | None = None  # message if the entered data source was rejected (the sample is used)


def data_source(text) -> str:
    """The one guard of every data path typed in the dashboard (the sidebar's data source, the Train form's) and
    of the loaders below: the real path of `text` when it lies inside a data root and is a regular file or
    folder of a known kind within its size limit (fer_core.data.check_data_source). DataError otherwise, with a
    message that says nothing about what exists outside the roots; nothing there is opened."""
    path = os.path.expanduser(str(text or "").strip())
    if not path:
        raise DataError("enter a data source: a FER2013 .csv/.csv.gz, an image folder, a .zip or an .npz")
    return fer_core.data.check_data_source(path)


def file_version(path) -> str:
    """fer_core.data.file_key without the folder walk (one stat per rerun): the key of st.cache_* loaders;
    "missing" when the path does not exist."""
    try:
        return file_key(path, deep=False)
    except OSError:
        return "missing"


# ----------------------------------------------------------------------------------------------
# cached loaders (keyed by file mtime: a rewritten checkpoint or data file is loaded again)


@st.cache_resource(show_spinner="Loading model...", max_entries=8)
def _load_model(path: str, mtime: float):
    return fer_core.load_model(path)


def get_model(path):
    """(model, preprocess) for a checkpoint, cached until the file changes. Raises CheckpointError."""
    return _load_model(str(path), file_version(path))


def model_or_stop(path, what: str = "the active checkpoint"):
    """get_model, the one way every page handles a checkpoint that does not load (missing, not a checkpoint,
    weights that do not fit): one line saying why, and the page stops."""
    try:
        return get_model(path)
    except CheckpointError as e:
        st.error(f"Cannot load {what}: {md(one_line(e).rstrip('.'))}. Pick another checkpoint, or train one on the "
                 "Train page.")
        st.stop()


@st.cache_resource(show_spinner="Loading faces...", max_entries=8)
def _load_faces(path: str, split: str, mtime: float):
    return fer_core.load_split(path, split)


def get_faces(path, split):
    """FaceSet of a data source split, cached until the source changes. DataError outside the data roots."""
    path = data_source(path)
    return _load_faces(path, split, file_version(path))


@st.cache_data(show_spinner=False, max_entries=16)
def _predictions(ckpt: str, ckpt_mtime: float, data: str, data_mtime: float, split: str, tta: bool):
    model, prep = get_model(ckpt)
    return interpret.predictions(model, prep, get_faces(data, split), tta=tta, checkpoint=ckpt)


def get_predictions(ckpt, data, split, tta=False):
    """interpret.Predictions of a checkpoint over a split: in memory, else from the disk cache, else computed
    with a progress bar (count and ETA) at the top of the page."""
    args = (str(ckpt), file_version(ckpt), str(data), file_version(data), split, tta)
    try:
        on_disk = interpret.predictions_cache_file(ckpt, data, split, tta).exists()
    except OSError:
        on_disk = True  # a missing file: let the cached call raise its own error
    if not on_disk:
        slot = top_slot()
        model, prep = get_model(ckpt)
        interpret.predictions(model, prep, get_faces(data, split), tta=tta, checkpoint=ckpt,
                              progress=progress_reporter(slot, f"Predicting the {split} split"
                                                         + (" with flip TTA" if tta else "")))
        slot.empty()
    return _predictions(*args)


def _precompute_shipped(data: str) -> None:
    ckpts = sorted(str(p) for p in CHECKPOINTS.glob("*.pt"))
    try:
        interpret.precompute(ckpts, data, "test")
    except Exception:  # a cache warm-up: any failure only means the first view computes it
        pass


@st.cache_resource(show_spinner=False)
def start_precompute() -> bool:
    """Once per dashboard process: predict the bundled sample with the shipped checkpoints in a background
    thread, so Confusion Matrix and Saliency open at once the first time ($FER_PRECOMPUTE=0 turns it off)."""
    if os.environ.get("FER_PRECOMPUTE", "1") == "0":
        return False
    import threading

    threading.Thread(target=_precompute_shipped, args=(str(SAMPLE_DATA),), name="fer-precompute",
                     daemon=True).start()
    return True


@st.cache_data(show_spinner=False, max_entries=32)
def _class_counts(path: str, split: str, mtime: float) -> dict:
    return fer_core.class_counts(path, split)


def get_class_counts(path, split) -> dict[str, int]:
    """Faces per class of one split, without decoding images (cached). DataError outside the data roots."""
    path = data_source(path)
    return _class_counts(path, split, file_version(path))


@st.cache_data(show_spinner=False, max_entries=32)
def _splits(path: str, mtime: float) -> list[str]:
    return fer_core.data.available_splits(path)


@st.cache_data(show_spinner=False, max_entries=64)
def _split_label(path: str, split: str, mtime: float) -> str:
    try:
        return splits_mod.label(fer_core.data.resolve_split(path, split))
    except DataError:
        return split


def split_label(path, split: str) -> str:
    """'test (PublicTest)': a split of this source with the FER2013 split it holds (fer_core.splits)."""
    return _split_label(str(path), split, file_version(path))


def get_splits(path) -> list[str]:
    """Splits the source holds, e.g. ["test"] for the bundled sample (cached). DataError outside the data roots."""
    path = data_source(path)
    return _splits(path, file_version(path))


@st.cache_resource
def _device() -> tuple[str, str]:
    have = devices.available_devices()
    return have[0], devices.device_description()


def device() -> str:
    """The torch device the dashboard computes on (what torch sees: cuda, mps, else cpu)."""
    return _device()[0]


# ----------------------------------------------------------------------------------------------
# navigation


def view_id(ctx) -> str:
    """Short identity of what a page's labels are computed from: the checkpoint and data files as they are now
    and the split. Widgets whose option labels carry predictions put it in their key, so a checkpoint or data
    switch draws them afresh instead of keeping the old labels."""
    ident = f"{ctx.checkpoint}|{file_version(ctx.checkpoint)}|{ctx.data}|{file_version(ctx.data)}|{ctx.split}"
    return hashlib.sha1(ident.encode()).hexdigest()[:8]


def open_in_saliency(ctx, index: int, origin: str, checkpoint=None) -> None:
    """Send face `index` of the page's data split to the Saliency page and switch to it; explained there by
    `checkpoint` (default: the active one), which becomes the active model. `origin` is shown there ("Sent from
    the <origin>")."""
    if checkpoint is not None and str(checkpoint) != ctx.checkpoint:
        set_active_checkpoint(checkpoint)
        ctx = dataclasses.replace(ctx, checkpoint=str(checkpoint))
    st.session_state["saliency_face"] = {"data": ctx.data, "split": ctx.split, "index": int(index),
                                         "view": view_id(ctx), "origin": origin}
    try:
        st.switch_page("views/saliency.py", query_params={"pick": "sent", "face": str(int(index))})
    except StreamlitAPIException:
        # the page runs outside the dashboard's navigation (e.g. on its own): nothing to switch to
        st.info("Face sent to the Saliency page; open it from the navigation.")


# ----------------------------------------------------------------------------------------------
# sidebar


def checkpoint_choices() -> list[str]:
    """Shipped checkpoints, then every run's best.pt and last.pt (newest run first)."""
    found = sorted(str(p) for p in CHECKPOINTS.glob("*.pt"))
    for run in runstate.list_runs(runs_dir()):
        found += [str(run.path / f) for f in (BEST_FILE, LAST_FILE) if (run.path / f).exists()]
    return found


def checkpoint_label(path: str) -> str:
    p = Path(path)
    try:
        rel = p.relative_to(runs_dir())
        return f"run {rel.parent} · {p.stem}"
    except ValueError:
        pass
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def set_active_checkpoint(path) -> None:
    """Make `path` the active model on every page (from a callback, or followed by st.rerun())."""
    st.session_state["active_checkpoint"] = str(path)


def _keep(state_key: str, widget_key: str) -> None:
    """on_change of a sidebar widget: remember its value under a key that outlives the page.
    (Streamlit forgets a page's widget state when the user moves to another page, so each run the widget
    is given the remembered value again before it is drawn.)"""
    st.session_state[state_key] = st.session_state[widget_key]


def default_split(splits: list[str]) -> str:
    for s in ("test", "val", "train"):
        if s in splits:
            return s
    return "test"


def navigation():
    """The dashboard's page config and st.navigation over PAGES (dashboard.py runs it)."""
    st.set_page_config(page_title="fer-dashboard", page_icon=":performing_arts:", layout="wide")
    # The page scripts live in views/, not pages/: a pages/ folder would switch Streamlit to its old automatic
    # navigation for a session opened on a page URL (tests/test_e2e_dashboard.py opens /train first).
    return st.navigation([st.Page(path, title=title, icon=icon, default=(path == "views/home.py"))
                          for path, title, icon, _ in PAGES])


def sidebar() -> Ctx:
    """Draw the shared sidebar and return the active checkpoint, data source, split and device."""
    ss = st.session_state
    ss["_top_slot"] = st.empty()  # progress of long work goes here, above the page's title
    start_precompute()
    st.sidebar.header("Model and data")

    # --- active checkpoint
    choices = checkpoint_choices()
    want = str(ss.get("active_checkpoint") or DEFAULT_CHECKPOINT)
    if want not in choices and Path(want).is_file():
        choices.insert(0, want)  # a checkpoint chosen elsewhere (a path outside checkpoints/ and runs/)
    if want not in choices:
        want = str(DEFAULT_CHECKPOINT) if str(DEFAULT_CHECKPOINT) in choices else (choices[0] if choices else None)
    if choices:
        ss["_sb_checkpoint"] = want
        ckpt = st.sidebar.selectbox("Checkpoint", choices, key="_sb_checkpoint", format_func=checkpoint_label,
                                    on_change=_keep, args=("active_checkpoint", "_sb_checkpoint"),
                                    help="Shipped models in checkpoints/ and the best/last checkpoint of every run")
        ss["active_checkpoint"] = ckpt
    else:
        ckpt = str(DEFAULT_CHECKPOINT)
        st.sidebar.warning("No checkpoint found in checkpoints/ or in any run. Train one on the Train page.")

    # --- data source
    ss["_sb_data"] = str(ss.get("data_source") or load_settings().get("data_source") or SAMPLE_DATA)
    data = st.sidebar.text_input("Data source", key="_sb_data", on_change=_keep, args=("data_source", "_sb_data"),
                                 help="A FER2013 .csv/.csv.gz, an image folder (<split>/<class>/*.png), a .zip of "
                                      "one, or an .npz. Empty: the bundled sample of PublicTest faces.")
    ss["data_source"] = data
    data = os.path.expanduser(data.strip()) or str(SAMPLE_DATA)
    error = None
    try:
        if data != str(SAMPLE_DATA):  # a server path typed by whoever reaches the page: data roots only
            data = data_source(data)
        splits = get_splits(data)
        if not splits:
            raise DataError(f"{data}: no faces found in any split (train, val, test)")
    except DataError as e:
        error = str(e)
        st.sidebar.error(f"{md(error)}. Using the bundled sample instead.")
        data = str(SAMPLE_DATA)
        splits = get_splits(data)
    if error is None and ss.get("_sb_data"):
        save_setting("data_source", ss["_sb_data"])  # remembered for the next session (valid sources only)
    split = default_split(splits)
    if data == str(SAMPLE_DATA):
        st.sidebar.caption(f"Bundled sample: {sum(get_class_counts(data, split).values())} "
                           f"{split_label(data, split)} faces")
    else:
        st.sidebar.caption(md(f"Splits: {', '.join(split_label(data, s) for s in splits)}; views use {split}"))

    # --- device
    dev, desc = _device()
    st.sidebar.caption(f"Device: {desc}")
    return Ctx(ckpt or str(DEFAULT_CHECKPOINT), data, split, dev, error)
