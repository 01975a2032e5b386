"""Classify: every face in uploaded photos and webcam pictures, plus an optional live webcam stream."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_common import file_version, get_model, model_or_stop, sidebar
from app_photo import photo_hint
from fer_core.images import UPLOAD_MAX_PIXELS, DataError, open_image
from fer_core.sources import CLASSES
from fer_core.faces import draw_faces, find_faces
from fer_core.draw import overlay
from fer_core.classify import classify_faces
from fer_core.face_saliency import face_saliency
from fer_core.live import LiveState
from fer_core.predict import rows_to_csv
from fer_core.text import md, one_line, plot_text
from fer_core.tracking import decide

IMAGE_TYPES = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif"]
MAX_FACES_SHOWN = 12  # per photo: a crowd still lands in the table, but only this many get charts
GRID_FROM = 4  # this many photos or more: a compact grid of thumbnails and one photo's details at a time
GRID_COLUMNS = 4
HOW = {"yunet": "found by YuNet", "haar": "found by the Haar cascade",
       None: "whole image (no face detected; a tight crop)"}


@st.cache_data(max_entries=64, show_spinner=False)
def analyze(data: bytes, name: str, checkpoint: str, mtime: float, tta: bool, saliency: bool) -> dict:
    """Decode, find faces and classify one uploaded file -> {name, image, faces: [...]} or {name, error}.

    Cached on the file's bytes and the checkpoint, so widget clicks do not re-run the model."""
    try:
        img = open_image(data, name=name, max_pixels=UPLOAD_MAX_PIXELS)
        faces = find_faces(img, name=name)
        model, prep = get_model(checkpoint)
        results = classify_faces(model, prep, faces, file=name, tta=tta)
    except DataError as e:
        return {"name": name, "error": one_line(e)}
    except Exception as e:  # noqa: BLE001 - one odd file must not take the page down with a traceback
        return {"name": name, "error": f"{name}: could not be processed ({type(e).__name__}: {one_line(e)})"}
    maps, map_error = None, None
    if saliency and results:
        classes = list(getattr(model, "classes", CLASSES))
        try:
            maps = face_saliency(model, prep, np.stack([r.face48 for r in results]),
                                 [classes.index(r.label) for r in results])
        except Exception as e:  # noqa: BLE001 - the classification is still worth showing
            map_error = f"Saliency unavailable: {one_line(e)}"
    captions = [f"{r.label} {r.probabilities[r.label]:.0%}" for r in results]
    shown = draw_faces(img, [r.box for r in results], captions, landmarks=[r.landmarks for r in results])
    shown.thumbnail((1280, 1280))  # what the browser gets; boxes are already drawn at full size
    return {"name": name, "image": shown, "rows": [r.row() for r in results],
            "faces48": [r.face48 for r in results], "maps": maps, "map_error": map_error}


def prob_bars(probs: dict) -> go.Figure:
    vals = list(probs.values())
    names = [plot_text(c) for c in probs]  # class names come from the checkpoint file
    top = int(np.argmax(vals))
    fig = go.Figure(go.Bar(x=vals, y=names, orientation="h", text=[f"{v:.0%}" for v in vals], textposition="auto",
                           marker_color=["#d62728" if i == top else "#8c9db5" for i in range(len(vals))]))
    fig.update_layout(height=210, margin=dict(l=0, r=0, t=0, b=0), xaxis=dict(range=[0, 1], tickformat=".0%"),
                      yaxis=dict(autorange="reversed"))
    return fig


def show_result(res: dict, idx: int, saliency: bool, threshold: float) -> None:
    st.subheader(md(res["name"]))
    if "error" in res:
        st.warning(md(res["error"]))
        return
    left, right = st.columns([3, 2])
    left.image(res["image"], caption=f"{len(res['rows'])} face(s)", width="stretch")
    if saliency and res.get("map_error"):
        left.caption(md(res["map_error"]))
    with right:
        for j, row in enumerate(res["rows"][:MAX_FACES_SHOWN]):
            verdict, conf = decide(list(row["probabilities"].values()), threshold, list(row["probabilities"]))
            how = HOW.get(row.get("detector") if row["source"] == "detected" else None, row["source"])
            st.markdown(f"**Face {j + 1}: {md(verdict)}** ({md(row['label'])} {conf:.0%}) \\- {md(how)}")
            c1, c2 = st.columns([1, 2])
            face = res["faces48"][j]
            what = "levelled 48x48 crop" if row.get("detector") == "yunet" else "48x48 crop"
            c1.image(np.kron(face, np.ones((3, 3), np.uint8)), caption=f"what the model sees ({what})")
            if saliency and res["maps"] is not None:
                c1.image(overlay(face, res["maps"][j], scale=3), caption=f"saliency for '{md(row['label'])}'")
            c2.plotly_chart(prob_bars(row["probabilities"]), key=f"bars-{idx}-{j}")
        if len(res["rows"]) > MAX_FACES_SHOWN:
            st.caption(f"{len(res['rows']) - MAX_FACES_SHOWN} more face(s) in the table below.")


