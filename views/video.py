"""Video: an emotion timeline for every face in an uploaded clip (fer_core.video does the work)."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from app_common import file_version, model_or_stop, sidebar
from app_photo import photo_hint
from fer_core import video
from fer_core.images import DataError
from fer_core.sources import CLASSES
from fer_core.faces import draw_faces
from fer_core.text import md, one_line

VIDEO_TYPES = [e.lstrip(".") for e in video.VIDEO_EXTENSIONS]
WORK = Path(tempfile.gettempdir()) / "fer-dashboard-video"  # uploaded clips and annotated outputs, by content hash
COLORS = dict(zip(CLASSES, ["#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e", "#7f7f7f"]))


def run_analysis(data: bytes, name: str, checkpoint: str, fps: float) -> dict:
    """Analyse once per (clip bytes, checkpoint, fps) in this session, with a progress bar; the result (or a
    one-line error) is kept in session_state so widget clicks do not re-run the model."""
    digest = hashlib.sha1(data).hexdigest()[:16]
    key = (digest, checkpoint, file_version(checkpoint), fps)
    store = st.session_state.setdefault("video_results", {})
    if key in store:
        return store[key]
    WORK.mkdir(parents=True, exist_ok=True)
    clip = WORK / f"{digest}{Path(name).suffix.lower()}"
    if not clip.exists():
        tmp = clip.with_name(f".{clip.name}.part")
        tmp.write_bytes(data)
        tmp.replace(clip)
    annotated = WORK / f"{hashlib.sha1(repr(key).encode()).hexdigest()[:16]}.webm"  # VP8 WebM: browsers play it
    model, prep = model_or_stop(checkpoint)
    bar = st.progress(0.0, text=f"Analysing {name}...")

    def progress(done, total):
        bar.progress(min(1.0, done / total) if total > 0 else 0.0,
                     text=f"Analysing {name}: {done:.1f} of {total:.1f} s")

    try:
        res = video.analyze(model, prep, clip, fps=fps, name=name, progress=progress, annotated=annotated)
        out = {"name": name, "clip": str(clip), "result": res,
               "annotated": str(annotated) if annotated.exists() else None}
    except DataError as e:
        out = {"name": name, "error": one_line(e)}
    except Exception as e:  # noqa: BLE001 - an odd clip is a message, never a traceback
        out = {"name": name, "error": f"{name}: could not be analysed ({type(e).__name__}: {one_line(e)})"}
    bar.empty()
    store[key] = out
    return out


def timeline(res, track: int) -> go.Figure:
    rows = [r for r in res.rows if r["track"] == track]
    t = [r["time"] for r in rows]
    fig = go.Figure()
    for c in CLASSES:
        fig.add_trace(go.Scatter(x=t, y=[r["probabilities"][c] for r in rows], name=c, mode="lines+markers",
                                 line=dict(color=COLORS[c]), marker=dict(size=6),
                                 customdata=[r["frame"] for r in rows],
                                 hovertemplate=f"{c} %{{y:.0%}} at %{{x:.2f}} s<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0), xaxis_title="time (s)",
                      yaxis=dict(range=[0, 1], tickformat=".0%", title="probability"), clickmode="event+select",
                      legend=dict(orientation="h", y=1.12))
    return fig


def summary_bars(res) -> go.Figure:
    fig = go.Figure()
    for t in res.tracks:
        fig.add_trace(go.Bar(x=list(CLASSES), y=[t["share"][c] for c in CLASSES], name=f"track {t['track']}",
                             text=[f"{t['share'][c]:.0%}" if t["share"][c] else "" for c in CLASSES]))
    fig.update_layout(barmode="group", height=300, margin=dict(l=0, r=0, t=10, b=0),
                      yaxis=dict(range=[0, 1], tickformat=".0%", title="share of the track's frames"))
    return fig


@st.cache_data(max_entries=32, show_spinner=False)
def frame_at(clip: str, t: float) -> np.ndarray:
    return video.read_frame(clip, t)


def clip_input() -> tuple[float, object]:
    """(frames per second, the uploaded clip); without a clip the page says what to do and stops."""
    fps = st.select_slider("Frames analysed per second of video", options=[1.0, 2.0, 5.0, 10.0], value=5.0)
    upload = st.file_uploader("Video clip", type=VIDEO_TYPES, help="mp4, webm, mov, avi, mkv")
    if upload is None:
        st.info("Upload a video clip to see an emotion timeline for every face in it.")
        st.stop()
    return fps, upload


def analysis(upload, checkpoint: str, fps: float) -> dict:
    """The clip's analysis and what it found; the page stops at an error or when no face was found."""
    out = run_analysis(upload.getvalue(), upload.name, checkpoint, fps)
    if "error" in out:
        st.warning(md(out["error"]))
        st.stop()
    res = out["result"]
    for note in res.notes:
        st.info(md(note))
    st.caption(f"{res.info.width}x{res.info.height}, {res.info.duration:.1f} s; {res.sampled} frames analysed, "
               f"{len(res.tracks)} track(s)")
    if not res.rows:
        st.stop()
    return out


