"""What the dashboard remembers: the user's settings across sessions and restarts (settings.json), and each
page's view across a reload, a shared link and a visit to another page (the URL's query parameters and the
session). A page gives a widget its remembered value with restore() before drawing it, and keep()s it after."""
from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st

from fer_core.data import atomic_write_bytes


def settings_file() -> Path:
    """The user's settings: $FER_SETTINGS_FILE (tests point it at a temp file), else
    $XDG_CONFIG_HOME/fer-dashboard/settings.json (~/.config/... by default)."""
    if os.environ.get("FER_SETTINGS_FILE"):
        return Path(os.environ["FER_SETTINGS_FILE"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "fer-dashboard" / "settings.json"


def load_settings() -> dict:
    """What the user chose in earlier sessions (e.g. "data_source", "train_data"); {} if none or unreadable."""
    try:
        obj = json.loads(settings_file().read_text())
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError):
        return {}


def save_setting(key: str, value) -> None:
    """Remember one choice across sessions and restarts; a read-only config dir only loses the memory."""
    s = load_settings()
    if s.get(key) == value:
        return
    s[key] = value
    try:
        atomic_write_bytes(settings_file(), (json.dumps(s, indent=2) + "\n").encode(), fsync=False)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# view state: what a page shows survives a reload, a shared link and a visit to another page


def restore(key: str, param: str, parse=str, ok=lambda v: True, memo: str | None = None) -> None:
    """Before widget `key` is drawn: when Streamlit holds no value for it (a new session, or the user came back
    from another page, which drops a page's widget state), give it the URL's ?param=... value, else the value
    remembered by keep() under `memo` (default: key). Values that fail `parse` or `ok` are ignored."""
    ss = st.session_state
    if key in ss:
        return
    found = []
    if param in st.query_params:
        try:
            found.append(parse(st.query_params[param]))
        except (ValueError, TypeError, KeyError, IndexError):
            pass  # a hand-edited or outdated link: the widget's default
    kept = ss.get("_kept", {})
    if (memo or key) in kept:
        found.append(kept[memo or key])
    for v in found:
        try:
            good = ok(v)
        except (ValueError, TypeError, KeyError, IndexError):
            good = False
        if good:
            ss[key] = v
            return


def keep(key: str, param: str, value, dump=str) -> None:
    """After drawing a widget: remember its value for this session (under `key`) and write it to the URL's
    query parameters, so the view can be reloaded or shared; None removes it."""
    kept = st.session_state.setdefault("_kept", {})
    if value is None:
        kept.pop(key, None)
        if param in st.query_params:
            del st.query_params[param]
        return
    kept[key] = value
    text = dump(value)
    if st.query_params.get(param) != text:
        st.query_params[param] = text
