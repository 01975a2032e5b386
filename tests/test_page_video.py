"""The Video page in Streamlit's AppTest: a two-face clip becomes a timeline per track, a frame and its crop,
summary bars, a CSV and an annotated clip; bad clips are one-line warnings."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_faces import ROOT  # noqa: E402
from test_video import make_clip  # noqa: E402

from streamlit.testing.v1 import AppTest  # noqa: E402
from tests.conftest import shown

PAGE = str(ROOT / "views" / "video.py")


@pytest.fixture()
def at():
    a = AppTest.from_file(PAGE, default_timeout=180)
    a.run()
    assert not a.exception, a.exception
    return a


def test_empty_page_invites_upload(at):
    assert at.title[0].value == "Video"
    assert any("Upload a video clip" in i.value for i in at.info)
    # the default model is not the shipped one that does best on real photos: the page points to it
    assert any(shown(i.value).startswith("On real photos, checkpoints/fer_cpu.pt is more accurate") for i in at.info)
    assert any(shown(b.label) == "Use fer_cpu.pt" for b in at.button)


def test_two_face_clip(at, tmp_path):
    clip = make_clip(tmp_path / "interview.mp4", n=10, fps=10)  # 1 s: 5 frames at the default 5 per second
    at.file_uploader[0].set_value(("interview.mp4", clip.read_bytes(), "video/mp4"))
    at.run()
    assert not at.exception, at.exception
    assert not at.warning, [w.value for w in at.warning]
    assert any("5 frames analysed, 2 track(s)" in c.value for c in at.caption)
    assert at.radio[0].options == ["track 0", "track 1"]
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the timeline of the chosen track, the per-track summary bars
    n_images = len(at.get("image"))
    # pick the last frame of track 1: its frame with both faces boxed, and its 48x48 crop
    at.radio[0].set_value(1)
    at.run()
    at.select_slider(key="frame-1").set_value(0.8)
    at.run()
    assert not at.exception, at.exception
    assert any("frame at 0.80 s" in c.value for c in at.caption)
    assert len(at.get("image")) == n_images
    assert any("track 1:" in m.value for m in at.markdown)
    dl = [b for b in at.get("download_button")]
    assert len(dl) == 1
    assert len(at.get("video")) == 1


def test_not_a_video_is_a_message(at):
    at.file_uploader[0].set_value(("notes.mp4", b"not a video, just text" * 20, "video/mp4"))
    at.run()
    assert not at.exception, at.exception
    assert any("notes.mp4: not a video" in shown(w.value) for w in at.warning)
    assert not at.get("plotly_chart")


def test_clip_without_faces(at, tmp_path):
    clip = make_clip(tmp_path / "room.avi", faces=[], n=5, fourcc="MJPG")
    at.file_uploader[0].set_value(("room.avi", clip.read_bytes(), "video/x-msvideo"))
    at.run()
    assert not at.exception, at.exception
    assert any("no face found in any of the 3 sampled frames" in i.value for i in at.info)
    assert not at.get("plotly_chart")