def pick_frame(res) -> tuple[int, dict]:
    """(track, row of the frame picked): the track's timeline, whose click moves the frame slider below it."""
    st.subheader("Timeline")
    tracks = [t["track"] for t in res.tracks]
    track = st.radio("Track", tracks, horizontal=True, format_func=lambda t: f"track {t}") if len(tracks) > 1 \
        else tracks[0]
    event = st.plotly_chart(timeline(res, track), key=f"timeline-{track}", on_select="rerun",
                            selection_mode="points")
    rows = [r for r in res.rows if r["track"] == track]
    times = [r["time"] for r in rows]
    points = (event.selection.get("points") if event else None) or []
    slider_key = f"frame-{track}"
    if slider_key not in st.session_state or st.session_state[slider_key] not in times:
        st.session_state[slider_key] = times[0]
    if points:  # a new click moves the slider to that point; the slider moves freely until the next click
        clicked = min(times, key=lambda t: abs(t - float(points[0]["x"])))
        if st.session_state.get(f"clicked-{track}") != clicked:
            st.session_state[f"clicked-{track}"] = st.session_state[slider_key] = clicked
    picked = st.select_slider("Frame at (s)", options=times, format_func=lambda t: f"{t:.2f}", key=slider_key)
    return track, rows[times.index(picked)]


def frame_view(out: dict, track: int, row: dict) -> None:
    """The whole frame with every face boxed, and the picked track's face as the model sees it."""
    res = out["result"]
    c1, c2 = st.columns([3, 1])
    try:
        frame = frame_at(out["clip"], row["time"])
        s = res.info.scale
        boxes = [[round(v * s) for v in r["box"]] for r in res.rows if r["frame"] == row["frame"]]
        caps = [f"#{r['track']} {r['label']}" for r in res.rows if r["frame"] == row["frame"]]
        c1.image(draw_faces(frame, boxes, caps), width="stretch")
        c1.caption(f"frame at {row['time']:.2f} s, every face boxed with its track number")
    except DataError as e:
        c1.warning(one_line(e))
    face = res.crops[(row["frame"], track)]
    c2.image(np.kron(face, np.ones((3, 3), np.uint8)), caption="what the model sees (48x48)")
    c2.markdown(f"**track {track}: {md(row['label'])}** ({row['probabilities'][row['label']]:.0%})")


def summary(out: dict) -> None:
    st.subheader("Per track: share of frames in each expression")
    st.plotly_chart(summary_bars(out["result"]), key="summary")
    st.download_button("Download CSV", video.rows_to_csv(out["result"].rows),
                       file_name=f"{Path(out['name']).stem}_emotions.csv", mime="text/csv")


def annotated_clip(out: dict, fps: float) -> None:
    if out["annotated"]:
        st.subheader("Annotated clip")
        st.video(Path(out["annotated"]).read_bytes(), format="video/webm")
        st.caption(f"The analysed frames ({fps:g} per second), boxed and labelled, at real speed.")


ctx = sidebar()
st.title("Video")
st.caption(f"Every face in a clip, frame by frame: faces are found and classified like in photos and linked into "
           f"tracks. Limits: {video.MAX_DURATION_S / 60:.0f} min; frames larger than {video.ANALYSIS_SIDE} px are "
           "downscaled for detection.")
photo_hint(ctx.checkpoint)
fps, upload = clip_input()
out = analysis(upload, ctx.checkpoint, fps)
track, row = pick_frame(out["result"])
frame_view(out, track, row)
summary(out)
annotated_clip(out, fps)