def results_table(results: list[dict], threshold: float) -> pd.DataFrame:
    recs = []
    for res in results:
        if "error" in res:
            recs.append({"file": res["name"], "error": res["error"]})
            continue
        for row in res["rows"]:
            verdict, conf = decide(list(row["probabilities"].values()), threshold, list(row["probabilities"]))
            recs.append({"file": row["file"], "face": row["face"] + 1, "verdict": verdict, "label": row["label"],
                         "confidence": conf, "source": row["source"], "detector": row.get("detector") or "",
                         "box": str(row["box"]), **row["probabilities"]})
    return pd.DataFrame(recs)


def photo_grid(results: list[dict], threshold: float) -> None:
    """Many photos: annotated thumbnails, GRID_COLUMNS to a row, each captioned with its faces' verdicts."""
    for start in range(0, len(results), GRID_COLUMNS):
        for col, res in zip(st.columns(GRID_COLUMNS), results[start : start + GRID_COLUMNS]):
            if "error" in res:
                col.warning(res["error"])
                continue
            verdicts = [decide(list(r["probabilities"].values()), threshold, list(r["probabilities"]))[0]
                        for r in res["rows"]]
            col.image(res["image"], caption=f"{md(res['name'])}: " + ", ".join(
                f"{j + 1} {md(v)}" for j, v in enumerate(verdicts[:6])) + (" ..." if len(verdicts) > 6 else ""),
                width="stretch")


# ----------------------------------------------------------------------------------------------
# Live webcam (streamlit-webrtc): frames are classified in the stream's own thread


def live_section(model, prep, checkpoint: str) -> None:
    try:
        import av
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError as e:
        st.info(f"Live webcam needs streamlit-webrtc ({md(e)}).")
        return
    c1, c2 = st.columns(2)
    threshold = c1.slider("Uncertain below confidence", 0.0, 1.0, 0.5, 0.05,
                          help="Faces whose smoothed top probability is lower are shown as 'uncertain'.")
    alpha = c2.slider("Smoothing (weight of the newest frame)", 0.05, 1.0, 0.3, 0.05,
                      help="1 = no smoothing; lower = steadier but slower to react.")
    key = (checkpoint, file_version(checkpoint))
    state = st.session_state.get("classify_live")
    if state is None or state[0] != key:
        state = (key, LiveState(model, prep, alpha, threshold))
        st.session_state["classify_live"] = state
    live = state[1]
    live.configure(alpha, threshold)

    def callback(frame):
        return av.VideoFrame.from_ndarray(live.process(frame.to_ndarray(format="bgr24")), format="bgr24")

    # No STUN/TURN by default: works on this machine and the local network without reaching the internet.
    # FER_ICE_SERVERS="stun:host:port,..." adds servers for remote use.
    ice = [{"urls": u.strip()} for u in os.environ.get("FER_ICE_SERVERS", "").split(",") if u.strip()]
    webrtc_streamer(key="classify-live", mode=WebRtcMode.SENDRECV, video_frame_callback=callback,
                    rtc_configuration={"iceServers": ice}, media_stream_constraints={"video": True, "audio": False},
                    async_processing=True)

    @st.fragment(run_every=1.0)
    def live_readout():
        faces, frames, ms = live.snapshot()
        if not frames:
            st.caption("Press START and allow the camera; results appear here.")
            return
        st.caption(f"{frames} frames analysed, {ms:.0f} ms per frame, {len(faces)} face(s) in view")
        for j, o in enumerate(faces[:4]):
            st.markdown(f"**Face {j + 1}: {md(o['label'])}** ({o['confidence']:.0%}, {o['frames']} frames)")
            st.plotly_chart(prob_bars(dict(zip(live.live.smoother.classes, o["probabilities"]))),
                            key=f"live-{j}")

    live_readout()


