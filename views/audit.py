"""Data Audit: near-duplicate faces within and across the data source's splits (a perceptual hash, fer_core.audit),
shown side by side, and the faces whose label the active model contradicts with confidence (downloadable)."""
import numpy as np
import pandas as pd
import streamlit as st

from app_common import file_version, get_faces, get_predictions, get_splits, model_or_stop, open_in_saliency, sidebar
from app_state import keep, restore
from fer_core import audit, draw
from fer_core.images import DataError
from fer_core.sources import CLASSES
from fer_core.text import md

THRESHOLDS = [0, 8, 16, 24, 32, 40, 48]
PAIRS_SHOWN = 24  # pairs drawn side by side (the table and the CSV hold all)
SUSPECTS_SHOWN = 12


@st.cache_data(show_spinner="Hashing every face and comparing all pairs...", max_entries=16)
def duplicates(data: str, data_key: str, threshold: int) -> tuple[list[dict], list[dict], dict]:
    """(pairs, summary rows, faces per split) over every split of the source."""
    sets = {s: get_faces(data, s) for s in get_splits(data)}
    pairs = audit.find_duplicates(sets, threshold)
    return pairs, audit.summarize(pairs, sets), {s: len(f) for s, f in sets.items()}


def pick_threshold() -> int:
    restore("aud_threshold", "bits", int, lambda t: t in THRESHOLDS)
    if "aud_threshold" not in st.session_state:
        st.session_state["aud_threshold"] = audit.THRESHOLD
    t = st.select_slider("Hash bits that may differ (of 255)", THRESHOLDS, key="aud_threshold",
                         help=f"{audit.THRESHOLD} (the default) keeps JPEG re-encoded and brightness-shifted copies, "
                              "measured on FER2013 (see fer_core/audit.py); above it, differently cropped versions "
                              "of one photo join, and then look-alikes")
    keep("aud_threshold", "bits", t)
    return t


def summary(rows: list[dict], sizes: dict) -> None:
    st.dataframe(pd.DataFrame([{"pairs of": r["kind"], "pairs": r["pairs"], "labels differ": r["conflicting"],
                                "faces of a with a copy": r["faces_a"], "faces of b with a copy": r["faces_b"],
                                "blank": r["flat"]} for r in rows]), hide_index=True, width="stretch",
                 key="aud_summary")
    st.caption(md(", ".join(f"{s}: {n:,} faces" for s, n in sizes.items()) + ". A pair across splits names the "
                  "earlier split as a. Blank: pairs of flat images (no face at all) of the same grey level."))


def pair_filter(rows: list[dict], pairs: list[dict]) -> list[dict]:
    c1, c2 = st.columns([2, 1])
    kinds = ["all"] + [r["kind"] for r in rows if r["pairs"]]
    kind = c1.selectbox("Pairs", kinds, key="aud_kind")
    conflicting = c2.toggle("Only pairs whose labels differ", key="aud_conflicting")
    return [p for p in pairs if (kind == "all" or f"{p['split_a']}/{p['split_b']}" == kind)
            and not (conflicting and p["same_label"])]


def side_by_side(pairs: list[dict], data: str) -> None:
    cols = st.columns(4)
    for n, p in enumerate(pairs[:PAIRS_SHOWN]):
        a = get_faces(data, p["split_a"]).x[p["index_a"]]
        b = get_faces(data, p["split_b"]).x[p["index_b"]]
        tile = np.concatenate([a, np.full((48, 3), 255, np.uint8), b], 1)
        same = "same label" if p["same_label"] else f"labels differ: {p['label_a']} / {p['label_b']}"
        cols[n % 4].image(draw.upscale(tile, 2), caption=md(
            f"{p['distance']} bits · {same} · {p['id_a']} ({p['split_a']}) · {p['id_b']} ({p['split_b']})"))


def show_duplicates(data: str) -> None:
    st.subheader("Near-duplicate faces")
    threshold = pick_threshold()
    pairs, rows, sizes = duplicates(data, file_version(data), threshold)
    summary(rows, sizes)
    if not pairs:
        st.info(f"No two faces within {threshold} bits.")
        return
    shown = pair_filter(rows, pairs)
    if not shown:
        st.info("No pair of this kind.")
        return
    st.caption(f"{len(shown):,} pairs, closest first; the first {min(len(shown), PAIRS_SHOWN)} side by side.")
    side_by_side(shown, data)
    st.download_button("Download the pairs (CSV)", audit.to_csv(shown, audit.PAIR_FIELDS), "near_duplicates.csv",
                       "text/csv", key="aud_pairs_csv")


def show_suspects(ctx) -> None:
    st.subheader(f"Label-noise suspects in split '{md(ctx.split)}'")
    model_or_stop(ctx.checkpoint)
    faces = get_faces(ctx.data, ctx.split)
    preds = get_predictions(ctx.checkpoint, ctx.data, ctx.split)
    found = audit.suspects(preds.probs, faces.y, faces.ids, ctx.split)
    t = audit.class_thresholds(preds.probs, faces.y)
    st.caption("Confident learning: a face is a suspect when the most probable of the classes that reach their "
               "threshold (the model's mean probability of that class over the faces labelled with it) is not its "
               "label. Thresholds: " + ", ".join(f"{c} {v:.2f}" for c, v in zip(CLASSES, t) if np.isfinite(v))
               + ". On faces the model trained on, it has fitted their labels: held-out splits say more.")
    st.metric("Suspects", f"{len(found):,} of {len(faces):,}")
    if not found:
        return
    cols = st.columns(6)
    for n, s in enumerate(found[:SUSPECTS_SHOWN]):
        with cols[n % 6]:
            st.image(draw.upscale(faces.x[s["index"]], 2), caption=md(
                f"#{s['index']} labelled {s['label']} {s['p_label']:.2f} · model: {s['suggested']} "
                f"{s['p_suggested']:.2f}"))
            if st.button("Explain", key=f"aud_explain_{s['index']}", help="open this face in the Saliency page"):
                open_in_saliency(ctx, s["index"], "Data Audit's suspects")
    st.dataframe(pd.DataFrame(found), hide_index=True, width="stretch", key="aud_suspects")
    st.download_button("Download the suspects (CSV)", audit.to_csv(found, audit.SUSPECT_FIELDS), "suspects.csv",
                       "text/csv", key="aud_suspects_csv")


ctx = sidebar()
st.title("Data Audit")
try:
    show_duplicates(ctx.data)
    show_suspects(ctx)
except (DataError, OSError) as e:
    st.error(md(e))
