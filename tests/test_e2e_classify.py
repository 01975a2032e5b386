"""The Classify page in a real browser: `streamlit run dashboard.py` on a free port, headless Debian chromium via
playwright, a photo uploaded through the page's file input.

Needs /usr/bin/chromium (`apt-get install chromium`) and playwright; skipped without them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # sibling test module with the photo maker
from e2e_support import ARGS, CHROMIUM, app_tracebacks, dashboard_server, require_browser, settle  # noqa: E402
from test_faces import compose_photo  # noqa: E402

pytestmark = pytest.mark.e2e
sync_api = require_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("e2e-classify") / "streamlit.log"
    with dashboard_server(log) as url:
        yield {"url": url, "log": log}


def open_classify(page, url):
    """The Classify page by its URL path, as a bookmark opens it. On the module's fresh server the first
    session starts there, before anything ran the entrypoint: the case where Streamlit first runs the page
    as a v1 multipage page (app_common._ensure_navigation), so the upload below also checks nothing is lost."""
    page.goto(url + "/classify")
    settle(page)
    page.get_by_role("heading", name="Classify").first.wait_for()


def test_upload_a_photo_on_the_classify_page(server, tmp_path):
    photo, boxes, _ = compose_photo(mode="RGB")
    path = tmp_path / "group photo.jpg"
    photo.save(path, quality=92)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            open_classify(page, server["url"])
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
            page.get_by_text(f"Face {len(boxes)}:").first.wait_for()
            settle(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.get_by_text(f"{len(boxes)} face(s)").count() == 1  # the boxed photo's caption
            assert page.get_by_text(f"Face {len(boxes) + 1}:").count() == 0  # no extra (false) faces
            assert page.get_by_text("found by YuNet").count() == len(boxes)  # the detector is named per face
            assert page.get_by_text("levelled 48x48 crop").count() == len(boxes)
            assert page.locator('[data-testid="stDataFrame"]').count() == 1
            assert page.get_by_role("button", name="Download CSV").count() == 1
            with page.expect_download() as dl:
                page.get_by_role("button", name="Download CSV").click()
            csv_text = Path(dl.value.path()).read_text()
            lines = csv_text.strip().splitlines()
            assert lines[0].startswith("file,face,box,source,detector") and len(lines) == 1 + len(boxes)
            assert all(line.startswith("group photo.jpg,") for line in lines[1:])
        finally:
            browser.close()
    assert not app_tracebacks(server["log"].read_text())


def write_y4m(path, gray_frame, n=10):
    """A tiny raw video (YUV 4:2:0, gray) that chromium plays as its fake camera."""
    import numpy as np

    h, w = gray_frame.shape
    chroma = np.full((h // 2) * (w // 2) * 2, 128, np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(n):
            f.write(b"FRAME\n" + gray_frame.tobytes() + chroma)
    return path


def test_live_webcam_stream_with_a_fake_camera(server, tmp_path):
    """streamlit-webrtc end to end without a camera or network: chromium's fake capture device plays a video
    of pasted faces, the stream connects over localhost with no STUN server, and the page reports the
    smoothed results of the frames the server classified."""
    import numpy as np

    photo, boxes, _ = compose_photo(mode="L")
    video = write_y4m(tmp_path / "faces.y4m", np.asarray(photo))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS + [
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1200}, permissions=["camera"])
            page = ctx.new_page()
            page.set_default_timeout(90_000)
            open_classify(page, server["url"])
            page.get_by_text("Live webcam", exact=True).click()
            settle(page)
            stream = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
            stream.get_by_role("button", name="START").click()
            page.get_by_text(f"{len(boxes)} face(s) in view").first.wait_for()
            text = page.get_by_text("frames analysed").first.inner_text()
            assert int(text.split()[0]) >= 1
            assert page.get_by_text("Face 1:").count() >= 1
            assert page.locator('[data-testid="stException"]').count() == 0
            stream.get_by_role("button", name="STOP").click()
        finally:
            browser.close()
    assert not app_tracebacks(server["log"].read_text())
