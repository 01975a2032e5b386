"""Video clips made here with cv2.VideoWriter (and PyAV for a variable frame rate) from the bundled FER faces:
two moving faces -> two tracks, a face-free clip, and every bad input the issue lists."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from test_faces import ROOT, sample_faces  # noqa: E402

import fer_core  # noqa: E402
from fer_core import video  # noqa: E402
from fer_core.sources import CLASSES  # noqa: E402
from fer_core.predict import main  # noqa: E402
from fer_core.tracking import iou  # noqa: E402

HAPPY, ANGRY = 257, 0  # sample faces (test split indices) also used by the photo tests
# two faces moving towards each other: (sample index, (x, y) at frame 0, (dx, dy) per frame, side)
TWO_FACES = [(ANGRY, (10, 30), (2, 0), 110), (HAPPY, (200, 100), (-2, 0), 110)]


def face_boxes(k, faces):
    return [(x0 + dx * k, y0 + dy * k, s, s) for _, (x0, y0), (dx, dy), s in faces]


def render(k, faces, size, seed=0):
    """Frame k: FER faces upscaled onto a fixed noisy gray background -> (H, W, 3) BGR uint8."""
    x, _ = sample_faces()
    w, h = size
    canvas = np.clip(np.random.default_rng(seed).normal(128, 12, (h, w)), 0, 255).astype(np.uint8)
    for (i, *_), (bx, by, s, _) in zip(faces, face_boxes(k, faces)):
        canvas[by : by + s, bx : bx + s] = np.asarray(Image.fromarray(x[i]).resize((s, s), Image.Resampling.BICUBIC))
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def make_clip(path, faces=TWO_FACES, n=20, fps=10.0, size=(320, 240), fourcc="mp4v"):
    w = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert w.isOpened()
    for k in range(n):
        w.write(render(k, faces, size))
    w.release()
    return path


@pytest.fixture(scope="module")
def model():
    return fer_core.load_model(ROOT / "checkpoints" / "fer_best.pt")


@pytest.fixture(scope="module")
def two_faces_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "two faces.mp4")


def test_two_moving_faces_become_two_tracks(model, two_faces_clip):
    res = video.analyze(*model, two_faces_clip, fps=5)
    assert res.info.width == 320 and res.info.height == 240 and res.info.scale == 1.0
    assert res.sampled == 10 and np.allclose(res.times, np.arange(10) * 0.2, atol=0.01)  # 2 s at 5 per second
    assert res.notes == []
    assert len(res.rows) == 2 * res.sampled and len(res.tracks) == 2
    for tid, face in zip((0, 1), TWO_FACES):  # tracks are numbered in reading order of the first frame
        rows = [r for r in res.rows if r["track"] == tid]
        assert [r["frame"] for r in rows] == list(range(10))
        for r in rows:  # each track follows its own face as it moves (the other face's IoU is 0)
            frame_idx = round(r["time"] * 10)
            # > 0.4, not more: YuNet's box is the face, taller and narrower than the square tile pasted here
            assert iou(r["box"], face_boxes(frame_idx, [face])[0]) > 0.4, (tid, r)
            assert abs(sum(r["probabilities"].values()) - 1) < 1e-4 and r["label"] in CLASSES
            assert res.crops[(r["frame"], tid)].shape == (48, 48)
    for t in res.tracks:
        assert t["frames"] == 10 and abs(sum(t["share"].values()) - 1) < 1e-9
        assert t["dominant"] == max(t["share"], key=t["share"].get)
    # the happy face is read as happy in most frames (fer_best gives it ~0.9, far from any tie)
    assert res.tracks[1]["share"]["happy"] >= 0.8


def test_read_frame_is_the_analysed_frame(model, two_faces_clip):
    res = video.analyze(*model, two_faces_clip, fps=5)
    for k in (0, 4, 9):  # the frame shown for a timeline point holds that row's faces at that row's boxes
        frame = video.read_frame(two_faces_clip, res.times[k])
        assert frame.shape == (240, 320, 3)
        found = video.find_faces(frame, whole_image=False, required=False)
        boxes = [r["box"] for r in res.rows if r["frame"] == k]
        assert len(found) == len(boxes) == 2
        assert all(max(iou(f.box, b) for b in boxes) > 0.9 for f in found)
    with pytest.raises(video.VideoError, match="no frame at 9.00 s"):
        video.read_frame(two_faces_clip, 9.0)


def test_csv_rows(model, two_faces_clip):
    res = video.analyze(*model, two_faces_clip, fps=2)
    lines = video.rows_to_csv(res.rows).strip().splitlines()
    assert lines[0] == "file,frame,time,track,box,label,smoothed_label," + ",".join(CLASSES)
    assert len(lines) == 1 + len(res.rows) == 1 + 2 * 4


def test_annotated_clip_is_written_whole(model, two_faces_clip, tmp_path):
    for ext in (".mp4", ".webm", ".avi"):
        out = tmp_path / f"annotated{ext}"
        res = video.analyze(*model, two_faces_clip, fps=2, annotated=out)
        cap = cv2.VideoCapture(str(out), cv2.CAP_FFMPEG)
        n = 0
        while cap.grab():
            n += 1
        assert n == res.sampled, ext
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.avi", "annotated.mp4", "annotated.webm"]


def test_clip_without_a_face(model, tmp_path):
    clip = make_clip(tmp_path / "empty room.avi", faces=[], n=10, fourcc="MJPG")
    res = video.analyze(*model, clip, fps=5)
    assert res.rows == [] and res.tracks == [] and res.sampled == 5
    assert res.notes == ["no face found in any of the 5 sampled frames"]


def test_zero_length_and_not_a_video(model, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(video.VideoError, match="empty.mp4: empty file"):
        video.analyze(*model, empty)
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 50)
    with pytest.raises(video.VideoError, match="notes.mp4: not a video"):
        video.analyze(*model, text)
    photo = tmp_path / "face.png"
    Image.new("L", (64, 64), 100).save(photo)
    with pytest.raises(video.VideoError, match="an image, not a video"):
        video.analyze(*model, photo)


def test_truncated_clips(model, two_faces_clip, tmp_path):
    # mp4 keeps its index at the end: half a file cannot be opened at all
    half = tmp_path / "half.mp4"
    half.write_bytes(two_faces_clip.read_bytes()[: two_faces_clip.stat().st_size // 2])
    out = tmp_path / "out.mp4"
    with pytest.raises(video.VideoError, match="half.mp4: not a video .* corrupt or truncated"):
        video.analyze(*model, half, annotated=out)
    assert list(tmp_path.iterdir()) == [half]  # nothing written, no temporary left behind
    # avi streams frame by frame: the first half is analysed and the result says the rest is missing
    avi = make_clip(tmp_path / "clip.avi", n=20, fourcc="MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    res = video.analyze(*model, cut, fps=5)
    assert 0 < res.sampled < 10 and res.rows
    assert any("could be decoded (truncated or damaged?)" in n for n in res.notes)


def test_too_long_is_refused_and_too_large_is_downscaled(model, two_faces_clip, tmp_path):
    with pytest.raises(video.VideoError, match=r"header says 20 frames at 10 frames/s, 0.0 min; the limit is 0.0 min"):
        video.analyze(*model, two_faces_clip, max_duration=1.0)
    faces = [(HAPPY, (300, 200), (0, 0), 500)]
    big = make_clip(tmp_path / "big.mp4", faces=faces, n=3, fps=10, size=(1600, 1200))
    res = video.analyze(*model, big, fps=10)
    assert res.info.scale == 0.8
    assert res.notes and "1600x1200 downscaled to 1280x960" in res.notes[0]
    assert len(res.rows) == 3 and all(iou(r["box"], (300, 200, 500, 500)) > 0.6 for r in res.rows)  # clip pixels


def test_resolution_limit(model, tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "wide.mp4", faces=[], n=2, size=(640, 480))
    monkeypatch.setattr(video, "MAX_INPUT_SIDE", 600)
    with pytest.raises(video.VideoError, match="wide.mp4: 640x480 is larger than the 600 px limit"):
        video.analyze(*model, clip)


def test_variable_frame_rate_keeps_true_times(model, tmp_path):
    av = pytest.importorskip("av")
    from fractions import Fraction

    path = tmp_path / "vfr.mkv"
    # frames at irregular times (ms): 10 per second, then a 0.5 s freeze, then 4 per second
    pts = [0, 100, 200, 300, 400, 900, 1150, 1400, 1650, 1900]
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(render(k, TWO_FACES, (320, 240)), format="bgr24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    res = video.analyze(*model, path, fps=5)
    assert any("variable frame rate" in n for n in res.notes)
    # sampled every 0.2 s of video time: the frame at or after each 0.2 s mark, by its own timestamp
    assert np.allclose(res.times, [0.0, 0.2, 0.4, 0.9, 1.15, 1.4, 1.65, 1.9], atol=0.02), res.times


def test_bad_fps(model, two_faces_clip):
    with pytest.raises(video.VideoError, match="--fps must be > 0"):
        video.analyze(*model, two_faces_clip, fps=0)


def test_cli_csv_and_annotated(two_faces_clip, tmp_path, capsys):
    out = tmp_path / "boxed.mp4"
    assert main([str(two_faces_clip), "--format", "csv", "--fps", "2", "--annotated", str(out)]) == 0
    o = capsys.readouterr()
    lines = o.out.strip().splitlines()
    assert lines[0].startswith("file,frame,time,track,box,label") and len(lines) == 1 + 2 * 4
    assert "track 0: 4 frames" in o.err and "track 1: 4 frames" in o.err
    assert out.exists() and out.stat().st_size > 0


def test_cli_bad_clips_are_one_line_messages(tmp_path):
    bad = tmp_path / "broken.webm"
    bad.write_bytes(b"\x1aE\xdf\xa3" + bytes(range(256)) * 8)  # a WebM magic number, then garbage
    out = tmp_path / "never.mp4"
    p = subprocess.run([sys.executable, "-m", "fer_core.predict", str(bad), "--annotated", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    errs = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errs == [f"error: {bad}: not a video OpenCV/FFmpeg can read (not a video file, corrupt or truncated)"]
    assert json.loads(p.stdout) == []
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]
