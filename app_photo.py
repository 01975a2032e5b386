"""Classify's and Video's pointer to the shipped model that does best on real photos: the pages people bring their
own faces to should not quietly use a model that is worse on them (issue 22). The choice itself is plain data in
fer_core.runtable.photo_advice; this only reads the checkpoints' stamped scores and draws the line and its button."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.checkpoint import CheckpointError, read_checkpoint
from fer_core.runtable import photo_advice
from fer_core.text import md

from app_common import CHECKPOINTS, checkpoint_label, file_version, set_active_checkpoint


@st.cache_data(show_spinner=False, max_entries=64)
def _photo_meta(path: str, version: str) -> dict:
    """The part of a checkpoint the pointer reads, cached until the file changes; {} for a file that does not load."""
    try:
        return {"photo_evaluation": read_checkpoint(path).get("photo_evaluation")}
    except (CheckpointError, OSError):
        return {}


def photo_hint(active) -> None:
    """One line and a button when a shipped checkpoint beats the active one on the same real photos by a clear
    margin; nothing otherwise (the active model is the best measured, or it was never measured on photos)."""
    # the active file under another name than its shipped one is its own rival, at the same score: never advised
    paths = [str(p) for p in sorted(CHECKPOINTS.glob("*.pt"))] + [str(active)]
    advice = photo_advice(str(active), {p: _photo_meta(p, file_version(p)) for p in paths}, label=checkpoint_label)
    if advice is None:
        return
    path, text = advice
    st.info(md(text), icon=":material/photo_camera:")  # names from files: text, never Markdown
    st.button(md(f"Use {Path(path).name}"), key="photo_hint_use", on_click=set_active_checkpoint, args=(path,),
              help="Make it the active model on every page (the sidebar's checkpoint)")