def live_toggle(model, prep, checkpoint: str) -> None:
    st.divider()
    if st.toggle("Live webcam", value=False, help="Continuous classification, smoothed over frames"):
        live_section(model, prep, checkpoint)


# ----------------------------------------------------------------------------------------------
# Photos and webcam pictures


def controls() -> tuple[bool, bool, bool, float]:
    """(TTA, saliency overlay, webcam picture, the 'uncertain' threshold)."""
    o1, o2, o3 = st.columns(3)
    tta = o1.toggle("Test-time augmentation (mirror)", value=False)
    saliency = o2.toggle("Saliency overlay", value=False, help="Vanilla gradient of the predicted class per face")
    use_camera = o3.toggle("Take a webcam picture", value=False)
    threshold = st.slider("Mark 'uncertain' below confidence", 0.0, 1.0, 0.5, 0.05, key="upload_threshold",
                          help="A face whose top probability is lower is marked 'uncertain' (as in the live webcam).")
    return tta, saliency, use_camera, threshold


def photo_inputs(use_camera: bool) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded photo, then of the webcam picture when one is taken."""
    uploads = st.file_uploader("Photos", type=IMAGE_TYPES, accept_multiple_files=True,
                               help="Any size and format a phone or webcam makes; every face in each photo is "
                                    "classified.")
    inputs = [(f.name, f.getvalue()) for f in uploads or []]
    if use_camera:
        shot = st.camera_input("Webcam picture")
        if shot is not None:
            inputs.append(("webcam picture", shot.getvalue()))
    return inputs


def results_overview(model, results: list[dict], threshold: float) -> None:
    """Every face of every photo in one table, and the CSV of the predictions."""
    st.subheader("Results")
    table = results_table(results, threshold)
    st.dataframe(table, hide_index=True, column_config={
        c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.2f")
        for c in ("confidence", *CLASSES) if c in table.columns})
    rows = [r for res in results for r in (res.get("rows") or [{"file": res["name"], "error": res["error"]}])]
    st.download_button("Download CSV", rows_to_csv(rows, tuple(model.classes)), file_name="fer_predictions.csv",
                       mime="text/csv")
    st.caption("Faces are numbered from 1 on the photos and in this table; the CSV has the columns of "
               "`python -m fer_core.predict --format csv`, whose face index starts at 0.")


def details(results: list[dict], saliency: bool, threshold: float) -> None:
    """Each photo in full, or for a long batch a compact grid and then the one photo picked in full."""
    if len(results) >= GRID_FROM:  # a long batch: a compact grid, then one photo in full
        photo_grid(results, threshold)
        names = [f"{i + 1}. {r['name']}" for i, r in enumerate(results)]
        pick = st.selectbox("Details for", range(len(results)), format_func=lambda i: names[i])
        show_result(results[pick], pick, saliency, threshold)
    else:
        for i, res in enumerate(results):
            show_result(res, i, saliency, threshold)


def photos(ctx, model, inputs: list[tuple[str, bytes]], tta: bool, saliency: bool, threshold: float) -> None:
    """Every face of the photos classified (cached per file), the table of all of them, then each photo."""
    if not inputs:
        st.info("Upload photos (or take a webcam picture) to classify the faces in them.")
        return
    results = []
    with st.spinner("Finding and classifying faces..."):
        for name, data in inputs:
            results.append(analyze(data, name, ctx.checkpoint, file_version(ctx.checkpoint), tta, saliency))
    results_overview(model, results, threshold)
    details(results, saliency, threshold)


ctx = sidebar()
st.title("Classify")
st.caption("Every face in your photos: boxed, numbered and classified. Faces are found with YuNet (OpenCV's "
           "FaceDetectorYN; the Haar cascade as fallback), levelled on the eyes and given to the model as 48x48 "
           "grayscale crops framed like the training data.")
model, prep = model_or_stop(ctx.checkpoint)
photo_hint(ctx.checkpoint)
tta, saliency, use_camera, threshold = controls()
photos(ctx, model, photo_inputs(use_camera), tta, saliency, threshold)
live_toggle(model, prep, ctx.checkpoint)
