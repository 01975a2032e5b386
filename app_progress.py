"""Long work on a page (predicting a split, features for the embedding map): a progress bar with the count and
an ETA at the top of the page, in the slot sidebar() makes there."""
from __future__ import annotations

import time

import streamlit as st

from fer_core import durations


def progress_reporter(where, what: str):
    """A progress(done, total, stage) callback drawing a bar with the count and an ETA in `where`
    (ETA from the rate so far; redrawn at most 5 times a second)."""
    t0, last = time.perf_counter(), [0.0]

    def report(done, total, stage=""):
        now = time.perf_counter()
        if now - last[0] < 0.2 and done < total:
            return
        last[0] = now
        rate = done / max(now - t0, 1e-6)
        left = (total - done) / rate if done else None
        eta = f" · about {durations.format_seconds(left)} left" if left is not None else ""
        where.progress(min(1.0, done / max(total, 1)),
                       text=f"{what}: {stage} {done:,}/{total:,}{eta}. Until it finishes, what is shown below "
                            "is from before the change (faded) and not yet updated.")
    return report


def top_slot():
    """A placeholder at the top of the current page (made by sidebar()), for progress bars of long work."""
    return st.session_state.get("_top_slot") or st.empty()
