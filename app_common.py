"""What every dashboard page shares: the sidebar (active checkpoint, data source, device) and cached loaders.

Pages call `ctx = sidebar()` first, then `get_model(ctx.checkpoint)` / `get_faces(ctx.data, split)`.
Other pages' code (or a test) changes the active model with `set_active_checkpoint(path)` and the data source
with `set_data_source(path)` (or by assigning st.session_state["active_checkpoint"] / ["data_source"] before a run).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import fer_core
from fer_core import interpret, runs
from fer_core.checkpoint import CheckpointError
from fer_core.data import DataError

ROOT = Path(__file__).resolve().parent
CHECKPOINTS = ROOT / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINTS / "fer_best.pt"
SAMPLE_DATA = ROOT / "samples" / "fer2013_sample.npz"
RUNS_DIR = Path(os.environ.get("FER_RUNS_DIR", ROOT / "runs"))

# every page of the dashboard in navigation order: (file, title, icon, what it shows)
PAGES = [
    ("pages/home.py", "Home", ":material/home:", "The active model and the data set"),
    ("pages/train.py", "Train", ":material/model_training:", "Launch, watch, stop and compare training runs"),
    ("pages/confusion_matrix.py", "Confusion Matrix", ":material/grid_on:", "Where the model confuses expressions"),
    ("pages/saliency.py", "Saliency", ":material/visibility:", "Which pixels drive a prediction"),
    ("pages/filters.py", "Filters", ":material/filter_vintage:", "First-layer filters and feature maps"),
    ("pages/classify.py", "Classify", ":material/photo_camera:", "Classify your own photo or webcam face"),
]


def available_pages() -> list[tuple[str, str, str, str]]:
    """The entries of PAGES whose file exists (pages land one by one)."""
    return [p for p in PAGES if (ROOT / p[0]).exists()]


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


def file_version(path) -> float:
    """A cheap cache key for what a file holds now: its mtime (a stat, no reading; 0 when missing)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


# ----------------------------------------------------------------------------------------------
# cached loaders (keyed by file mtime: a rewritten checkpoint or data file is loaded again)


@st.cache_resource(show_spinner="Loading model...", max_entries=8)
def _load_model(path: str, mtime: float):
    return fer_core.load_model(path)


def get_model(path):
    """(model, preprocess) for a checkpoint, cached until the file changes. Raises CheckpointError."""
    return _load_model(str(path), file_version(path))


def model_or_stop(path):
    """get_model, but a missing or broken checkpoint shows a clear message and stops the page."""
    try:
        return get_model(path)
    except CheckpointError as e:
        st.error(f"Cannot load the active checkpoint: {e}")
        st.info("Pick another checkpoint in the sidebar, or train one on the Train page.")
        st.stop()


@st.cache_resource(show_spinner="Loading faces...", max_entries=8)
def _load_faces(path: str, split: str, mtime: float):
    return fer_core.load_split(path, split)


def get_faces(path, split):
    """FaceSet of a data source split, cached until the source changes."""
    return _load_faces(str(path), split, file_version(path))


@st.cache_data(show_spinner="Predicting every face of the split (cached on disk afterwards)...", max_entries=16)
def _predictions(ckpt: str, ckpt_mtime: float, data: str, data_mtime: float, split: str, tta: bool):
    model, prep = get_model(ckpt)
    return interpret.predictions(model, prep, get_faces(data, split), tta=tta, checkpoint=ckpt)


def get_predictions(ckpt, data, split, tta=False):
    """interpret.Predictions of a checkpoint over a split: in memory, else from the disk cache, else computed."""
    return _predictions(str(ckpt), file_version(ckpt), str(data), file_version(data), split, tta)


@st.cache_data(show_spinner=False, max_entries=32)
def _class_counts(path: str, split: str, mtime: float) -> dict:
    return fer_core.class_counts(path, split)


def get_class_counts(path, split) -> dict[str, int]:
    """Faces per class of one split, without decoding images (cached)."""
    return _class_counts(str(path), split, file_version(path))


