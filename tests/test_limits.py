"""Security and resource limits: data roots, regular files only, capped walks, zip members and pixel counts."""
import os
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import fer_core.data as data
import fer_core.sources as sources
from fer_core.data import check_data_source, load_split
from fer_core.images import UPLOAD_MAX_PIXELS, DataError, open_image, to_gray
from fer_core.predict import expand_paths
from tests.conftest import ROOT


def test_data_sources_outside_the_roots_are_refused_without_looking(tmp_path):
    roots = [tmp_path / "root"]
    (tmp_path / "root").mkdir()
    msgs = []
    for p in ("/", "/etc/passwd", "/etc/no-such-file-here", str(tmp_path / "root" / ".." / "secret")):
        with pytest.raises(DataError, match="outside the allowed data folders") as e:
            check_data_source(p, roots)
        msgs.append(str(e.value).split(": ", 1)[1])
    assert len(set(msgs)) == 1  # an existing and a missing file get the same answer
    inside = tmp_path / "root" / "faces"
    inside.mkdir()
    assert check_data_source(inside, roots) == str(inside.resolve())
    (tmp_path / "root" / "escape").symlink_to("/etc")  # a link out of the root does not widen it
    with pytest.raises(DataError, match="outside"):
        check_data_source(tmp_path / "root" / "escape" / "passwd", roots)


def test_fifo_is_neither_a_data_source_nor_a_photo(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file or folder"):
        check_data_source(fifo, [tmp_path])
    assert expand_paths([fifo, "/dev/stdin"]) == [(str(fifo), f"{fifo}: not a regular file"),
                                                   ("/dev/stdin", "/dev/stdin: not a regular file")]


def test_default_roots_allow_the_sample_shared_and_fer_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_DATA_ROOT", str(tmp_path))
    roots = data.data_roots()
    assert check_data_source(ROOT / "samples" / "fer2013_sample.npz")
    assert (ROOT.parent / "shared").resolve() in roots and tmp_path.resolve() in roots
    monkeypatch.setenv("FER_DATA_ROOT", "")
    with pytest.raises(DataError, match="outside"):
        check_data_source(tmp_path)


def test_sidebar_refuses_a_server_path_outside_the_roots(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_DATA_ROOT", str(tmp_path / "only-here"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.session_state["data_source"] = "/"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.sidebar.error]
    assert any("outside the allowed data folders" in e and "bundled sample" in e for e in errors), errors


def test_folder_walk_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_WALK_ENTRIES", 50)
    d = tmp_path / "faces" / "train" / "happy"
    d.mkdir(parents=True)
    for i in range(60):
        (d / f"{i}.txt").write_text("")
    with pytest.raises(DataError, match="more than 50 files and folders"):
        load_split(tmp_path / "faces", "train", cache=False)


def test_zip_member_that_expands_too_far_is_refused_unread(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/happy/0.png", b"\0" * (sources.MAX_ZIP_MEMBER_BYTES + 1))  # ~20 KB on disk
    assert z.stat().st_size < 100_000
    with pytest.raises(DataError, match="byte limit"):
        load_split(z, "train", cache=False)


def _png_header_only(w, h, mode_byte=6):
    """A PNG whose header says w x h RGBA but holds one tiny chunk of data: only a header check can refuse it
    before decoding."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, mode_byte, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def test_pixel_count_is_checked_before_decoding():
    big = _png_header_only(8940, 8940)  # the 2 GB case: below the general limit, above the upload limit
    with pytest.raises(DataError, match="8940x8940 pixels, above the 40,000,000 pixel limit"):
        open_image(big, name="big.png", max_pixels=UPLOAD_MAX_PIXELS)
    with pytest.raises(DataError, match="pixel limit"):
        open_image(_png_header_only(9000, 9000), name="huge.png")


def test_rgba_to_gray_composites_on_white():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    a[0, 0, 3], a[0, 1, 3] = 0, 255
    g = to_gray(Image.fromarray(a, "RGBA"))
    luma = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    want = luma * a[..., 3] / 255 + 255 * (1 - a[..., 3] / 255)
    assert g.shape == (40, 50) and g[0, 0] == 255
    assert np.abs(g.astype(float) - want).max() <= 2  # rounding of 8-bit steps only