@st.cache_data(show_spinner=False, max_entries=32)
def _splits(path: str, mtime: float) -> list[str]:
    return fer_core.data.available_splits(path)


def get_splits(path) -> list[str]:
    """Splits the source holds, e.g. ["test"] for the bundled sample (cached)."""
    return _splits(str(path), file_version(path))


@st.cache_resource
def _device() -> tuple[str, str]:
    have = runs.available_devices()
    return have[0], runs.device_description()


def device() -> str:
    """The torch device the dashboard computes on (what torch sees: cuda, mps, else cpu)."""
    return _device()[0]


# ----------------------------------------------------------------------------------------------
# sidebar


def checkpoint_choices() -> list[str]:
    """Shipped checkpoints, then every run's best.pt and last.pt (newest run first)."""
    found = sorted(str(p) for p in CHECKPOINTS.glob("*.pt"))
    for run in runs.list_runs(runs_dir()):
        found += [str(run.path / f) for f in ("best.pt", "last.pt") if (run.path / f).exists()]
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


def set_data_source(path) -> None:
    st.session_state["data_source"] = str(path)


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
    """The dashboard's page config and st.navigation over the pages that exist (dashboard.py runs it)."""
    st.set_page_config(page_title="fer-dashboard", page_icon=":performing_arts:", layout="wide")
    ss = st.session_state
    ss["_nav_run"] = ss.get("_nav_run", 0) + 1  # this run went through the entrypoint's navigation
    return st.navigation([st.Page(path, title=title, icon=icon, default=(path == "pages/home.py"))
                          for path, title, icon, _ in available_pages()])


def _ensure_navigation() -> None:
    """Show dashboard.py's navigation even when a session starts on a page URL.

    Streamlit treats an app with a `pages/` folder as a v1 multipage app until the entrypoint first calls
    st.navigation; until then a fresh session opened on e.g. /classify runs pages/classify.py alone (no page
    config, an automatic navigation listing every file). Declaring the navigation here switches Streamlit to
    v2, and one immediate rerun (before any widget exists) makes the page run under its v2 identity, so the
    user's first upload or click is not lost to the switch (widget identities include the page)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without it
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        went_through_entrypoint = "_nav_run" in st.session_state
        navigation()
        if not went_through_entrypoint:
            st.rerun()


def sidebar() -> Ctx:
    """Draw the shared sidebar and return the active checkpoint, data source, split and device."""
    _ensure_navigation()
    ss = st.session_state
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
    ss["_sb_data"] = str(ss.get("data_source") or SAMPLE_DATA)
    data = st.sidebar.text_input("Data source", key="_sb_data", on_change=_keep, args=("data_source", "_sb_data"),
                                 help="A FER2013 .csv/.csv.gz, an image folder (<split>/<class>/*.png), a .zip of "
                                      "one, or an .npz. Empty: the bundled sample of PublicTest faces.")
    ss["data_source"] = data
    data = os.path.expanduser(data.strip()) or str(SAMPLE_DATA)
    error = None
    try:
        if data != str(SAMPLE_DATA):  # a server path typed by whoever reaches the page: data roots only
            fer_core.data.check_data_source(data)
        fer_core.data.source_kind(data)
        splits = get_splits(data)
        if not splits:
            raise DataError(f"{data}: no faces found in any split (train, val, test)")
    except DataError as e:
        error = str(e)
        st.sidebar.error(f"{error}. Using the bundled sample instead.")
        data = str(SAMPLE_DATA)
        splits = get_splits(data)
    split = default_split(splits)
    if data == str(SAMPLE_DATA):
        st.sidebar.caption(f"Bundled sample: {sum(get_class_counts(data, split).values())} {split} faces")
    else:
        st.sidebar.caption(f"Splits: {', '.join(splits)}; views use {split}")

    # --- device
    dev, desc = _device()
    st.sidebar.caption(f"Device: {desc}")
    return Ctx(ckpt or str(DEFAULT_CHECKPOINT), data, split, dev, error)
